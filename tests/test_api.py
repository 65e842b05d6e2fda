"""The Python API's results: ``RunResult`` and ``SavedResult`` give their models on the
full (n_z, n_x) grid alike and plot themselves as matplotlib figures."""

from __future__ import annotations

import io
from types import SimpleNamespace

import h5py
import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

import jointinv
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.results import fill_mesh, fill_model, read_result, result_from_file
from jointinv.runner import RunResult

from .conftest import Workspace, gravity_only_mapping

#: the figures of a gravity-only result with diagnostics (the PNGs of show --plot)
GRAVITY_FIGURES = [
    "model_density_contrast",
    "fit_gravity",
    "convergence",
    "posterior_std_density_contrast",
    "resolution_density_contrast",
    "coverage_gravity",
    "residuals_gravity",
    "eigenvalues",
]


def test_model_grids_put_air_cells_where_the_file_does():
    """A mesh with topography: the active cells of a run spread onto the grid as the
    result file stores them (NaN in the air), for RunResult and SavedResult alike."""
    surface = np.array([[0.0, 0.0], [10.0, 3.0], [20.0, 1.0]])
    mesh = ModelMesh(MeshSpec(0, 20, 5, 1, 1, n_pad_x=2, n_pad_z=2), surface)
    assert not mesh.active.all()
    values = np.arange(mesh.active.sum(), dtype=float)
    run = RunResult(SimpleNamespace(mesh=mesh), None, {"v": values}, {}, None)
    with h5py.File(io.BytesIO(), "w") as f:
        nx, nz = mesh.shape
        fill_mesh(f, mesh.nodes_x, mesh.nodes_z, np.ones(nx * nz, bool), active=mesh.active)
        fill_model(f, "v", values, units="m/s", transform="log")
        stored = f["models/v"][()]
        f.create_group("meta")
        f.create_group("data")
        f.create_group("iterations")
        saved = result_from_file(f)
    grid = run.model_grids["v"]
    assert grid.shape == (nz, nx)
    np.testing.assert_array_equal(grid, stored)
    np.testing.assert_array_equal(saved.model_grids["v"], stored)
    assert np.isnan(grid[-1]).any() and not np.isnan(grid[0]).any()  # air at the top


@pytest.fixture(scope="module")
def gravity(tmp_path_factory):
    """A gravity-only run with diagnostics and a separate inversion, and its file."""
    ws = Workspace(tmp_path_factory.mktemp("api"))
    config = ws.write("gravity.yaml", gravity_only_mapping())
    out = ws.root / "run.h5"
    result = jointinv.run(config, output=out, separate=True)
    return result, read_result(out)


def test_run_result_grids_equal_the_saved_result(gravity):
    result, saved = gravity
    assert list(result.model_grids) == list(saved.model_grids) == ["density_contrast"]
    for name, grid in result.model_grids.items():
        np.testing.assert_array_equal(grid, saved.model_grids[name])
        np.testing.assert_array_equal(grid.ravel(), saved.models[name])


def test_run_result_as_saved_equals_the_file(gravity):
    result, saved = gravity
    memory = result.as_saved()
    assert memory is result.as_saved()  # made once
    name = "density_contrast"
    np.testing.assert_array_equal(memory.models[name], saved.models[name])
    assert memory.iterations.keys() == saved.iterations.keys()
    for key, values in saved.iterations.items():
        np.testing.assert_array_equal(memory.iterations[key], values)
    assert memory.data["gravity"].chi2 == saved.data["gravity"].chi2
    np.testing.assert_array_equal(
        memory.diagnostics.posterior_std["density_contrast"],
        saved.diagnostics.posterior_std["density_contrast"],
    )
    assert memory.meta["config_text"] == saved.meta["config_text"]
    assert list(memory.meta["chi2_band"]) == list(saved.meta["chi2_band"])


@pytest.mark.parametrize("source", ["run", "saved"])
def test_plot_gives_every_figure_by_name(gravity, source):
    result, saved = gravity
    backend = matplotlib.get_backend()
    figures = (result if source == "run" else saved).plot()
    assert list(figures) == GRAVITY_FIGURES
    assert all(isinstance(fig, Figure) and fig.axes for fig in figures.values())
    assert matplotlib.get_backend() == backend


@pytest.mark.parametrize(
    ("which", "title"),
    [
        ("density_contrast", "density_contrast"),  # a property: its section
        ("model_density_contrast", "density_contrast"),
        ("gravity", "gravity"),  # a modality: its data fit
        ("eigenvalues", ""),
    ],
)
def test_plot_one_figure(gravity, which, title):
    result, _ = gravity
    fig = result.plot(which)
    assert isinstance(fig, Figure)
    assert fig.axes[0].get_title().startswith(title)


def test_plot_without_doi_mask(gravity):
    _, saved = gravity
    faded = saved.plot("density_contrast").axes[0].get_title()
    plain = saved.plot("density_contrast", doi_mask=False).axes[0].get_title()
    assert "faded" in faded and plain == "density_contrast"


def test_unknown_figure_lists_the_figures(gravity):
    result, _ = gravity
    with pytest.raises(KeyError, match="no figure 'velocity'; there are: model_density"):
        result.plot("velocity")


def test_separate_result_plots_itself(gravity):
    result, _ = gravity
    alone = result.separate["gravity"]
    shape = result.model_grids["density_contrast"].shape
    assert alone.model_grids["density_contrast"].shape == shape
    assert list(alone.plot()) == ["model_density_contrast", "fit_gravity", "convergence"]
