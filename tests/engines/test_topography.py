"""Engines on a model mesh with topography (absolute elevations, triangle engine meshes).

Each engine is checked against an analytic or independent solution, with an
adjoint test and a Taylor test through the transfer from model cells.
"""

from __future__ import annotations

import numpy as np
import pygimli as pg
import pytest
from pygimli.physics import ert

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.engines.ert import ErtSimulation, geometric_factors
from jointinv.engines.gravity import GravitySimulation
from jointinv.engines.traveltime import TraveltimeSimulation
from jointinv.mesh import MeshSpec, ModelMesh

SPEC = MeshSpec(x_min=-4, x_max=52, depth=15, dx=1.0, dz=1.0, n_pad_x=10, n_pad_z=10)
BASE = 540.0  # m, absolute elevation as in field files


def hill(x: np.ndarray) -> np.ndarray:
    """A smooth hill with flanks (4 m relief), elevation in m."""
    return BASE + 4.0 * np.exp(-(((x - 24.0) / 8.0) ** 2))


def dipole_dipole(n: int, max_sep: int = 6) -> np.ndarray:
    rows = [[a, a + 1, a + s + 1, a + s + 2] for a in range(n) for s in range(1, max_sep + 1)]
    return np.array([r for r in rows if r[3] < n])


def pg_scheme(electrodes: np.ndarray, abmn: np.ndarray) -> pg.DataContainerERT:
    data = pg.DataContainerERT()
    for p in electrodes:
        data.createSensor(pg.Pos(*p))
    for i, (a, b, m, n) in enumerate(abmn):
        data.createFourPointData(i, int(a), int(b), int(m), int(n))
    return data


@pytest.fixture(scope="module")
def hill_ert():
    x = np.arange(0.0, 48.1, 2.0)
    electrodes = np.c_[x, hill(x)]
    abmn = dipole_dipole(len(x))
    # independent: pyGIMLi's numerical geometric factors, on its own refined mesh
    k = np.array(ert.createGeometricFactors(pg_scheme(electrodes, abmn), numerical=True))
    mesh = ModelMesh(SPEC, electrodes)
    sim = ErtSimulation(mesh, electrodes, abmn, geometric_factors=k, threads=1)
    return mesh, sim, electrodes, abmn, k


# --- the mesh ------------------------------------------------------------------------
def test_no_active_cell_above_the_surface():
    x = np.arange(0.0, 48.1, 1.0)
    mesh = ModelMesh(SPEC, np.c_[x, hill(x)])
    centres = mesh.tensor.cell_centers
    surface = mesh.surface_elevation(centres[:, 0])
    assert np.all(centres[mesh.active, 1] < surface[mesh.active])
    # every cell that lies wholly above the surface is inactive
    hx, hz = mesh.tensor.h
    nx = len(hx)
    bottom = mesh.nodes_z[np.arange(mesh.tensor.n_cells) // nx]
    left = mesh.nodes_x[np.arange(mesh.tensor.n_cells) % nx]
    highest = np.maximum(mesh.surface_elevation(left), mesh.surface_elevation(left + hx[0]))
    assert not np.any(mesh.active & (bottom >= highest))
    assert mesh.n_cells < mesh.tensor.n_cells
    assert mesh.nodes_z[-1] == pytest.approx(BASE + 4.0, abs=1e-9)
    # the core reaches `depth` below the lowest surface point
    assert mesh._core_bottom <= BASE - SPEC.depth + 1e-9


def test_regularization_operators_skip_air_cells():
    x = np.arange(0.0, 48.1, 1.0)
    mesh = ModelMesh(SPEC, np.c_[x, hill(x)])
    assert mesh.gradient_x.shape[1] == mesh.n_cells
    assert np.abs(mesh.gradient_x @ np.ones(mesh.n_cells)).max() == 0.0
    assert np.abs(mesh.gradient_z @ np.ones(mesh.n_cells)).max() == 0.0
    gx, gz = mesh.cell_gradient
    c = mesh.cell_centers
    linear = 2.0 * c[:, 0] - 3.0 * c[:, 1]
    np.testing.assert_allclose(gx @ linear, 2.0, atol=1e-9)
    np.testing.assert_allclose(gz @ linear, -3.0, atol=1e-9)


# --- ERT -------------------------------------------------------------------------------
def test_ert_flat_at_absolute_elevation_matches_half_space():
    x = np.arange(0.0, 48.1, 2.0)
    electrodes = np.c_[x, np.full_like(x, BASE)]
    abmn = dipole_dipole(len(x))
    mesh = ModelMesh(SPEC, electrodes)
    k = geometric_factors(np.c_[x, np.zeros_like(x)], abmn)
    sim = ErtSimulation(mesh, electrodes, abmn, geometric_factors=k)
    rhoa = sim.apparent_resistivity(sim.transfer(np.full(mesh.n_cells, 100.0)))
    assert np.abs(rhoa / 100.0 - 1.0).max() < 0.005


def test_ert_homogeneous_hill_with_numerical_k(hill_ert):
    mesh, sim, *_ = hill_ert
    rhoa = sim.apparent_resistivity(sim.transfer(np.full(mesh.n_cells, 100.0)))
    error = np.abs(rhoa / 100.0 - 1.0)
    assert error.max() < 0.01
    assert np.median(error) < 0.002


def test_ert_layer_under_hill_matches_pygimli_on_its_own_mesh(hill_ert):
    mesh, sim, electrodes, abmn, k = hill_ert
    rho = np.where(mesh.depth_below_surface < 5.0, 50.0, 300.0)
    ours = sim.apparent_resistivity(sim.transfer(rho))
    scheme = pg_scheme(electrodes, abmn)
    scheme.set("k", pg.Vector(k))
    plc = pg.meshtools.createParaMeshPLC(
        scheme, paraDX=0.25, paraMaxCellSize=0.5, paraDepth=20, boundary=4
    )
    own = pg.meshtools.createMesh(plc, quality=34)
    cx = np.array(own.cellCenters())
    depth = np.interp(cx[:, 0], electrodes[:, 0], electrodes[:, 1]) - cx[:, 1]
    res = np.where(depth < 5.0, 50.0, 300.0)
    # keep the container alive: its vectors are views into it
    simulated = ert.simulate(own, scheme=scheme, res=res, noiseLevel=0, noiseAbs=0, verbose=False)
    ref = np.array(simulated["rhoa"])
    error = np.abs(ours / ref - 1.0)
    # the two meshes represent the 5 m interface differently (1 m model cells
    # against exact triangles): a few percent at most, well under 1 % typically
    assert error.max() < 0.03
    assert np.median(error) < 0.006


def test_ert_adjoint_and_taylor_through_the_transfer():
    x = np.arange(0.0, 24.1, 2.0)
    electrodes = np.c_[x, BASE + 0.1 * x]
    abmn = dipole_dipole(len(x), 4)
    spec = MeshSpec(x_min=-2, x_max=26, depth=8, dx=1.0, dz=1.0, n_pad_x=4, n_pad_z=4)
    mesh = ModelMesh(spec, electrodes)
    k = geometric_factors(np.c_[x, np.zeros_like(x)], abmn)
    # without singularity removal pyGIMLi's Jacobian is the exact derivative
    sim = ErtSimulation(mesh, electrodes, abmn, geometric_factors=k, singularity_removal=False)
    rng = np.random.default_rng(3)
    rho = 100.0 * np.exp(0.3 * rng.standard_normal(mesh.n_cells))
    P = sim.transfer.matrix

    def fun(r):
        return sim.forward(P @ r)

    def jvec(v):
        return sim.jvec(P @ rho, P @ v)

    def jtvec(w):
        return P.T @ sim.jtvec(P @ rho, w)

    assert adjoint_mismatch(jvec, jtvec, mesh.n_cells, sim.n_data, rng=rng) < 1e-10
    dm = rho * 0.5 * rng.standard_normal(mesh.n_cells)
    steps, e0, e1 = taylor_orders(fun, jvec, rho, dm, steps=10.0 ** -np.arange(1, 4.5, 0.5))
    assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.1)
    assert convergence_order(steps, e1) > 1.8


# --- traveltime -------------------------------------------------------------------------
def _shots_and_geophones(n: int, shots: list[int]) -> tuple[np.ndarray, np.ndarray]:
    s, g = np.meshgrid(shots, np.arange(n))
    s, g = s.ravel(), g.ravel()
    keep = s != g
    return s[keep], g[keep]


@pytest.mark.parametrize("shape", ["hill", "valley"])
def test_traveltime_homogeneous_geodesics(shape):
    """Convex hill: the ground below is convex, first arrivals are straight
    chords. Valley: the fastest path hugs the surface (its arc length)."""
    x = np.arange(0.0, 48.1, 1.0)
    if shape == "hill":
        z = BASE + 5.0 - 0.006 * (x - 24.0) ** 2
    else:
        z = BASE + 0.004 * (x - 24.0) ** 2
    surface = np.c_[x, z]
    mesh = ModelMesh(SPEC, surface)
    shot, geo = _shots_and_geophones(len(x), [0, 12, 24, 36, 48])
    sim = TraveltimeSimulation(mesh, surface, shot, geo)
    times = sim.forward(sim.transfer(np.full(mesh.n_cells, 1000.0)))
    if shape == "hill":
        path = np.hypot(*(surface[shot] - surface[geo]).T)
    else:
        arc = np.r_[0.0, np.cumsum(np.hypot(*np.diff(surface, axis=0).T))]
        path = np.abs(arc[shot] - arc[geo])
    error = times / (path / 1000.0) - 1.0
    assert error.min() > -1e-9  # never faster than the true geodesic
    assert error.max() < 0.006


def test_traveltime_adjoint_and_taylor_through_the_transfer():
    x = np.arange(0.0, 24.1, 1.0)
    surface = np.c_[x, BASE + 2.0 * np.sin(x / 6.0)]
    spec = MeshSpec(x_min=-2, x_max=26, depth=8, dx=1.0, dz=1.0, n_pad_x=4, n_pad_z=4)
    mesh = ModelMesh(spec, surface)
    shot, geo = _shots_and_geophones(len(x), [0, 8, 16, 24])
    sim = TraveltimeSimulation(mesh, surface, shot, geo, secondary_nodes=2)
    rng = np.random.default_rng(5)
    depth = mesh.depth_below_surface
    velocity = 500.0 + 150.0 * depth
    P = sim.transfer.matrix

    def jvec(v):
        return sim.jvec(P @ velocity, P @ v)

    def jtvec(w):
        return P.T @ sim.jtvec(P @ velocity, w)

    assert adjoint_mismatch(jvec, jtvec, mesh.n_cells, sim.n_data, rng=rng) < 1e-10
    dm = velocity * 0.05 * rng.standard_normal(mesh.n_cells)
    steps = 10.0 ** -np.arange(2, 5)
    steps, e0, e1 = taylor_orders(lambda v: sim.forward(P @ v), jvec, velocity, dm, steps=steps)
    assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.1)
    assert convergence_order(steps, e1) > 1.8


def test_sensor_far_from_the_surface_is_refused():
    x = np.arange(0.0, 24.1, 1.0)
    surface = np.c_[x, np.full_like(x, BASE)]
    spec = MeshSpec(x_min=-2, x_max=26, depth=8, dx=1.0, dz=1.0, n_pad_x=4, n_pad_z=4)
    mesh = ModelMesh(spec, surface)
    sensors = surface.copy()
    sensors[3, 1] += 2.0
    from jointinv.errors import EngineError

    with pytest.raises(EngineError, match="sensor 4 .* from the ground surface"):
        TraveltimeSimulation(mesh, sensors, np.array([0]), np.array([5]), sensor_tolerance=0.25)


# --- gravity ----------------------------------------------------------------------------
def test_gravity_ignores_air_cells_and_matches_the_full_kernel():
    """With topography the kernel holds exactly the active columns of the
    kernel of the whole tensor mesh (air carries no density contrast)."""
    x = np.arange(0.0, 48.1, 4.0)
    surface = np.c_[x, hill(x)]
    topo = ModelMesh(SPEC, surface)
    flat = ModelMesh.from_nodes(topo.nodes_x, topo.nodes_z)
    stations = np.c_[x, hill(x) + 0.5]
    full = GravitySimulation(flat, stations).kernel
    ours = GravitySimulation(topo, stations).kernel
    assert ours.shape == (len(x), topo.n_cells)
    np.testing.assert_allclose(ours, full[:, topo.active], rtol=1e-12, atol=0)
