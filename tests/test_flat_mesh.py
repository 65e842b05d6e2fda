"""A flat survey whose sensors are off the uniform grid: the mesh puts nodes at them."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.config import load_config
from jointinv.engines.ert import ErtSimulation, geometric_factors
from jointinv.problem import build_mesh, load_datasets

from .conftest import quickstart_mapping
from .test_cli import assert_user_error

runner = CliRunner()
SPACING = 1.3  # m, on a 1 m mesh
N_ELECTRODES = 16
RHO = 100.0  # ohm*m, homogeneous half-space


def wenner(n: int, max_a: int) -> np.ndarray:
    """Wenner-alpha ABMN (0-based): A M N B, a = 1..max_a spacings."""
    return np.array([(i, i + 3 * a, i + a, i + 2 * a) for a in range(1, max_a + 1)
                     for i in range(n - 3 * a)])


def write_ohm(path, electrodes: np.ndarray) -> None:
    """A BERT .ohm file of a Wenner survey over the half-space: rho_a = RHO exactly."""
    abmn = wenner(len(electrodes), 4)
    k = geometric_factors(electrodes, abmn)
    sensors = "".join(f"{x:.3f} {z:.3f}\n" for x, z in electrodes)
    rows = "".join(f"{a + 1} {b + 1} {m + 1} {n + 1} {RHO} {kk:.6f}\n"
                   for (a, b, m, n), kk in zip(abmn, k))
    path.write_text(f"{len(electrodes)}\n# x z\n{sensors}{len(abmn)}\n# a b m n rhoa k\n{rows}")


def ert_config(workspace, electrodes: np.ndarray) -> object:
    write_ohm(workspace.root / "offgrid.ohm", electrodes)
    raw = quickstart_mapping()
    raw["mesh"] = {"core": {"x_min": -2, "x_max": 22, "depth": 8},
                   "cell_size": {"dx": 1.0, "dz": 1.0}, "padding": {"n_x": 8, "n_z": 8}}
    raw["properties"] = {"resistivity": {**raw["properties"]["resistivity"], "start": 70}}
    raw["modalities"] = {"ert": {**raw["modalities"]["ert"], "data": "offgrid.ohm"}}
    raw["coupling"] = []
    raw["regularization"].pop("property_weights")
    raw["inversion"]["max_iterations"] = 12
    raw["diagnostics"] = {"enabled": False}
    return workspace.write("offgrid.yaml", raw)


def surface(spacing: float = SPACING) -> np.ndarray:
    return np.column_stack([spacing * np.arange(N_ELECTRODES), np.zeros(N_ELECTRODES)])


def test_validate_reports_nodes_at_the_sensors(workspace):
    result = runner.invoke(app, ["validate", str(ert_config(workspace, surface()))])
    assert result.exit_code == 0, result.output
    assert "; nodes at the sensors (off the 1 x 1 m grid): core cells 1-1.3 m wide, 1 m high" in (
        result.stdout
    )


def test_forward_on_the_config_mesh_is_the_half_space(workspace):
    """The mesh the config builds has a node at every electrode, and the ERT engine on
    it gives the half-space's rho_a within 1 % (measured 0.14 %)."""
    loaded = load_config(ert_config(workspace, surface()))
    datasets = load_datasets(loaded)
    mesh = build_mesh(loaded.config, datasets)
    survey = datasets["ert"].survey
    sim = ErtSimulation(mesh, survey.electrodes, survey.abmn)
    np.testing.assert_allclose(sim.electrodes, surface(), atol=1e-9)  # nodes, not snapped
    rhoa = sim.apparent_resistivity(np.full(sim.n_params, RHO))
    assert np.max(np.abs(rhoa / RHO - 1.0)) < 0.01


def test_run_reaches_the_target(workspace):
    """ERT alone from 70 ohm*m on that mesh: the inversion fits the data (chi2 <= 1)."""
    out = workspace.root / "offgrid.h5"
    result = runner.invoke(app, ["run", str(ert_config(workspace, surface())), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out, "r") as f:
        nodes_x = f["mesh/nodes_x"][()]
        chi2 = f["data/ert"].attrs["chi2"]
    assert np.abs(np.subtract.outer(surface()[:, 0], nodes_x)).min(axis=1).max() < 1e-6
    assert chi2 <= 1.0


@pytest.mark.parametrize(
    ("z", "fragments"),
    [
        (0.5, ["offgrid.ohm", "sensor 3 at z = 0.5 m is above the flat ground surface z = 0",
               "set mesh.topography"]),
        (-9.0, ["offgrid.yaml: mesh.core.depth: sensor 3 of offgrid.ohm at z = -9 m lies "
                "below the core (depth 8 m); deepen mesh.core.depth to >= 9"]),
    ],
)
def test_sensor_above_the_surface_or_below_the_core(workspace, z, fragments):
    electrodes = surface()
    electrodes[2, 1] = z
    result = runner.invoke(app, ["validate", str(ert_config(workspace, electrodes))])
    assert_user_error(result, *fragments)
