"""Tests of the ``jointinv`` command line: exit codes, one-line errors, one end-to-end run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import jointinv
from jointinv._version import FORMAT_VERSION
from jointinv.cli import app
from jointinv.config import from_mapping
from jointinv.coordinates import variable_names
from jointinv.problem import build_mesh

from .conftest import QUICKSTART, Workspace, gravity_only_mapping

JOINTINV = Path(sys.executable).parent / "jointinv"
runner = CliRunner()



def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> str:
    """Exit code 2 and one line ``error: ...`` on stderr containing every fragment."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line, "no error message"
    assert "\n" not in line, f"not one line:\n{result.stderr}"
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert re.search(re.escape(fragment), line), f"{fragment!r} not in {line!r}"
    return line


def edit_line(path: Path, lineno: int, old: str | int, new: str) -> None:
    """Replace ``old`` by ``new`` on line ``lineno`` (1-based) of a data file.

    ``old`` may be a column index (0-based, whitespace-separated), so the tests do
    not depend on the sample's noise realisation.
    """
    lines = path.read_text().splitlines(keepends=True)
    if isinstance(old, int):
        fields = lines[lineno - 1].split()
        fields[old] = new
        lines[lineno - 1] = " ".join(fields) + "\n"
    else:
        assert old in lines[lineno - 1], lines[lineno - 1]
        lines[lineno - 1] = lines[lineno - 1].replace(old, new, 1)
    path.write_text("".join(lines))


# --------------------------------------------------------------------------- help, schema


def test_help():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "validate", "schema", "show"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


@pytest.mark.parametrize("command", ["run", "validate", "schema", "show"])
def test_command_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_help_does_not_import_engines():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import jointinv.cli\n"
        "for args in (['--help'], ['run', '--help'], ['show', '--help']):\n"
        "    assert CliRunner().invoke(jointinv.cli.app, args).exit_code == 0, args\n"
        "print('pygimli' in sys.modules)\n"
        "print(sorted(m for m in ('simpeg', 'matplotlib', 'h5py') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split("\n")[:2] == ["False", "[]"]


def test_help_imports_no_engines():
    """--help stays fast by importing no numerical or engine module (checked by what is
    imported, not by a wall-clock limit, which a loaded machine breaks)."""
    assert JOINTINV.is_file(), JOINTINV
    proc = subprocess.run([str(JOINTINV), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout
    code = (
        "import sys\n"
        "from jointinv.cli import app\n"
        "try:\n"
        "    app(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('numpy', 'scipy', 'h5py', 'pygimli', 'simpeg', 'matplotlib', 'dask')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_validate_does_not_import_pygimli():
    code = (
        "import sys\n"
        "from jointinv.validate import validate_config\n"
        f"validate_config({str(QUICKSTART)!r})\n"
        "print('pygimli' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_schema():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "properties" in schema
    assert {"mesh", "properties", "modalities"} <= set(schema["properties"])


# --------------------------------------------------------------------------- validate


def test_validate_quickstart():
    result = invoke("validate", QUICKSTART)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("quickstart.yaml: OK\n")
    assert re.search(r"^  mesh: \d+ x \d+ cells$", out, re.M)
    for fragment in (
        "ert (ert -> resistivity): 285 data, 32 sensors, from ert.ohm",
        "traveltime (traveltime -> velocity): 496 data, 32 sensors, from traveltime.sgt",
        "gravity (gravity -> density_contrast): 32 data, 32 sensors, from gravity.csv",
    ):
        assert re.search(re.escape(fragment), out), fragment
    assert result.stderr == ""


def test_validate_copied_quickstart(quick_config):
    result = invoke("validate", quick_config)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("quick.yaml: OK\n")


def test_missing_argument_is_a_usage_error():
    result = invoke("validate")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_unknown_option_is_a_usage_error(quick_config):
    result = invoke("validate", quick_config, "--bogus")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- config errors


def test_missing_config_file(tmp_path):
    missing = tmp_path / "quick.yaml"
    assert_user_error(invoke("validate", missing), f"quick.yaml: config file not found: {missing}")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_yaml(workspace, command):
    path = workspace.text(
        "quick.yaml", "mesh:\n  core: {x_min: -4, x_max: 66, depth: 18\n  cell_size: {dx: 1}\n"
    )
    assert_user_error(invoke(command, path), "quick.yaml: malformed YAML: line 3, column 12: ")


def test_malformed_quickstart_unclosed_bracket(workspace):
    text = QUICKSTART.read_text()
    lines = text.splitlines(keepends=True)
    i = next(k for k, line in enumerate(lines) if line.startswith("  cell_size:"))
    lines[i] = lines[i].replace("dz: 1.0}", "dz: 1.0")
    path = workspace.text("quick.yaml", "".join(lines))
    # the problem is found on the next line (where the flow mapping should have closed)
    assert_user_error(invoke("validate", path), f"quick.yaml: malformed YAML: line {i + 2}, ")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_unknown_key(workspace, command):
    path = workspace.variant({"modalities.ert.bogus": 1})
    line = assert_user_error(invoke(command, path))
    assert line == "error: quick.yaml: modalities.ert.bogus: unknown key"


def test_wrong_type(workspace):
    path = workspace.variant({"mesh.cell_size.dx": "abc"})
    assert_user_error(invoke("validate", path), "quick.yaml: mesh.cell_size.dx: must be a number")


def test_negative_relative_error(workspace):
    path = workspace.variant({"modalities.ert.error.relative": -0.1})
    line = assert_user_error(invoke("validate", path))
    assert line == "error: quick.yaml: modalities.ert.error.relative: must be >= 0"


def test_brackets_in_message_are_printed(workspace):
    # rich markup must not swallow "[lower, upper]"
    path = workspace.variant({"properties.density_contrast.bounds": [1.0, -1.0]})
    line = assert_user_error(invoke("validate", path))
    assert line == (
        "error: quick.yaml: properties.density_contrast: "
        "bounds must be [lower, upper] with lower < upper"
    )


def test_undefined_property_of_modality(workspace):
    path = workspace.variant({"modalities.gravity.property": "density"})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: modalities.gravity.property: 'density' is not a defined property",
    )


def test_coupling_between_undefined_properties(workspace):
    path = workspace.variant({"coupling.0.properties": ["porosity", "velocity"]})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: coupling.0.properties: 'porosity' is not a defined property",
    )


def test_several_errors_on_one_line(workspace):
    path = workspace.variant({"mesh.cell_size.dx": "abc", "modalities.ert.bogus": 1})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: mesh.cell_size.dx: must be a number; modalities.ert.bogus: unknown key",
    )


# --------------------------------------------------------------------------- data errors


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_data_file(workspace, command):
    path = workspace.variant({"modalities.traveltime.data": "data/missing.sgt"})
    missing = workspace.data / "missing.sgt"
    assert_user_error(
        invoke(command, path), f"quick.yaml: modalities.traveltime.data: file not found: {missing}"
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_non_numeric_value_in_gravity_csv(workspace, command):
    csv = workspace.data / "gravity.csv"
    edit_line(csv, 5, "0.001139", "abc")
    path = workspace.variant({})
    assert_user_error(invoke(command, path), f"{csv}:5: data column 'gz': 'abc' is not a number")


def test_nan_in_gravity_csv(workspace):
    csv = workspace.data / "gravity.csv"
    edit_line(csv, 4, "-0.006650", "nan")
    path = workspace.variant({})
    assert_user_error(
        invoke("validate", path), f"{csv}:4: data column 'gz': value is nan; a finite number"
    )


def test_nan_in_ert_file(workspace):
    ohm = workspace.data / "ert.ohm"
    edit_line(ohm, 38, 4, "NaN")
    path = workspace.variant({})
    assert_user_error(
        invoke("validate", path), f"{ohm}:38: data column 'rhoa' is nan; a finite number is needed"
    )


def test_non_numeric_value_in_traveltime_file(workspace):
    sgt = workspace.data / "traveltime.sgt"
    edit_line(sgt, 38, 2, "5.09ms")
    path = workspace.variant({})
    assert_user_error(
        invoke("validate", path), f"{sgt}:38: data column 't': '5.09ms' is not a number"
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_sensor_index_out_of_range(workspace, command):
    ohm = workspace.data / "ert.ohm"
    edit_line(ohm, 37, "2 1 3 4 ", "2 1 3 99 ")
    path = workspace.variant({})
    assert_user_error(
        invoke(command, path),
        f"{ohm}:37: sensor index 99 in column 'n' is out of range: the file has 32 sensors",
    )


def test_sensor_outside_mesh(workspace):
    path = workspace.variant({"mesh.core.x_min": -4, "mesh.core.x_max": 40})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: mesh.core: ",
        "electrodes of ert.ohm lie outside the core x = -4 .. 40 m",
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_zero_error_in_err_column(workspace, command):
    csv = workspace.data / "gravity.csv"
    edit_line(csv, 6, ",0.003", ",0")
    path = workspace.variant({"modalities.gravity.error": {"from_file": True}})
    assert_user_error(invoke(command, path), f"{csv}:6: error 'err' is 0; errors must be positive")


def test_zero_error_in_ert_err_column(workspace):
    ohm = workspace.data / "ert.ohm"
    edit_line(ohm, 40, " 0.03", " 0")
    path = workspace.variant({"modalities.ert.error": {"from_file": True}})
    assert_user_error(invoke("validate", path), f"{ohm}:40: error 'err' is 0;")


def test_from_file_without_err_column(workspace):
    csv = workspace.data / "gravity.csv"
    lines = csv.read_text().splitlines()
    stripped = [lines[0]] + [line.rsplit(",", 1)[0] for line in lines[1:]]
    csv.write_text("\n".join(stripped) + "\n")
    path = workspace.variant({"modalities.gravity.error": {"from_file": True}})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: modalities.gravity.error.from_file: gravity.csv has no err column",
    )


def test_error_model_gives_zero_std(workspace):
    csv = workspace.data / "gravity.csv"
    edit_line(csv, 5, "0.001139", "0.0")
    path = workspace.variant({"modalities.gravity.error": {"relative": 0.05}})
    assert_user_error(
        invoke("validate", path),
        "quick.yaml: modalities.gravity.error: gives a zero standard deviation for 1 data "
        "(first: datum 3)",
    )


@pytest.mark.parametrize("command", ["validate", "run"])
def test_non_positive_apparent_resistivity(workspace, command):
    ohm = workspace.data / "ert.ohm"
    edit_line(ohm, 39, 4, "-5.5")
    path = workspace.variant({})
    assert_user_error(
        invoke(command, path),
        f"{ohm}:39: apparent resistivity -5.5 ohm*m is not positive",
        "ln(rhoa)",
    )


# --------------------------------------------------------------------------- show


def test_show_missing_file(tmp_path):
    missing = tmp_path / "nothing.h5"
    assert_user_error(invoke("show", missing), f"{missing}: no such result file")


def test_show_not_a_result(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("not hdf5\n")
    assert_user_error(invoke("show", path), f"{path}: not a jointinv result")


def test_show_empty_hdf5(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w"):
        pass
    assert_user_error(invoke("show", path), f"{path}: not a jointinv result")


# --------------------------------------------------------------------------- run failures


def test_existing_default_output_is_refused(workspace):
    path = workspace.variant({}, base=gravity_only_mapping(), name="gravity.yaml")
    out = workspace.root / "out" / "gravity.h5"  # output.path, relative to the config
    out.parent.mkdir()
    out.write_bytes(b"precious")
    result = invoke("run", path)
    assert_user_error(result, f"{out}: output file exists; use --force to overwrite it")
    assert out.read_bytes() == b"precious"


def test_runtime_failure_exit_1(quick_config, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("engine exploded [badly]")

    monkeypatch.setattr("jointinv.runner.build_problem", broken)
    result = invoke("run", quick_config, "-o", quick_config.parent / "x.h5")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line, result.stderr
    assert line == (
        "failed: RuntimeError: engine exploded [badly] (run with --verbose for the traceback)"
    )
    assert not (quick_config.parent / "x.h5").exists()

    result = invoke("run", quick_config, "-o", quick_config.parent / "x.h5", "--verbose")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "engine exploded" in result.stderr
    assert "broken" in result.stderr  # the frame that raised


def test_user_error_with_verbose_shows_traceback(workspace):
    path = workspace.variant({"modalities.ert.bogus": 1})
    result = invoke("validate", path, "--verbose")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: quick.yaml: modalities.ert.bogus: unknown key"
    )


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def gravity_run(tmp_path_factory):
    """One gravity-only inversion through the console script (about 2 s)."""
    ws = Workspace(tmp_path_factory.mktemp("e2e"))
    config = ws.write("gravity.yaml", gravity_only_mapping())
    out = ws.root / "results" / "run.h5"
    proc = subprocess.run(
        [str(JOINTINV), "run", str(config), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=ws.root,
        env={**os.environ, "COLUMNS": "200"},
    )
    return ws, config, out, proc


def test_run_end_to_end(gravity_run):
    ws, config, out, proc = gravity_run
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    err = proc.stderr
    assert "Traceback" not in err
    assert re.search(r"^ +it +β +χ² gravity +step +seconds$", err, re.M)
    assert re.search(r"^ +0 .* - +\d+\.\d$", err, re.M)
    assert "every modality reached its χ² target (none below 0.8 × target)" in err
    assert f"wrote {out}" in err
    # each log record once (pyGIMLi adds a root handler of its own on import)
    assert len(re.findall(r"beta0 = ", err)) == 1, err


def test_result_file_layout(gravity_run):
    ws, config, out, proc = gravity_run
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        meta = f["meta"].attrs
        assert meta["jointinv_version"] == jointinv.__version__
        assert meta["format_version"] == FORMAT_VERSION
        assert meta["config_text"] == config.read_text()
        assert meta["command_line"] == f"jointinv run {config} -o {out}"
        assert meta["start_time"] <= meta["end_time"]
        assert meta["random_seed"] == 0
        for pkg in ("numpy", "scipy", "simpeg", "pygimli"):
            version = meta[f"{pkg}_version"]
            assert version and version != "not installed", pkg
        assert meta["numpy_version"] == np.__version__

        mesh = f["mesh"]
        nx, nz = len(mesh["nodes_x"]) - 1, len(mesh["nodes_z"]) - 1
        assert (nx, nz) == build_mesh(from_mapping(gravity_only_mapping())).shape
        assert mesh["core_mask"].shape == (nz, nx)

        assert variable_names(f["models"]) == ["density_contrast"]
        model = f["models/density_contrast"]
        assert model.shape == (nz, nx)
        assert model.attrs["units"] == "g/cm^3"
        assert np.all(np.isfinite(model[()]))
        lower, upper = gravity_only_mapping()["properties"]["density_contrast"]["bounds"]
        assert np.all((lower < model[()]) & (model[()] < upper))

        g = f["data/gravity"]
        for name in ("observed", "predicted", "std", "normalized_residual"):
            assert g[name].shape == (32,), name
        np.testing.assert_allclose(
            g["normalized_residual"][()], (g["observed"][()] - g["predicted"][()]) / g["std"][()]
        )
        np.testing.assert_allclose(g["std"][()], 0.003)
        chi2 = g.attrs["chi2"]
        assert 0 < chi2 < 1.5
        assert chi2 == pytest.approx(np.mean(g["normalized_residual"][()] ** 2), rel=1e-6)

        it = f["iterations"]
        n = len(it["beta"])
        assert n >= 2
        for name in (
            "chi2/gravity",
            "phi_m",
            "beta",
            "step_length",
            "seconds/forward",
            "seconds/jacobian",
            "phi",
            "phi_d/gravity",
            "cg_iterations",
        ):
            assert it[name].shape == (n,), name
        assert it["chi2/gravity"][-1] == pytest.approx(chi2)
        assert it["chi2/gravity"][-1] < it["chi2/gravity"][0]


def test_show_and_plot(gravity_run, tmp_path):
    ws, config, out, proc = gravity_run
    assert proc.returncode == 0, proc.stderr
    plots = tmp_path / "plots"
    result = invoke("show", out, "--plot", plots)
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout
    assert "density_contrast" in result.stdout
    assert re.search(r"gravity +gravity +N +32 +chi2", result.stdout)
    pngs = sorted(p.name for p in plots.glob("*.png"))
    # the run computed the posterior diagnostics (the default): their plots too
    assert pngs == [
        "convergence.png",
        "coverage_gravity.png",
        "eigenvalues.png",
        "fit_gravity.png",
        "model_density_contrast.png",
        "posterior_std_density_contrast.png",
        "residuals_gravity.png",
        "resolution_density_contrast.png",
    ]
    assert "posterior diagnostics (rank 400" in result.stdout
    for p in plots.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {p}" in result.stdout


def test_existing_output_needs_force(gravity_run, tmp_path):
    ws, config, result_file, proc = gravity_run
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run.h5"  # a copy: the other tests read the original
    shutil.copyfile(result_file, out)
    before = out.read_bytes()
    with h5py.File(out, "r") as f:
        first_start = f["meta"].attrs["start_time"]
    result = invoke("run", config, "-o", out)
    assert_user_error(result, f"{out}: output file exists; use --force to overwrite it")
    assert out.read_bytes() == before

    result = invoke("run", config, "-o", out, "--force", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    with h5py.File(out, "r") as f:
        assert f["meta"].attrs["start_time"] > first_start  # a new result
        assert f["data/gravity"].attrs["chi2"] < 1.5
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_version_from_the_command_and_from_python_m():
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0
    assert out.output.strip() == f"jointinv {jointinv.__version__} (result format {FORMAT_VERSION})"
    proc = subprocess.run(
        [sys.executable, "-m", "jointinv", "--version"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.strip() == out.output.strip()
