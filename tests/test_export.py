"""Tests of ``jointinv export`` (VTK XML and CSV), of the topography fields of the
result file (``/mesh/active``, ``/mesh/surface``) and of the sections drawn with
topography and sensors.

The result is built by hand: a 6 × 5 tensor mesh at absolute elevations
(536-541 m) under a hill, so that each column has its own number of active cells.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.diagnostics import DataFit, Diagnostics
from jointinv.diagnostics_file import fill_diagnostics
from jointinv.export import export_csv, export_sensors_vtu, export_vtu
from jointinv.plotting import unresolved_cells
from jointinv.results import (
    SavedData,
    fill_data,
    fill_iterations,
    fill_mesh,
    fill_meta,
    fill_model,
    read_result,
    write_atomic,
)

NODES_X = np.arange(7.0)  # 6 columns, 1 m wide
NODES_Z = np.arange(536.0, 542.0)  # 5 rows, elevations 536-541 m
NX, NZ = 6, 5
SURFACE = np.array([[0.0, 538.2], [3.0, 541.2], [6.0, 538.2]])  # a hill, peak at x = 3
CX = 0.5 * (NODES_X[:-1] + NODES_X[1:])
CZ = 0.5 * (NODES_Z[:-1] + NODES_Z[1:])
X, Z = np.meshgrid(CX, CZ)  # (nz, nx)
ACTIVE = Z < np.interp(X, SURFACE[:, 0], SURFACE[:, 1])
#: active cells per column, worked out by hand from the surface at the centres:
#: 538.7, 539.7, 540.7, 540.7, 539.7, 538.7 m
CELLS_PER_COLUMN = [3, 4, 5, 5, 4, 3]
N_ACTIVE = 24


def _diagnostics() -> Diagnostics:
    n = NX * NZ
    rng = np.random.default_rng(3)
    std = {"resistivity": 0.01 * (1 + np.arange(n)), "velocity": 5.0 + np.arange(n)}
    fit = DataFit.from_residuals(rng.standard_normal(9), np.ones(9), "ln(ohm*m)")
    cov = np.exp(Z - 541.0).ravel()
    return Diagnostics(
        properties=["resistivity", "velocity"],
        posterior_std=std,
        prior_std={k: 2 * v for k, v in std.items()},
        std_units={"resistivity": "log10(ohm*m)", "velocity": "m/s"},
        parameter={"resistivity": "log10(resistivity)", "velocity": "velocity"},
        resolution={k: np.linspace(0.01, 0.9, n) for k in std},
        eigenvalues={"joint": np.array([10.0, 1.0, 0.1]), "ert": np.array([5.0, 0.5])},
        information={"ert": {k: np.full(n, 0.5) for k in std}},
        single_std={"ert": {k: 1.5 * v for k, v in std.items()}},
        coverage={"ert": cov},
        doi_mask={"ert": (Z > 537.0).ravel()},
        sensed_property={"ert": "resistivity"},
        data_fit={"ert": fit},
        correlation=np.array([[1.0, -0.4], [-0.4, 1.0]]),
        settings={"rank": 5, "probes": 2, "doi_threshold": 0.005},
    )


def _sensors() -> dict[str, SavedData]:
    def on_ground(x: np.ndarray, above: float = 0.0) -> np.ndarray:
        return np.c_[x, np.interp(x, SURFACE[:, 0], SURFACE[:, 1]) + above]

    def data(sensors: np.ndarray, kind: str, prop: str) -> SavedData:
        n = 9
        return SavedData(
            observed=np.linspace(1, 2, n), predicted=np.linspace(1.1, 2.1, n),
            std=np.full(n, 0.1), sensors=sensors, kind=kind, units="u", chi2=1.0, property=prop,
        )  # fmt: skip

    return {
        "ert": data(on_ground(np.arange(1.0, 6.0)), "ert", "resistivity"),
        "traveltime": data(on_ground(np.arange(0.5, 6.0, 1.0)), "traveltime", "velocity"),
        "gravity": data(on_ground(np.array([1.0, 3.0, 5.0]), above=1.0), "gravity", "velocity"),
    }


#: model values that encode their cell: an ordering error changes them
RESISTIVITY = (100.0 + 10.0 * X + (Z - 536.0)).ravel()
VELOCITY = (1000.0 + 100.0 * (Z - 536.0) + X).ravel()


def write_result(
    path: Path,
    *,
    diagnostics: bool | Diagnostics = True,
    topography: bool = True,
    core: np.ndarray | None = None,
) -> Path:
    """The hand-built result; ``diagnostics`` True for :func:`_diagnostics` or the
    diagnostics to write, ``core`` the core mask (default: every cell)."""

    def fill(f: h5py.File) -> None:
        fill_meta(f, {"stop_reason": "test"})
        extra = {"active": ACTIVE, "surface": SURFACE} if topography else {}
        core_mask = np.ones(NX * NZ, dtype=bool) if core is None else core
        fill_mesh(f, NODES_X, NODES_Z, core_mask, **extra)
        # full arrays: fill_model stores NaN in the air cells
        fill_model(f, "resistivity", RESISTIVITY, units="ohm*m", transform="log")
        fill_model(f, "velocity", VELOCITY, units="m/s", transform="linear")
        for name, saved in _sensors().items():
            fill_data(f, name, saved)
        fill_iterations(
            f, {"iteration": np.arange(3), "beta": np.array([4.0, 2.0, 1.0]),
                "phi": np.array([9.0, 5.0, 3.0]), "chi2/ert": np.array([5.0, 2.0, 1.0])},
        )  # fmt: skip
        if diagnostics is True:
            fill_diagnostics(f, _diagnostics())
        elif diagnostics:
            fill_diagnostics(f, diagnostics)

    write_atomic(path, fill)
    return path


@pytest.fixture
def result_file(tmp_path: Path) -> Path:
    return write_result(tmp_path / "hill.h5")


def test_hand_worked_active_mask():
    assert ACTIVE.sum(axis=0).tolist() == CELLS_PER_COLUMN
    assert ACTIVE.sum() == N_ACTIVE
    # active cells are contiguous from the bottom of each column
    for i, n in enumerate(CELLS_PER_COLUMN):
        assert ACTIVE[:n, i].all() and not ACTIVE[n:, i].any()


# --------------------------------------------------------------------------- HDF5 fields
def test_topography_round_trip(result_file):
    with h5py.File(result_file) as f:
        assert f["mesh/active"].dtype == bool
        np.testing.assert_array_equal(f["mesh/active"][()], ACTIVE)
        np.testing.assert_array_equal(f["mesh/surface"][()], SURFACE)
        assert "elevation" in f["mesh"].attrs["convention"]
        rho = f["models/resistivity"][()]
        assert rho.shape == (NZ, NX)
        assert np.isnan(rho[~ACTIVE]).all()
        np.testing.assert_array_equal(rho[ACTIVE], RESISTIVITY.reshape(NZ, NX)[ACTIVE])

    saved = read_result(result_file)
    np.testing.assert_array_equal(saved.active, ACTIVE)
    np.testing.assert_array_equal(saved.surface, SURFACE)
    assert saved.shape == (NZ, NX)
    flat = ACTIVE.ravel()
    for name, full in (("resistivity", RESISTIVITY), ("velocity", VELOCITY)):
        assert np.isnan(saved.models[name][~flat]).all()
        np.testing.assert_array_equal(saved.models[name][flat], full[flat])
    d = saved.diagnostics
    assert np.isnan(d.posterior_std["velocity"][~flat]).all()
    np.testing.assert_array_equal(d.posterior_std["velocity"][flat], 5.0 + np.flatnonzero(flat))
    assert np.isnan(d.coverage["ert"][~flat]).all()
    assert not d.doi_mask["ert"][~flat].any()
    assert d.doi_mask["ert"].sum() == N_ACTIVE - NX  # every active cell but the bottom row
    assert d.core_mask.sum() == N_ACTIVE


def test_model_given_per_active_cell(tmp_path):
    def fill(f: h5py.File) -> None:
        fill_mesh(f, NODES_X, NODES_Z, np.ones(NX * NZ, dtype=bool), active=ACTIVE, surface=SURFACE)
        fill_model(f, "velocity", VELOCITY[ACTIVE.ravel()], units="m/s", transform="linear")

    write_atomic(tmp_path / "m.h5", fill)
    with h5py.File(tmp_path / "m.h5") as f:
        v = f["models/velocity"][()]
    np.testing.assert_array_equal(v[ACTIVE], VELOCITY.reshape(NZ, NX)[ACTIVE])
    assert np.isnan(v[~ACTIVE]).all()


def test_flat_defaults_for_old_files(tmp_path):
    """Files written before topography have neither /mesh/active nor /mesh/surface."""
    path = write_result(tmp_path / "old.h5", topography=False)
    with h5py.File(path, "r+") as f:
        del f["mesh/active"], f["mesh/surface"]
    saved = read_result(path)
    assert saved.active.shape == (NZ, NX) and saved.active.all()
    np.testing.assert_array_equal(saved.surface, [[0.0, 541.0], [6.0, 541.0]])
    np.testing.assert_array_equal(saved.models["resistivity"], RESISTIVITY)
    assert not np.isnan(saved.diagnostics.posterior_std["resistivity"]).any()


def test_fill_mesh_defaults_are_flat(tmp_path):
    path = write_result(tmp_path / "flat.h5", topography=False, diagnostics=False)
    with h5py.File(path) as f:
        assert f["mesh/active"][()].all() and f["mesh/active"].shape == (NZ, NX)
        np.testing.assert_array_equal(f["mesh/surface"][()], [[0.0, 541.0], [6.0, 541.0]])
        assert not np.isnan(f["models/resistivity"][()]).any()


# --------------------------------------------------------------------------- VTK
def _piece(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "UnstructuredGrid"
    return root.find("UnstructuredGrid/Piece")


def _array(parent: ET.Element, name: str) -> np.ndarray:
    (node,) = [a for a in parent.iter("DataArray") if a.get("Name") == name]
    values = np.array(node.text.split(), dtype=float)
    n = int(node.get("NumberOfComponents", "1"))
    return values.reshape(-1, n) if n > 1 else values


def test_vtu(result_file, tmp_path):
    out = export_vtu(result_file, tmp_path / "out" / "hill.vtu")  # parent folder is created
    piece = _piece(out)
    assert int(piece.get("NumberOfCells")) == N_ACTIVE
    points = _array(piece.find("Points"), "points")
    assert int(piece.get("NumberOfPoints")) == len(points)
    # only the nodes of active cells; per node column x = 0..6: 1 + the most active
    # cells of the two columns beside it
    assert len(points) == 4 + 5 + 6 + 6 + 6 + 5 + 4
    np.testing.assert_array_equal(points[:, 1], 0.0)  # the profile is the VTK x-z plane
    cells = piece.find("Cells")
    types = _array(cells, "types")
    np.testing.assert_array_equal(types, 9)  # VTK_QUAD
    np.testing.assert_array_equal(_array(cells, "offsets"), 4 * np.arange(1, N_ACTIVE + 1))
    quads = _array(cells, "connectivity").astype(int).reshape(-1, 4)
    corners = points[quads][:, :, [0, 2]]  # (cell, corner, x/z)

    # cell order: the active cells, x fastest from the bottom row up
    centres = corners.mean(axis=1)
    np.testing.assert_allclose(centres, np.c_[X[ACTIVE], Z[ACTIVE]])
    # counter-clockwise unit squares
    np.testing.assert_allclose(corners[:, 1] - corners[:, 0], [[1.0, 0.0]] * N_ACTIVE)
    np.testing.assert_allclose(corners[:, 2] - corners[:, 0], [[1.0, 1.0]] * N_ACTIVE)
    # the top of each column is at the node elevation above its last active cell
    for i, n in enumerate(CELLS_PER_COLUMN):
        in_column = np.isclose(centres[:, 0], CX[i])
        assert corners[in_column][:, :, 1].max() == NODES_Z[n]
        assert corners[in_column][:, :, 1].min() == NODES_Z[0] == 536.0

    data = piece.find("CellData")
    names = [a.get("Name") for a in data.iter("DataArray")]
    assert names == [
        "resistivity",
        "velocity",
        "resistivity_posterior_std",
        "velocity_posterior_std",
        "doi_ert",
    ]
    flat = ACTIVE.ravel()
    np.testing.assert_array_equal(_array(data, "resistivity"), RESISTIVITY[flat])
    np.testing.assert_array_equal(_array(data, "velocity"), VELOCITY[flat])
    std = _diagnostics().posterior_std
    np.testing.assert_array_equal(_array(data, "velocity_posterior_std"), std["velocity"][flat])
    np.testing.assert_array_equal(
        _array(data, "resistivity_posterior_std"), std["resistivity"][flat]
    )
    np.testing.assert_array_equal(_array(data, "doi_ert"), (Z[ACTIVE] > 537.0).astype(float))
    assert [p.name for p in out.parent.iterdir()] == ["hill.vtu"]  # no temporary file left


def test_vtu_without_diagnostics(tmp_path):
    path = write_result(tmp_path / "plain.h5", diagnostics=False)
    piece = _piece(export_vtu(read_result(path), tmp_path / "plain.vtu"))
    names = [a.get("Name") for a in piece.find("CellData").iter("DataArray")]
    assert names == ["resistivity", "velocity"]


def test_vtu_read_back_by_vtk(result_file, tmp_path):
    pyvista = pytest.importorskip("pyvista")
    grid = pyvista.read(export_vtu(result_file, tmp_path / "hill.vtu"))
    assert grid.n_cells == N_ACTIVE
    np.testing.assert_array_equal(grid.cell_data["resistivity"], RESISTIVITY[ACTIVE.ravel()])
    assert grid.bounds[5] == pytest.approx(541.0)


def test_sensors_vtu(result_file, tmp_path):
    piece = _piece(export_sensors_vtu(result_file, tmp_path / "sensors.vtu"))
    n_sensors = 5 + 6 + 3
    assert int(piece.get("NumberOfCells")) == n_sensors + 1  # one vertex each + the surface
    modality = _array(piece.find("CellData"), "modality")
    # the result's order of the modalities (HDF5: alphabetical): ert, gravity, traveltime
    np.testing.assert_array_equal(modality, [0] * 5 + [1] * 3 + [2] * 6 + [-1])
    points = _array(piece.find("Points"), "points")
    np.testing.assert_array_equal(points[-3:][:, [0, 2]], SURFACE)
    np.testing.assert_allclose(points[5:8][:, [0, 2]], [[1, 540.2], [3, 542.2], [5, 540.2]])


# --------------------------------------------------------------------------- CSV
#: the core region of the CSV tests: columns x = 1..5 m, above 537 m (the padding: the
#: outer columns and the bottom row)
CORE = (X > 1.0) & (X < 5.0) & (Z > 537.0)
#: posterior/prior std of resistivity: resolved (0.5) down to 538 m, then not (0.9)
RATIO = np.where(Z > 538.0, 0.5, 0.9)
#: the depth of each cell centre below the hill's surface (m)
DEPTH = np.interp(X, SURFACE[:, 0], SURFACE[:, 1]) - Z


def _read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    return header, np.array(rows, dtype=float)


def _ratio_diagnostics() -> Diagnostics:
    d = _diagnostics()
    d.prior_std["resistivity"] = d.posterior_std["resistivity"] / RATIO.ravel()
    return d


def test_csv(result_file, tmp_path):
    header, values = _read_csv(export_csv(result_file, tmp_path / "hill.csv"))
    assert header == [
        "x_m",
        "z_m",
        "depth_m",
        "resistivity[ohm*m]",
        "velocity[m/s]",
        "resistivity_posterior_std[log10(ohm*m)]",
        "velocity_posterior_std[m/s]",
        "resistivity_std_ratio",
        "resistivity_in_doi",
        "velocity_std_ratio",
        "velocity_in_doi",
    ]
    assert values.shape == (N_ACTIVE, 11)  # the core is every cell here
    flat = ACTIVE.ravel()
    std = _diagnostics().posterior_std
    expected = np.c_[
        X[ACTIVE], Z[ACTIVE], DEPTH[ACTIVE], RESISTIVITY[flat], VELOCITY[flat],
        std["resistivity"][flat], std["velocity"][flat], np.full((N_ACTIVE, 4), [0.5, 1, 0.5, 1]),
    ]  # fmt: skip
    np.testing.assert_allclose(values, expected, rtol=1e-15)
    # the highest cell centre is under the hill's top, 0.7 m below its surface
    assert values[:, 1].max() == 540.5
    assert values[values[:, 1] == 540.5, 2] == pytest.approx([0.2, 0.2])
    assert (values[:, 2] > 0).all()


def test_csv_holds_the_core_cells_with_their_depth_of_investigation(tmp_path):
    path = write_result(tmp_path / "r.h5", diagnostics=_ratio_diagnostics(), core=CORE)
    header, values = _read_csv(export_csv(path, tmp_path / "core.csv"))
    keep = ACTIVE & CORE
    assert len(values) == keep.sum() == 3 + 4 + 4 + 3  # active cells of columns 1-4 above row 0
    column = dict(zip(header, values.T))
    np.testing.assert_array_equal(column["x_m"], X[keep])
    np.testing.assert_array_equal(column["z_m"], Z[keep])
    np.testing.assert_allclose(column["depth_m"], DEPTH[keep], rtol=1e-15)
    np.testing.assert_array_equal(column["resistivity[ohm*m]"], RESISTIVITY.reshape(NZ, NX)[keep])
    np.testing.assert_allclose(column["resistivity_std_ratio"], RATIO[keep], rtol=1e-15)
    # in the DOI: the rule of the sections (std ratio at most 0.8), 1 or 0
    np.testing.assert_array_equal(column["resistivity_in_doi"], RATIO[keep] <= 0.8)
    assert set(column["resistivity_in_doi"]) == {0.0, 1.0}
    saved = read_result(path)
    faded = unresolved_cells(saved, "resistivity").reshape(NZ, NX)
    np.testing.assert_array_equal(column["resistivity_in_doi"], ~faded[keep])
    assert "core" not in header


def test_csv_with_padding(tmp_path):
    path = write_result(tmp_path / "r.h5", diagnostics=_ratio_diagnostics(), core=CORE)
    header, values = _read_csv(export_csv(path, tmp_path / "all.csv", padding=True))
    column = dict(zip(header, values.T))
    assert len(values) == N_ACTIVE
    np.testing.assert_array_equal(column["core"], CORE[ACTIVE])
    np.testing.assert_array_equal(column["x_m"], X[ACTIVE])
    assert header[:4] == ["x_m", "z_m", "depth_m", "core"]


def test_csv_without_diagnostics_has_no_std_columns(tmp_path):
    path = write_result(tmp_path / "plain.h5", diagnostics=False, core=CORE)
    header, values = _read_csv(export_csv(path, tmp_path / "plain.csv"))
    assert header == ["x_m", "z_m", "depth_m", "resistivity[ohm*m]", "velocity[m/s]"]
    assert len(values) == (ACTIVE & CORE).sum()


def test_cli_export_csv_core_and_padding(tmp_path):
    path = write_result(tmp_path / "r.h5", diagnostics=_ratio_diagnostics(), core=CORE)
    core, everything = tmp_path / "core.csv", tmp_path / "all.csv"
    assert invoke("export", path, "--csv", core).exit_code == 0
    assert invoke("export", path, "--csv", everything, "--with-padding").exit_code == 0
    assert len(_read_csv(core)[1]) == (ACTIVE & CORE).sum()
    assert len(_read_csv(everything)[1]) == N_ACTIVE


# --------------------------------------------------------------------------- plots
def test_section_masks_air_and_draws_surface_and_sensors(result_file):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from jointinv.plotting import draw_section

    saved = read_result(result_file)
    fig, ax = plt.subplots()
    try:
        mesh = draw_section(ax, saved, saved.models["resistivity"], cmap="viridis")
        values = mesh.get_array()
        mask = np.ma.getmaskarray(values).reshape(NZ, NX)
        np.testing.assert_array_equal(mask, ~ACTIVE)
        np.testing.assert_array_equal(
            values.reshape(NZ, NX)[ACTIVE], RESISTIVITY.reshape(NZ, NX)[ACTIVE]
        )
        lines = {line.get_label(): line for line in ax.get_lines()}
        np.testing.assert_array_equal(lines["ground surface"].get_xydata(), SURFACE)
        labels = ("ert: electrodes", "traveltime: geophones/shots", "gravity: gravity stations")
        markers = {label: lines[label].get_marker() for label in labels}
        assert len(set(markers.values())) == 3
        z0, z1 = ax.get_ylim()
        # absolute elevations: the hill top (541.2) and the stations above it (542.2) show
        assert 542.2 < z1 < 543.0
        assert z0 == 536.0  # the mesh bottom (half the 5 m sensor span below the ground)
        assert ax.get_xlim() == pytest.approx((0.0, 6.0))
        assert ax.get_ylabel() == "elevation z (m)"
    finally:
        plt.close(fig)


def test_plot_result_with_topography(result_file, tmp_path):
    from jointinv.plotting import plot_result

    paths = plot_result(read_result(result_file), tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == [
        "convergence.png",
        "coverage_ert.png",
        "crossplot.png",
        "eigenvalues.png",
        "model_resistivity.png",
        "model_velocity.png",
        "posterior_std_resistivity.png",
        "posterior_std_velocity.png",
        "residuals_ert.png",
        "resolution_resistivity.png",
        "resolution_velocity.png",
    ]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- CLI
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert line.startswith("error: ") and fragment in line, line


def test_cli_export(result_file, tmp_path):
    vtu, table, sensors = tmp_path / "a.vtu", tmp_path / "a.csv", tmp_path / "s.vtu"
    result = invoke("export", result_file, "--vtk", vtu, "--csv", table, "--sensors", sensors)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"wrote {vtu}", f"wrote {table}", f"wrote {sensors}"]
    assert int(_piece(vtu).get("NumberOfCells")) == N_ACTIVE
    assert len(table.read_text().splitlines()) == N_ACTIVE + 1

    only_csv = tmp_path / "b.csv"
    result = invoke("export", result_file, "--csv", only_csv)
    assert result.exit_code == 0, result.output
    assert only_csv.read_text() == table.read_text()
    assert not (tmp_path / "b.vtu").exists()


def test_cli_export_needs_an_option(result_file):
    assert_user_error(invoke("export", result_file), "give at least one of --vtk OUT.vtu")


def test_cli_export_missing_file(tmp_path):
    missing = tmp_path / "nope.h5"
    assert_user_error(
        invoke("export", missing, "--csv", tmp_path / "a.csv"), f"{missing}: no such result file"
    )
    assert not (tmp_path / "a.csv").exists()


@pytest.mark.parametrize("content", ["text", "empty-hdf5"])
def test_cli_export_not_a_result(tmp_path, content):
    path = tmp_path / "bad.h5"
    if content == "text":
        path.write_text("not hdf5\n")
    else:
        h5py.File(path, "w").close()
    out = tmp_path / "a.vtu"
    assert_user_error(invoke("export", path, "--vtk", out), f"{path}: not a jointinv result")
    assert not out.exists()
