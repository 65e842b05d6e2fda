"""Bad input (issue 13): each case gets exit code 2 from ``jointinv validate`` (or
``run``), one line naming the file and the field or line, and no traceback."""

from __future__ import annotations

import copy
import logging

import pytest
import yaml

from jointinv.config import load_config
from jointinv.mesh import MAX_CELLS_ENV
from jointinv.problem import load_datasets

from .conftest import quickstart_mapping
from .test_cli import assert_user_error, edit_line, invoke

# --------------------------------------------------------------------------- config text


def base_text() -> str:
    """The quick-start config as written by the workspace (block style, 2-space indent):
    line 1 ``mesh:``, 2 ``  core:``, 3 ``    x_min: -4``."""
    return yaml.safe_dump(quickstart_mapping(), sort_keys=False)


def deep(depth: int) -> str:
    return "x: " + "[" * depth + "]" * depth + "\n"


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("dx: 1.0", "dx: 1e400", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("dx: 1.0", "dx: 1.0e+400", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("dx: 1.0", "dx: .nan", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("dx: 1.0", "dx: .inf", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("dx: 1.0", "dx: inf", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("dx: 1.0", "dx: nan", ["quick.yaml: mesh.cell_size.dx: must be a finite number"]),
        ("x_min: -4", "x_min: -.inf", ["quick.yaml: mesh.core.x_min: must be a finite number"]),
        ("start: 150", "start: .nan", ["quick.yaml: properties.resistivity.start: must be a f"]),
        ("top: 500", "top: .inf", ["quick.yaml: properties.velocity.start.top: must be a fin"]),
        ("- 10000", "- .inf", ["quick.yaml: properties.resistivity.bounds.1: must be a finite"]),
        ("alpha_s: 0.001", "alpha_s: '1e400'", ["quick.yaml: regularization.alpha_s: must be a"]),
        ("max_iterations: 15", "max_iterations: .inf", ["inversion.max_iterations: must be"]),
        ("seed: 0", "seed: -1", ["quick.yaml: inversion.seed: must be >= 0"]),
        (
            "    x_min: -4\n",
            "    x_min: -4\n    x_min: -8\n",
            ["quick.yaml: mesh.core.x_min: key 'x_min' appears twice (lines 3 and 4); keep one"],
        ),
        (
            "  padding:\n",
            "  cell_size: {dx: 2.0, dz: 2.0}\n  padding:\n",
            ["quick.yaml: mesh.cell_size: key 'cell_size' appears twice (lines 6 and 9)"],
        ),
        (
            "inversion:\n",
            "mesh: {}\ninversion:\n",
            ["quick.yaml: mesh: key 'mesh' appears twice (lines 1 and ", "; keep one"],
        ),
        ("mesh:\n", deep(20_000) + "mesh:\n", ["quick.yaml: malformed YAML: line 1, column 53: "]),
        ("mesh:\n", "x: !!python/object/apply:os.system [ls]\nmesh:\n", ["could not determine"]),
    ],
)
def test_bad_config_text(workspace, old, new, fragments):
    text = base_text()
    assert old in text
    path = workspace.text("quick.yaml", text.replace(old, new, 1))
    assert_user_error(invoke("validate", path), *fragments)


def test_deep_nesting_names_the_limit(workspace):
    path = workspace.text("quick.yaml", deep(20_000) + base_text())
    assert_user_error(invoke("validate", path), "nested deeper than 50 levels")


def test_conflict_seed_must_not_be_negative(workspace):
    path = workspace.variant({"conflict.seed": -3})
    assert_user_error(invoke("validate", path), "quick.yaml: conflict.seed: must be >= 0")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"mesh:\x00\x01\x02", "quick.yaml: looks like a binary file (NUL byte at offset 5)"),
        (b"# Widerstand \xe9\nmesh: {}\n", "quick.yaml: not UTF-8 text: byte 0xe9 at offset 13 (l"),
        (b"mesh: {}\n\x89PNG\r\n", "quick.yaml: not UTF-8 text: byte 0x89 at offset 9 (line 2)"),
        (b"mesh: \x01\n", "quick.yaml: malformed YAML: character #x0001 at offset 6"),
    ],
)
def test_binary_or_not_utf8_config(workspace, content, fragment):
    path = workspace.root / "quick.yaml"
    path.write_bytes(content)
    assert_user_error(invoke("validate", path), fragment)


def test_merge_keys_may_override(workspace):
    """A key brought in by ``<<: *anchor`` and given again is an override, not a duplicate."""
    text = (
        base_text()
        .replace("  core:\n    x_min: -4\n", "  core: &core\n    x_min: -4\n", 1)
        .replace("inversion:\n", "anchors:\n  <<: *core\n  x_min: 0\ninversion:\n", 1)
    )
    path = workspace.text("quick.yaml", text)
    assert_user_error(invoke("validate", path), "quick.yaml: anchors: unknown key")


def test_alias_bomb_is_not_expanded(workspace):
    lines = ["bomb:", "  a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = workspace.text("quick.yaml", "\n".join(lines) + "\n" + base_text())
    assert_user_error(invoke("validate", path), "quick.yaml: bomb: unknown key")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("section", "name", "fragment"),
    [
        ("properties", "a/b", "quick.yaml: properties: the name 'a/b' contains '/'"),
        ("properties", "a\\b", "quick.yaml: properties: the name 'a\\\\b' contains '\\\\'"),
        ("properties", "a\x00b", "the name 'a\\x00b' contains the control character '\\x00'"),
        ("properties", ".hidden", "quick.yaml: properties: the name '.hidden' starts with '.'"),
        ("properties", "", "quick.yaml: properties: the name '' is empty"),
        ("modalities", "ert/2", "quick.yaml: modalities: the name 'ert/2' contains '/'"),
        ("modalities", "..", "quick.yaml: modalities: the name '..' starts with '.'"),
        ("properties", "x", "quick.yaml: properties.x: the names x and z are reserved for"),
        ("modalities", "z", "quick.yaml: modalities.z: the names x and z are reserved for"),
    ],
)
def test_unusable_names(workspace, section, name, fragment):
    raw = quickstart_mapping()
    first = next(iter(raw[section].values()))
    raw[section][name] = copy.deepcopy(first)
    assert_user_error(invoke("validate", workspace.write("quick.yaml", raw)), fragment)


# --------------------------------------------------------------------------- mesh size


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        (  # 1e9 cells: a 10,000 km core of 1 m cells
            {"mesh.core.x_max": 10_000_000, "mesh.core.depth": 100},
            ["quick.yaml: mesh.cell_size: the mesh would have 1,120,003,136 cells (core "],
        ),
        (  # 0.1 mm cells
            {"mesh.cell_size": {"dx": 1e-4, "dz": 1e-4}},
            ["quick.yaml: mesh.cell_size: the mesh would have 126,012,720,288 cells (core "],
        ),
        (  # 1e8 padding cells
            {"mesh.padding.n_x": 100_000_000},
            ["quick.yaml: mesh.padding: the mesh would have 6,000,002,100 cells", "100,000,000"],
        ),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_absurd_mesh_refused_before_allocation(workspace, changes, fragments, command):
    result = invoke(command, workspace.variant(changes))
    assert_user_error(result, *fragments, "more than the limit of 2,000,000 (JOINTINV_MAX_CELLS")


def test_cell_limit_from_the_environment(workspace, monkeypatch):
    monkeypatch.setenv(MAX_CELLS_ENV, "2000")
    assert_user_error(
        invoke("validate", workspace.variant({})),
        "quick.yaml: mesh.padding: the mesh would have 2,820 cells (core 70 x 18 cells of "
        "1 x 1 m; padding 12 cells left and right, 12 below), more than the limit of 2,000",
    )
    monkeypatch.setenv(MAX_CELLS_ENV, "2820")
    assert invoke("validate", workspace.variant({})).exit_code == 0


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e6"])
def test_cell_limit_must_be_a_positive_integer(workspace, monkeypatch, value):
    monkeypatch.setenv(MAX_CELLS_ENV, value)
    assert_user_error(
        invoke("validate", workspace.variant({})),
        f"{MAX_CELLS_ENV}={value!r}: must be a positive integer (cells)",
    )


def test_surface_relief_counts_against_the_limit(workspace, monkeypatch, tmp_path):
    """With topography the relief adds core cells: checked once the data give it."""
    ohm = tmp_path / "hill.ohm"
    sensors = "".join(f"{x} {100 * x}\n" for x in range(0, 16, 2))  # up to 1400 m
    ohm.write_text(f"8\n# x z\n{sensors}1\n# a b m n rhoa k\n1 4 2 3 100 12.566\n")
    # at x = 14 m the electrode (1400 m) and the geophone (0 m) are one stake: 700 m
    monkeypatch.setenv(MAX_CELLS_ENV, "10000")  # the flat estimate is 2,820 cells
    changes = {"modalities.ert.data": str(ohm), "mesh.topography": {"source": "sensors"}}
    assert_user_error(
        invoke("validate", workspace.variant(changes)),
        "quick.yaml: mesh.cell_size: the mesh would have 68,620 cells (core 70 x 718 cells",
        "under a surface relief of 700 m",
    )


# --------------------------------------------------------------------------- data files


@pytest.mark.parametrize(
    ("name", "line", "old", "new", "fragment"),
    [
        ("ert.ohm", 1, "32", "999999999999", "ert.ohm:35: found only 32 sensor rows but line "),
        (
            "ert.ohm",
            35,
            "285",
            "999999999999",
            "ert.ohm:322: found only 285 data rows but line 35 declares 999999999999",
        ),
        ("traveltime.sgt", 1, "32", "999999999999", "traveltime.sgt:35: found only 32 sensor"),
        (
            "traveltime.sgt",
            35,
            "496",
            "999999999999",
            "traveltime.sgt: file ends after 496 of the 999999999999 data rows declared on line 35",
        ),
        ("ert.ohm", 37, 4, "0", "ert.ohm:37: apparent resistivity 0 ohm*m is not positive"),
        ("traveltime.sgt", 37, "1 2 ", "0 1 ", "traveltime.sgt:37: sensor index 0 in column 's'"),
        (
            "traveltime.sgt",
            37,
            "1 2 0.0030529",
            "1 1 0.0030529",
            "traveltime.sgt:37: shot and geophone are the same sensor (s = g = 1)",
        ),
    ],
)
def test_bad_sample_data(workspace, name, line, old, new, fragment):
    path = workspace.data / name
    edit_line(path, line, old, new)
    assert_user_error(invoke("validate", workspace.variant({})), fragment)


def test_ubc_gravity_count_beyond_the_file(workspace, tmp_path):
    grv = tmp_path / "g.grv"
    grv.write_text("999999999999\n100 200 10 0.5 0.05\n")
    assert_user_error(
        invoke("validate", workspace.variant({"modalities.gravity.data": str(grv)})),
        "g.grv: line 1 declares 999999999999 data but the file has 1 data rows",
    )


def test_zero_offset_picks_are_dropped(workspace, caplog):
    sgt = workspace.data / "traveltime.sgt"
    edit_line(sgt, 37, "1 2 0.0030529", "1 1 0")
    edit_line(sgt, 38, "1 3 0.0050895", "1 1 0.000")
    config = workspace.variant({})
    result = invoke("validate", config)
    assert result.exit_code == 0, result.output
    assert (
        "traveltime (traveltime -> velocity): 494 data, 32 sensors, from traveltime.sgt "
        "(2 zero-offset picks dropped)" in result.stdout
    )
    with caplog.at_level(logging.INFO, logger="jointinv.problem"):
        load_datasets(load_config(config))
    assert (
        "traveltime: dropped 2 zero-offset picks of traveltime.sgt (shot = geophone, t = 0)"
        in caplog.text
    )


# ERT files of eight electrodes at x = 0, 2, .., 14 m: lines 3-10 sensors, 11 the data
# count, 12 the tokens, 13.. the data; Wenner 1 4 2 3 has k = 2π·2 m = 12.566 m
def ert_text(tokens: str, rows: list[str]) -> str:
    sensors = "".join(f"{x} 0\n" for x in range(0, 16, 2))
    return f"8\n# x z\n{sensors}{len(rows)}\n# {tokens}\n" + "".join(r + "\n" for r in rows)


ZERO_BASED = "the indices look 0-based (pyGIMLi unified format is 1-based)"
DIFFER = "they differ by more than 2%"


@pytest.mark.parametrize(
    ("tokens", "rows", "fragment"),
    [
        ("a b m n rhoa", ["0 3 1 2 100"], f"e.ohm:13: sensor index 0 in column 'a': {ZERO_BASED}"),
        ("a b m n rhoa", ["2 5 3 4 100", "1 4 0 3 100"], "e.ohm:14: sensor index 0 in colum"),
        (  # a 0 in b: remote in a 1-based file, but electrode 8 is never used
            "a b m n rhoa",
            ["1 0 2 3 100", "2 5 3 4 100"],
            "e.ohm:13: 'b' = 0 would be a remote electrode, but electrode 8 (the last) is never "
            f"used: {ZERO_BASED}",
        ),
        (
            "a b m n rhoa",
            ["2 5 3 4 100", "1 4 2 0 100"],
            "e.ohm:14: 'n' = 0 would be a remote electrode, but electrode 8 (the las",
        ),
        (  # 0 and -1 both: -1 is the remote, so 0 is an electrode
            "a b m n rhoa",
            ["1 0 2 3 100", "1 -1 2 8 100"],
            "e.ohm:13: 'b' = 0 would be a remote electrode, but the file also writes -1 for a "
            f"remote electrode: {ZERO_BASED}",
        ),
        (
            "a b m n rhoa r k",
            ["1 4 2 3 100 2 50", "2 5 3 4 100 2 60"],
            f"e.ohm:14: 'rhoa' = 100 but k·r = 120: {DIFFER}; check the units of the columns",
        ),
        (
            "a b m n rhoa u i k",
            ["1 4 2 3 100 0.2 0.1 50", "2 5 3 4 100 0.2 0.1 55"],
            f"e.ohm:14: 'rhoa' = 100 but k·u/i = 110: {DIFFER}",
        ),
        (
            "a b m n r u i",
            ["1 4 2 3 2 0.2 0.1", "2 5 3 4 2 0.3 0.1"],
            f"e.ohm:14: 'r' = 2 but u/i = 3: {DIFFER}",
        ),
        (  # no k: k from the flat electrodes
            "a b m n rhoa r",
            ["1 4 2 3 25.13 2", "2 5 3 4 100 2"],
            f"e.ohm:14: 'rhoa' = 100 but k·r = 25.1327: {DIFFER}; k is computed from the "
            "electrode positions (no k column)",
        ),
    ],
)
def test_bad_ert_file(workspace, tmp_path, tokens, rows, fragment):
    ohm = tmp_path / "e.ohm"
    ohm.write_text(ert_text(tokens, rows))
    result = invoke("validate", workspace.variant({"modalities.ert.data": str(ohm)}))
    assert_user_error(result, fragment)


@pytest.mark.parametrize(
    ("tokens", "rows"),
    [
        ("a b m n rhoa", ["1 0 2 3 100", "5 0 7 8 100"]),  # pole-dipole using electrode 8
        ("a b m n rhoa", ["1 -1 2 3 100"]),  # -1 is a remote electrode too
        ("a b m n rhoa r k", ["1 4 2 3 101 2 50"]),  # 1 % apart: rounding
        ("a b m n rhoa r", ["1 4 2 3 25.3 2", "1 0 2 8 999 2"]),  # no k: remote rows skipped
    ],
)
def test_good_ert_file(workspace, tmp_path, tokens, rows):
    ohm = tmp_path / "e.ohm"
    ohm.write_text(ert_text(tokens, rows))
    result = invoke("validate", workspace.variant({"modalities.ert.data": str(ohm)}))
    assert result.exit_code == 0, result.output


def test_every_float_of_the_schema_must_be_finite():
    """allow_inf_nan=False on the base model reaches every model of the schema."""
    from jointinv import config

    models = [
        m
        for m in vars(config).values()
        if isinstance(m, type) and issubclass(m, config._Strict) and m is not config._Strict
    ]
    assert len(models) > 20
    assert all(m.model_config.get("allow_inf_nan") is False for m in models)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.yaml", b"mesh: \xe9\n", "bad.yaml: not UTF-8 text: byte 0xe9 at offset 6 (line 1)"),
        (
            "sweep.yaml",
            b"base: g.yaml\ngrid:\n  inversion.seed: [1]\ngrid:\n  inversion.seed: [2]\n",
            "sweep.yaml: grid: key 'grid' appears twice (lines 2 and 4); keep one",
        ),
    ],
)
def test_batch_records_a_bad_yaml_file_as_a_failed_run(workspace, name, content, fragment):
    workspace.variant({}, name="g.yaml")
    path = workspace.root / name
    path.write_bytes(content)
    out = workspace.root / "res"
    result = invoke("batch", path, "-o", out)
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output
    assert fragment in (out / "summary.csv").read_text()
