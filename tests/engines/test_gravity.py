"""Tests of the 2D gravity engine (pyGIMLi Won & Bevis line integrals).

Conventions under test: z up, gz in mGal positive for excess mass below the
station, density contrast in g/cm³.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from scipy.integrate import quad

from jointinv.checks import adjoint_mismatch, taylor_orders
from jointinv.engines.gravity import GRAVITATIONAL_CONSTANT, GravitySimulation
from jointinv.mesh import MeshSpec, ModelMesh

MGAL_PER_SI = 1e5  # mGal per m/s²
KG_M3_PER_G_CM3 = 1000.0


# --- fixtures ---------------------------------------------------------------
@pytest.fixture(scope="module")
def small_mesh() -> ModelMesh:
    """Irregular 3 x 3 grid; cell (x 0..2, z -3..-1) is buried, (x 0..2, z -1..0) is at the top."""
    return ModelMesh.from_nodes(np.array([-1.0, 0.0, 2.0, 3.0]), np.array([-5.0, -3.0, -1.0, 0.0]))


@pytest.fixture(scope="module")
def profile_sim() -> GravitySimulation:
    mesh = ModelMesh(MeshSpec(x_min=-10, x_max=10, depth=8, dx=1, dz=1, n_pad_x=3, n_pad_z=3))
    stations = np.c_[np.linspace(-12, 12, 13), np.zeros(13)]
    return GravitySimulation(mesh, stations)


def _cell_index(mesh: ModelMesh, center: tuple[float, float]) -> int:
    hit = np.flatnonzero(np.all(np.isclose(mesh.cell_centers, center), axis=1))
    assert len(hit) == 1
    return int(hit[0])


# --- 1. buried horizontal cylinder -----------------------------------------
def test_buried_cylinder_matches_line_mass():
    """Cells with centre inside a circle (R = 4 m, centre 10 m deep) vs a line mass.

    The selected cells form a 4-fold symmetric set centred on the axis, so
    their field outside the set differs from that of a line mass of the same
    area only by octupole and higher terms (~1e-4 here). The tolerance is
    pointwise (not only relative to the peak): at |x| = 40 m gz is still 6 %
    of the peak, far above round-off, so every station is a meaningful check.
    """
    h, radius, depth, contrast = 0.5, 4.0, 10.0, 0.5
    mesh = ModelMesh(MeshSpec(x_min=-20, x_max=20, depth=20, dx=h, dz=h, n_pad_x=2, n_pad_z=2))
    x = np.arange(-40.0, 40.5, 2.0)
    sim = GravitySimulation(mesh, np.c_[x, np.zeros_like(x)])

    xc, zc = mesh.cell_centers.T
    inside = xc**2 + (zc + depth) ** 2 < radius**2
    area = mesh.cell_areas[inside].sum()
    assert abs(area - np.pi * radius**2) < 0.05 * np.pi * radius**2

    gz = sim.forward(np.where(inside, contrast, 0.0))
    g_si = 6.674e-11
    analytic = (
        2 * g_si * contrast * KG_M3_PER_G_CM3 * area * depth / (x**2 + depth**2) * MGAL_PER_SI
    )
    assert analytic.max() == pytest.approx(0.0347048, rel=1e-5)  # mGal, sanity of the formula
    rel_err = np.abs(gz - analytic) / analytic
    assert rel_err.max() < 5e-3


# --- 2. single cell vs independent quadrature -------------------------------
def _quadrature_gz(x0, x1, z0, z1, xs, zs) -> float:
    """2 G Δρ ∫∫ (zs - z) / ((x - xs)² + (z - zs)²) dz dx for Δρ = 1 g/cm³, in mGal."""

    def inner(x: float) -> float:
        val, _ = quad(
            lambda z: (zs - z) / ((x - xs) ** 2 + (z - zs) ** 2), z0, z1, epsabs=0, epsrel=1e-13
        )
        return val

    breaks = [xs] if x0 < xs < x1 else None
    val, _ = quad(inner, x0, x1, points=breaks, epsabs=0, epsrel=1e-12, limit=200)
    return 2 * GRAVITATIONAL_CONSTANT * KG_M3_PER_G_CM3 * val * MGAL_PER_SI


STATIONS = np.array(
    [
        [1.0, 0.0],  # on the surface above the cell centre
        [7.0, 0.0],  # far to the side
        [-4.0, 3.0],  # above the surface, off to the side
        [0.0, 0.0],  # on a mesh node
        [2.5, 0.0],  # on the top edge of a surface cell
    ]
)


@pytest.mark.parametrize(
    ("center", "bounds"),
    [((1.0, -2.0), (0.0, 2.0, -3.0, -1.0)), ((1.0, -0.5), (0.0, 2.0, -1.0, 0.0))],
    ids=["buried cell", "surface cell"],
)
def test_single_cell_kernel_matches_quadrature(small_mesh, center, bounds):
    sim = GravitySimulation(small_mesh, STATIONS)
    column = sim.kernel[:, _cell_index(small_mesh, center)]
    reference = np.array([_quadrature_gz(*bounds, xs, zs) for xs, zs in STATIONS])
    np.testing.assert_allclose(column, reference, rtol=1e-6, atol=0)


def test_gravitational_constant_is_codata_like():
    assert GRAVITATIONAL_CONSTANT == pytest.approx(6.6743e-11, rel=1e-4)


def test_kernel_equals_pygimli_solve_gravimetry(small_mesh):
    """The leaner assembly reproduces pyGIMLi's own kernel function."""
    from pygimli.physics.gravimetry import solveGravimetry

    from jointinv.engines.pgmesh import build_pg_grid

    grid, to_grid = build_pg_grid(small_mesh)
    reference = np.asarray(solveGravimetry(grid, None, pnts=STATIONS.tolist()))
    reference = reference @ to_grid.matrix.toarray() * KG_M3_PER_G_CM3
    sim = GravitySimulation(small_mesh, STATIONS)
    np.testing.assert_allclose(sim.kernel, reference, rtol=1e-12, atol=1e-15)


# --- 3. sign -----------------------------------------------------------------
def test_positive_contrast_gives_positive_gz_above(small_mesh):
    x = np.linspace(-30, 30, 25)
    above = np.r_[np.c_[x, np.zeros_like(x)], np.c_[x, np.full_like(x, 5.0)]]
    below = np.c_[x, np.full_like(x, -20.0)]
    sim = GravitySimulation(small_mesh, np.r_[above, below])
    model = np.zeros(small_mesh.n_cells)
    model[_cell_index(small_mesh, (1.0, -2.0))] = 0.3
    gz = sim.forward(model)
    assert np.all(gz[: len(above)] > 0)
    assert np.all(gz[len(above) :] < 0)  # the same mass pulls up a station below it
    assert np.all(sim.forward(-model)[: len(above)] < 0)


# --- 4. adjoint and Taylor ----------------------------------------------------
def test_adjoint(profile_sim):
    rng = np.random.default_rng(0)
    m = rng.uniform(-0.5, 0.5, profile_sim.n_params)
    mismatch = adjoint_mismatch(
        lambda v: profile_sim.jvec(m, v),
        lambda w: profile_sim.jtvec(m, w),
        profile_sim.n_params,
        profile_sim.n_data,
        rng=rng,
    )
    assert mismatch < 1e-12


def test_taylor_linear(profile_sim):
    rng = np.random.default_rng(1)
    m = rng.uniform(-0.5, 0.5, profile_sim.n_params)
    dm = rng.uniform(-0.5, 0.5, profile_sim.n_params)
    _, e0, e1 = taylor_orders(profile_sim.forward, lambda v: profile_sim.jvec(m, v), m, dm)
    assert np.all(e0 > 0)
    assert np.all(e1 / e0 < 1e-8)


# --- 5. linearity -------------------------------------------------------------
def test_linearity(profile_sim):
    rng = np.random.default_rng(2)
    m1, m2 = rng.uniform(-0.5, 0.5, (2, profile_sim.n_params))
    a, b = 1.7, -0.6
    lhs = profile_sim.forward(a * m1 + b * m2)
    rhs = a * profile_sim.forward(m1) + b * profile_sim.forward(m2)
    assert np.linalg.norm(lhs - rhs) <= 1e-12 * np.linalg.norm(rhs)


# --- interface ------------------------------------------------------------------
def test_interface(profile_sim):
    sim = profile_sim
    assert sim.kernel.shape == (sim.n_data, sim.n_params)
    assert sim.n_params == 20 * 8 + 2 * 3 * 8 + 26 * 3
    assert sim.transfer.n_in == sim.transfer.n_out == sim.n_params
    p = np.arange(sim.n_params, dtype=float)
    np.testing.assert_array_equal(sim.transfer(p), p)
    assert sim.clock.calls["jacobian"] == 1 and sim.clock.seconds["jacobian"] > 0
    with pytest.raises(ValueError):
        sim.forward(np.zeros(sim.n_params + 1))
    with pytest.raises(ValueError):
        sim.jtvec(np.zeros(sim.n_params), np.zeros(sim.n_data + 1))


def test_bad_stations_rejected(small_mesh):
    with pytest.raises(ValueError):
        GravitySimulation(small_mesh, np.zeros((3, 3)))
    with pytest.raises(ValueError):
        GravitySimulation(small_mesh, np.array([[0.0, np.nan]]))


def test_station_below_surface_warns(small_mesh, caplog):
    with caplog.at_level(logging.WARNING, logger="jointinv.engines.gravity"):
        GravitySimulation(small_mesh, np.array([[0.0, 1.0], [0.5, 0.0]]))
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="jointinv.engines.gravity"):
        sim = GravitySimulation(small_mesh, np.array([[0.0, 1.0], [0.5, -0.5]]))
    assert any("below the surface" in r.getMessage() for r in caplog.records)
    assert np.all(np.isfinite(sim.kernel))
