"""Error models per modality (issue 7): from the file (with its declared unit), the
config's relative/absolute, the fallback when a file has no err column, the log line
naming the model in use; gravity profiles from the config; one-line errors in the CLI."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.config import load_config
from jointinv.errors import ConfigError, DataError
from jointinv.problem import load_datasets

from .conftest import real

runner = CliRunner()

# eight flat electrodes, Wenner alpha data: lines 1-10 sensors, 11 count, 12 tokens, 13.. rows
ERT_HEAD = "8\n# x z\n" + "".join(f"{x} 0\n" for x in range(0, 16, 2))


def ert(tmp_path: Path, tokens: str, rows: list[str], name: str = "e.ohm") -> Path:
    path = tmp_path / name
    path.write_text(ERT_HEAD + f"{len(rows)}\n# {tokens}\n" + "".join(r + "\n" for r in rows))
    return path


def sgt(tmp_path: Path, tokens: str, rows: list[str], name: str = "t.sgt") -> Path:
    path = tmp_path / name
    path.write_text(
        "3\n# x y\n0 0\n1 0\n2 0\n" + f"{len(rows)}\n# {tokens}\n" + "".join(r + "\n" for r in rows)
    )
    return path


def load(workspace, changes: dict):
    """Datasets of the quick-start config with ``changes`` (dotted paths)."""
    return load_datasets(load_config(workspace.variant(changes)))


def config_error(field: str, message: str):
    return pytest.raises(
        ConfigError, match="^" + re.escape(f"quick.yaml: {field}: {message}") + "$"
    )


# --------------------------------------------------------------------------- ERT err unit


WENNER = ["1 4 2 3 100 {e}", "2 5 3 4 50 {e}"]


@pytest.mark.parametrize(
    ("tokens", "value", "error", "std"),
    [
        ("err", "0.02", {"from_file": True, "file_unit": "fraction"}, 0.02),
        ("err", "2", {"from_file": True, "file_unit": "percent"}, 0.02),
        ("err/%", "2", {"from_file": True}, 0.02),  # the token declares percent
        ("err/%", "2", {"from_file": True, "file_unit": "percent"}, 0.02),
        ("err", "0.02", {"relative": 0.05}, 0.05),  # the file's err is not used
        ("err", "0.02", {"relative": 0.05, "absolute": 5.0}, [0.1, 0.15]),  # 5 % + 5/ρa
    ],
)
def test_ert_error_models(workspace, tmp_path, caplog, tokens, value, error, std):
    path = ert(tmp_path, f"a b m n rhoa {tokens}", [r.format(e=value) for r in WENNER])
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        ds = load(workspace, {"modalities.ert.data": str(path), "modalities.ert.error": error})
    np.testing.assert_allclose(ds["ert"].std, std * np.ones(2))
    if error.get("from_file"):
        assert "ert: using the err column of e.ohm (percent" in caplog.text or (
            "ert: using the err column of e.ohm (fraction), 2 .. 2 % of rhoa" in caplog.text
        )
    else:
        assert "ert: error model 5 % " in caplog.text
        assert "(config); the file's err column is not used" in caplog.text


def test_ert_err_unit_never_guessed(workspace, tmp_path):
    path = ert(tmp_path, "a b m n rhoa err", [r.format(e="0.02") for r in WENNER])
    with config_error(
        "modalities.ert.error.file_unit",
        "required with from_file: the 'err' column of e.ohm has no unit; state file_unit: "
        "fraction (0.02 = 2 %) or percent (2 = 2 %)",
    ):
        load(
            workspace,
            {"modalities.ert.data": str(path), "modalities.ert.error": {"from_file": True}},
        )


def test_ert_err_unit_contradicts_token(workspace, tmp_path):
    path = ert(tmp_path, "a b m n rhoa err/%", [r.format(e="2") for r in WENNER])
    with config_error(
        "modalities.ert.error.file_unit",
        "is 'fraction' but e.ohm declares its err column in percent ('err/%'); set "
        "file_unit: percent or remove it",
    ):
        load(
            workspace,
            {
                "modalities.ert.data": str(path),
                "modalities.ert.error": {"from_file": True, "file_unit": "fraction"},
            },
        )


def test_file_unit_needs_from_file(workspace):
    with config_error("modalities.ert.error", "file_unit applies only with from_file: true"):
        load(workspace, {"modalities.ert.error": {"relative": 0.03, "file_unit": "percent"}})


def test_file_unit_only_for_ert(workspace):
    with config_error(
        "modalities.traveltime.error.file_unit",
        "applies only to ERT err columns; a traveltime err column is in s ('err/ms': ms)",
    ):
        load(
            workspace,
            {
                "modalities.traveltime.error": {
                    "from_file": True,
                    "file_unit": "fraction",
                    "absolute": 1e-3,
                }
            },
        )


@pytest.mark.parametrize("value", ["0", "-0.01"])
def test_ert_zero_error_used_from_file(workspace, tmp_path, value):
    path = ert(tmp_path, "a b m n rhoa err", ["1 4 2 3 100 0.02", f"2 5 3 4 50 {value}"])
    with pytest.raises(DataError) as info:
        load(
            workspace,
            {
                "modalities.ert.data": str(path),
                "modalities.ert.error": {"from_file": True, "file_unit": "fraction"},
            },
        )
    assert str(info.value) == (
        f"{path}:14: error 'err' is {float(value):g}; errors must be positive (1 such data; raise "
        f"the small ones, or use relative/absolute instead of from_file)"
    )


# --------------------------------------------------------------------------- traveltime default


def test_traveltime_default_when_file_has_no_err(workspace, tmp_path, caplog):
    path = sgt(tmp_path, "s g t", ["1 2 0.001", "1 3 0.002"])
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        ds = load(
            workspace,
            {
                "modalities.traveltime.data": str(path),
                "modalities.traveltime.error": {"from_file": True, "absolute": 0.0005},
            },
        )
    np.testing.assert_allclose(ds["traveltime"].std, [0.0005, 0.0005])
    assert "traveltime: t.sgt has no err column; using the config's default 0.5 ms" in caplog.text


def test_traveltime_file_err_wins_over_default(workspace, tmp_path, caplog):
    path = sgt(tmp_path, "s g t err/ms", ["1 2 0.001 0.3", "1 3 0.002 0.4"])
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        ds = load(
            workspace,
            {
                "modalities.traveltime.data": str(path),
                "modalities.traveltime.error": {"from_file": True, "absolute": 0.0005},
            },
        )
    np.testing.assert_allclose(ds["traveltime"].std, [0.0003, 0.0004])
    assert "traveltime: using the err column of t.sgt, 0.3 .. 0.4 ms" in caplog.text


def test_traveltime_from_file_without_err_and_without_default(workspace, tmp_path):
    path = sgt(tmp_path, "s g t", ["1 2 0.001"])
    with config_error(
        "modalities.traveltime.error.from_file",
        "t.sgt has no err column; add relative and/or absolute as its default",
    ):
        load(
            workspace,
            {
                "modalities.traveltime.data": str(path),
                "modalities.traveltime.error": {"from_file": True},
            },
        )


def test_real_koenigsee_default_error(workspace, caplog):
    path = real("koenigsee_srt/koenigsee.sgt")
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        ds = load(
            workspace,
            {
                "modalities.traveltime.data": str(path),
                "modalities.traveltime.error": {"from_file": True, "absolute": 0.0005},
            },
        )
    assert len(ds["traveltime"].std) == 714
    np.testing.assert_allclose(ds["traveltime"].std, 0.0005)
    assert "koenigsee.sgt has no err column; using the config's default 0.5 ms" in caplog.text


# --------------------------------------------------------------------------- Myanmar zero errors


def test_real_myanmar_zero_errors_from_file_fail(workspace):
    path = real("myanmar_gwb_ert/Aung_San_DD_pygimli.ohm")
    with pytest.raises(DataError) as info:
        load(
            workspace,
            {
                "modalities.ert.data": str(path),
                "modalities.ert.error": {"from_file": True, "file_unit": "fraction"},
            },
        )
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:178: error 'err' is 0; errors must be positive (")


def test_real_myanmar_relative_error_works(workspace):
    path = real("myanmar_gwb_ert/Aung_San_DD_pygimli.ohm")
    ds = load(
        workspace, {"modalities.ert.data": str(path), "modalities.ert.error": {"relative": 0.05}}
    )
    assert len(ds["ert"].observed) == 1433
    np.testing.assert_allclose(ds["ert"].std, 0.05)


# --------------------------------------------------------------------------- gravity profile


LDM_PROFILE = {"start": [356500.0, 5999900.0], "end": [370200.0, 6015000.0]}


def test_real_ldm_gravity_through_config(workspace):
    path = real("laguna_del_maule_gravity/LdM_grav_obs.grv")
    ds = load(
        workspace,
        {
            "modalities.gravity.data": str(path),
            "modalities.gravity.error": {"from_file": True},
            "modalities.gravity.options": {"profile": LDM_PROFILE},
        },
    )
    assert len(ds["gravity"].observed) == 191
    np.testing.assert_allclose(ds["gravity"].std, 0.05)


def test_gravity_profile_required_for_map_coordinates(workspace, tmp_path):
    path = tmp_path / "g.grv"
    path.write_text("1\n100 200 10 0.5 0.05\n")
    with config_error(
        "modalities.gravity.options.profile",
        "required: g.grv gives stations in map coordinates (x, y); set options.profile "
        "{start: [x, y], end: [x, y]} (m) to project them",
    ):
        load(workspace, {"modalities.gravity.data": str(path)})


def test_gravity_profile_not_needed_for_profile_csv(workspace):
    with config_error(
        "modalities.gravity.options.profile",
        "gravity.csv gives x along the profile already (x, z columns); remove options.profile",
    ):
        load(workspace, {"modalities.gravity.options": {"profile": LDM_PROFILE}})


def test_gravity_profile_points_must_differ(workspace):
    with pytest.raises(ConfigError, match=re.escape("modalities.gravity.options.profile")):
        load(
            workspace,
            {"modalities.gravity.options": {"profile": {"start": [0, 0], "end": [0, 0]}}},
        )


def test_gravity_3d_csv_through_config(workspace, tmp_path, caplog):
    path = tmp_path / "g3.csv"
    path.write_text("x,y,z,gz,err\n0,0,1,0.5,0.01\n30,40,1,0.25,0.02\n300,0,1,0.1,0.01\n")
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        ds = load(
            workspace,
            {
                "modalities.gravity.data": str(path),
                "modalities.gravity.error": {"from_file": True},
                "modalities.gravity.options": {
                    "profile": {"start": [0, 0], "end": [60, 80], "max_offset": 100}
                },
            },
        )
    np.testing.assert_allclose(ds["gravity"].sensors, [[0, 1], [50, 1]])
    np.testing.assert_allclose(ds["gravity"].std, [0.01, 0.02])
    assert (
        "gravity: projected 2 stations of g3.csv onto the profile (offset up to 0 m); "
        "dropped 1 farther than max_offset 100 m" in caplog.text
    )
    assert "gravity: using the err column of g3.csv, 0.01 .. 0.02 mGal" in caplog.text


def test_no_log_line_before_a_data_error(workspace, tmp_path, caplog):
    """The error-model lines are logged only once every file is read, so that a CLI
    user error stays one line on stderr."""
    path = sgt(tmp_path, "s g t", ["1 2 0.001"])
    with caplog.at_level(logging.INFO, logger="jointinv.problem"), pytest.raises(ConfigError):
        load(
            workspace,
            {
                "modalities.traveltime.data": str(path),
                "modalities.traveltime.error": {"from_file": True},
            },
        )
    assert caplog.text == ""


# --------------------------------------------------------------------------- CLI


def assert_user_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), line
    assert fragment in line, line


def test_cli_validate_shot_equals_geophone(workspace):
    sgt_path = workspace.data / "traveltime.sgt"
    lines = sgt_path.read_text().splitlines()
    count = next(i for i, line in enumerate(lines) if line.strip().startswith("# s g"))
    first = count + 1
    fields = lines[first].split()
    fields[1] = fields[0]
    lines[first] = " ".join(fields)
    sgt_path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["validate", str(workspace.variant({}))])
    assert_user_error(result, f"{sgt_path}:{first + 1}: shot and geophone are the same sensor")


def test_cli_validate_duplicated_sensor(workspace):
    ohm = workspace.data / "ert.ohm"
    lines = ohm.read_text().splitlines()
    lines[3] = lines[2]  # sensor 2 at the position of sensor 1
    ohm.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["validate", str(workspace.variant({}))])
    assert_user_error(result, f"{ohm}:4: sensor 2 repeats the position of sensor 1 (line 3)")


def test_cli_validate_ubc_without_profile(workspace, tmp_path):
    path = tmp_path / "g.grv"
    path.write_text("1\n100 200 10 0.5 0.05\n")
    result = runner.invoke(
        app, ["validate", str(workspace.variant({"modalities.gravity.data": str(path)}))]
    )
    assert_user_error(result, "quick.yaml: modalities.gravity.options.profile: required: g.grv")


def test_cli_validate_myanmar_from_file(workspace):
    path = real("myanmar_gwb_ert/Aung_San_DD_pygimli.ohm")
    config = workspace.variant(
        {
            "modalities.ert.data": str(path),
            "modalities.ert.error": {"from_file": True, "file_unit": "fraction"},
        }
    )
    assert_user_error(
        runner.invoke(app, ["validate", str(config)]), f"{path}:178: error 'err' is 0"
    )


def test_cli_validate_empty_gravity_file(workspace, tmp_path):
    path = tmp_path / "g.obs"
    path.write_text("\n")
    config = workspace.variant({"modalities.gravity.data": str(path)})
    assert_user_error(runner.invoke(app, ["validate", str(config)]), f"{path}: file is empty")
