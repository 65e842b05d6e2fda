"""``jointinv init``: an annotated config derived from the user's data files that
validates (without the gravity-padding warning) and runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.config import load_config
from jointinv.data import TraveltimeData
from jointinv.readers import data_kind, read_ert
from jointinv.template import Survey, _read_gravity, velocity_start
from jointinv.validate import validate_config

from .conftest import REPO, real
from .test_cli import assert_user_error

SAMPLES = REPO / "data" / "samples"
runner = CliRunner()


def init(*args: object):
    return runner.invoke(app, ["init", *map(str, args)])


def write_config(tmp_path: Path, files: list[Path], name: str = "config.yaml") -> Path:
    out = tmp_path / name
    result = init(*files, "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    assert f"{name}: OK" in result.stdout
    return out


SAMPLE_SETS = {
    "profile2d": ["profile2d/ert.ohm", "profile2d/traveltime.sgt", "profile2d/gravity.csv"],
    "porosity2d": ["porosity2d/ert.ohm", "porosity2d/traveltime.sgt", "porosity2d/gravity.csv"],
    "gravity only": ["profile2d/gravity_biased.csv"],
    "ert and gravity": ["profile2d/ert.ohm", "profile2d/gravity.csv"],
}


@pytest.mark.parametrize("files", SAMPLE_SETS.values(), ids=SAMPLE_SETS.keys())
def test_samples_give_a_config_that_validates_without_warning(tmp_path, files):
    config = write_config(tmp_path, [SAMPLES / f for f in files])
    summary = validate_config(config)
    assert "warning" not in summary
    loaded = load_config(config)
    kinds = {m.kind for m in loaded.config.modalities.values()}
    assert kinds == {data_kind(SAMPLES / f) for f in files}
    sensed = sorted({m.property for m in loaded.config.modalities.values()})
    pairs = sorted(sorted(c.properties) for c in loaded.config.coupling)
    assert pairs == [sorted(p) for p in _pairs(sensed)]


def _pairs(items: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for i, a in enumerate(items) for b in items[i + 1 :]]


def test_profile2d_mesh_and_starting_models(tmp_path):
    files = [SAMPLES / f for f in SAMPLE_SETS["profile2d"]]
    config = load_config(write_config(tmp_path, files)).config
    mesh = config.mesh
    assert (mesh.cell_size.dx, mesh.cell_size.dz) == (1.0, 1.0)  # electrodes 2 m apart
    assert (mesh.core.x_min, mesh.core.x_max) == (-2.0, 64.0)  # 0..62 m and 2 m either side
    assert mesh.core.depth == pytest.approx(0.3 * 62, abs=1.0)
    assert mesh.topography is None  # flat, every sensor on a node
    rhoa = read_ert(files[0]).apparent_resistivity
    start = config.properties["resistivity"].start
    assert start == pytest.approx(np.exp(np.log(rhoa).mean()), rel=0.05)
    lo, hi = config.properties["resistivity"].bounds
    assert lo < rhoa.min() and rhoa.max() < hi
    velocity = config.properties["velocity"].start
    assert 300 < velocity.top < velocity.bottom < 4000  # the sample: 500 m/s over 2500 m/s
    assert config.properties["density_contrast"].start == 0.0


def test_every_key_has_a_comment(tmp_path):
    text = write_config(tmp_path, [SAMPLES / f for f in SAMPLE_SETS["profile2d"]]).read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r" *[a-z_0-9]+: \S", line) and not re.match(r" *(kind|property): ", line):
            commented = "#" in line or lines[i - 1].lstrip().startswith("#")
            assert commented, f"line {i + 1} has no comment: {line}"
    assert yaml.safe_load(text)["output"] == {"path": "config.h5"}


@pytest.mark.parametrize("name", ["profile2d", "porosity2d"])
def test_sample_config_runs(tmp_path, name):
    config = write_config(tmp_path, [SAMPLES / f for f in SAMPLE_SETS[name]])
    result = runner.invoke(
        app,
        ["run", str(config), "--quiet", "--set", "inversion.max_iterations=1",
         "--set", "diagnostics.enabled=false"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "config.h5").is_file()


def test_real_refraction_with_topography_validates_and_runs(tmp_path):
    """Koenigsee (63 positions over 2 m of relief): topography from the sensors."""
    sgt = real("koenigsee_srt/koenigsee.sgt")
    config = write_config(tmp_path, [sgt])
    assert "warning" not in validate_config(config)
    loaded = load_config(config).config
    assert loaded.mesh.topography is not None
    assert loaded.mesh.cell_size.dx == 0.5  # geophones 1 m apart
    written = yaml.safe_load(config.read_text())["modalities"]["traveltime"]["data"]
    # relative to the config, or absolute when they share only the root; the same file
    assert (config.parent / written).resolve() == sgt.resolve()
    result = runner.invoke(
        app,
        ["run", str(config), "--quiet", "--no-diagnostics", "--set", "inversion.max_iterations=0"],
    )
    assert result.exit_code == 0, result.output


def test_gravity_in_map_coordinates_gets_a_profile_along_the_stations(tmp_path):
    path = tmp_path / "map.csv"
    along = np.linspace(0.0, 1000.0, 21)
    east, north = 5000.0 + 0.6 * along, 7000.0 + 0.8 * along  # a line heading NNE
    rows = [f"{e},{n},{z},{0.1 * np.sin(a / 200)}" for e, n, z, a in
            zip(east, north, np.full(21, 0.5), along)]  # fmt: skip
    path.write_text("x,y,z,gz\n" + "\n".join(rows) + "\n")
    gravity, profile = _read_gravity(path)
    assert profile.start == pytest.approx((5000.0, 7000.0), abs=0.1)
    assert profile.end == pytest.approx((5600.0, 7800.0), abs=0.1)
    np.testing.assert_allclose(gravity.stations[:, 0], along, atol=0.2)
    config = write_config(tmp_path, [path])
    assert "warning" not in validate_config(config)


def test_velocity_from_a_two_layer_refraction():
    """Direct wave at 500 m/s over a refractor at 2000 m/s: the starting gradient spans
    the two."""
    x = np.arange(0.0, 96.0, 2.0)
    sensors = np.column_stack([x, np.zeros_like(x)])
    shot, geophone = np.meshgrid([0, 47], np.arange(48), indexing="ij")
    keep = shot != geophone
    shot, geophone = shot[keep], geophone[keep]
    offset = np.abs(x[geophone] - x[shot])
    t = np.minimum(offset / 500.0, offset / 2000.0 + 0.012)  # 0.012 s: intercept time
    data = TraveltimeData(sensors, shot, geophone, t, None)
    start, (low, high), _ = velocity_start([Survey(Path("t.sgt"), "traveltime", "tt", data)])
    assert start["top"] == pytest.approx(500, rel=0.05)
    assert start["bottom"] == pytest.approx(2000, rel=0.05)
    assert low <= 100 and high >= 6000


def test_existing_config_is_kept_without_force(tmp_path):
    files = [SAMPLES / "profile2d" / "gravity.csv"]
    out = tmp_path / "config.yaml"
    out.write_text("mine\n")
    assert_user_error(init(*files, "-o", out), f"{out}: exists; use --force to overwrite it")
    assert out.read_text() == "mine\n"
    result = init(*files, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    assert "modalities:" in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["missing.ohm"], ["missing.ohm: no such data file"]),
        (["notes.txt"], ["notes.txt:1: expected the number of sensors"]),
        (["cols.ohm"], ["cols.ohm:4: the data columns 'x y v' are neither ERT", "traveltime"]),
        (["gravity.csv", "-o", "out.json"], ["out.json: the config is YAML"]),
        (["data.yaml", "-o", "data.yaml"], ["data.yaml: is the data file data.yaml"]),
    ],
)
def test_bad_input_is_one_line(tmp_path, monkeypatch, args, fragments):
    monkeypatch.chdir(tmp_path)
    shutil.copy(SAMPLES / "profile2d" / "gravity.csv", tmp_path)
    (tmp_path / "notes.txt").write_text("some notes\n")
    (tmp_path / "data.yaml").write_text("x: 1\n")
    (tmp_path / "cols.ohm").write_text("1\n0 0\n1\n# x y v\n1 2 3\n")
    assert_user_error(init(*args), *fragments)
    assert not (tmp_path / "config.yaml").exists()
