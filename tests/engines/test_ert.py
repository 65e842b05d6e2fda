"""Tests of the pyGIMLi ERT adapter against analytic solutions and its own derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.engines.ert import ErtSimulation, geometric_factors
from jointinv.errors import EngineError
from jointinv.mesh import MeshSpec, ModelMesh

SPACING = 2.0  # electrode spacing (m)


# --- configurations and analytic solutions -----------------------------------
def surface_electrodes(n: int, spacing: float = SPACING) -> np.ndarray:
    """``n`` electrodes at ``x = 0, spacing, ...`` on the surface, shape (n, 2) (m)."""
    x = spacing * np.arange(n)
    return np.column_stack([x, np.zeros(n)])


def wenner(n_electrodes: int, max_a: int) -> np.ndarray:
    """Wenner-alpha ABMN (A M N B equally spaced), ``a = 1..max_a`` spacings."""
    rows = [
        (i, i + 3 * a, i + a, i + 2 * a)
        for a in range(1, max_a + 1)
        for i in range(n_electrodes - 3 * a)
    ]
    return np.array(rows)


def dipole_dipole(n_electrodes: int, max_n: int, max_a: int) -> np.ndarray:
    """Dipole-dipole ABMN: dipole length ``a`` spacings, separation ``n a``."""
    rows = [
        (i, i + a, i + a + n * a, i + 2 * a + n * a)
        for a in range(1, max_a + 1)
        for n in range(1, max_n + 1)
        for i in range(n_electrodes - (n + 2) * a)
    ]
    return np.array(rows)


def two_layer_potential(
    r: np.ndarray, rho1: float, rho2: float, h: float, n_terms: int = 400
) -> np.ndarray:
    """Surface potential (V) of a 1 A point source on a two-layer earth.

    Image series: ``V = rho1 I / (2 pi) [1/r + 2 sum_{n>=1} K^n / sqrt(r^2 + (2 n h)^2)]``
    with ``K = (rho2 - rho1) / (rho2 + rho1)``.

    Parameters
    ----------
    r : ndarray
        Source-receiver distance on the surface (m), > 0.
    rho1, rho2 : float
        Resistivity of the top layer and of the half-space below (Ohm·m).
    h : float
        Thickness of the top layer (m).
    n_terms : int
        Number of image terms (|K|^n_terms must be negligible).
    """
    k = (rho2 - rho1) / (rho2 + rho1)
    n = np.arange(1, n_terms + 1)
    r = np.asarray(r, dtype=float)[..., None]
    series = np.sum(k**n / np.sqrt(r**2 + (2.0 * n * h) ** 2), axis=-1)
    return rho1 / (2.0 * np.pi) * (1.0 / r[..., 0] + 2.0 * series)


def two_layer_rhoa(
    electrodes: np.ndarray, abmn: np.ndarray, rho1: float, rho2: float, h: float
) -> np.ndarray:
    """Analytic apparent resistivity (Ohm·m) of surface arrays on a two-layer earth.

    ``rho_a = dU / dU_1`` with ``dU_1`` the voltage over a 1 Ohm·m half-space
    (independent of the adapter's own geometric factors). No remote electrodes.
    """
    x = electrodes[:, 0]
    a, b, m, n = abmn.T

    def voltage(r1: float, r2: float) -> np.ndarray:
        def v(i: np.ndarray, j: np.ndarray) -> np.ndarray:
            return two_layer_potential(np.abs(x[i] - x[j]), r1, r2, h)

        return v(a, m) - v(a, n) - v(b, m) + v(b, n)

    return voltage(rho1, rho2) / voltage(1.0, 1.0)


# --- fixtures ------------------------------------------------------------------
@pytest.fixture(scope="module")
def accuracy_mesh() -> ModelMesh:
    """30 m x 12 m core with 1 m cells and the default padding (8 cells, factor 1.4)."""
    return ModelMesh(MeshSpec(x_min=0.0, x_max=30.0, depth=12.0, dx=1.0, dz=1.0))


@pytest.fixture(scope="module")
def small_mesh() -> ModelMesh:
    """Small mesh for derivative tests (16 m x 6 m core, 286 cells)."""
    spec = MeshSpec(0.0, 16.0, 6.0, 1.0, 1.0, n_pad_x=5, n_pad_z=5, pad_factor=1.6)
    return ModelMesh(spec)


@pytest.fixture(scope="module")
def small_survey() -> tuple[np.ndarray, np.ndarray]:
    electrodes = surface_electrodes(9)
    return electrodes, dipole_dipole(9, max_n=3, max_a=1)


def heterogeneous_model(mesh: ModelMesh, seed: int = 0) -> np.ndarray:
    """Log-normal random resistivity around 100 Ohm·m (model-cell order)."""
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(0.4 * rng.standard_normal(mesh.n_cells))


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- accuracy --------------------------------------------------------------------
@pytest.mark.parametrize(
    "abmn", [wenner(16, 4), dipole_dipole(16, 6, 2)], ids=["wenner", "dipole-dipole"]
)
def test_half_space_within_one_percent(accuracy_mesh, abmn):
    sim = ErtSimulation(accuracy_mesh, surface_electrodes(16), abmn)
    rhoa = sim.apparent_resistivity(np.full(sim.n_params, 100.0))
    assert np.max(np.abs(rhoa / 100.0 - 1.0)) < 0.01  # measured 0.14 % / 0.30 %


@pytest.mark.parametrize(
    "abmn", [wenner(16, 4), dipole_dipole(16, 6, 2)], ids=["wenner", "dipole-dipole"]
)
@pytest.mark.parametrize("rho1, rho2", [(50.0, 200.0), (200.0, 50.0)])
def test_two_layer_within_one_percent(accuracy_mesh, abmn, rho1, rho2):
    electrodes = surface_electrodes(16)
    sim = ErtSimulation(accuracy_mesh, electrodes, abmn)
    depth = -accuracy_mesh.cell_centers[:, 1]
    model = np.where(depth < 5.0, rho1, rho2)  # model-cell order
    rhoa = sim.apparent_resistivity(sim.transfer(model))
    expected = two_layer_rhoa(electrodes, abmn, rho1, rho2, h=5.0)
    assert np.ptp(expected) / expected.mean() > 0.3  # the layer is actually seen
    assert np.max(np.abs(rhoa / expected - 1.0)) < 0.01  # measured <= 0.4 %


@pytest.mark.parametrize("spacing", [1.3, 1.7])
@pytest.mark.parametrize(
    "abmn", [wenner(16, 4), dipole_dipole(16, 6, 2)], ids=["wenner", "dipole-dipole"]
)
def test_electrodes_off_the_grid_as_accurate_as_on_it(spacing, abmn):
    """Electrodes 1.3 m or 1.7 m apart on a 1 m mesh: the core is divided at them (cells
    1.3 m, 0.85 m wide) and the responses stay within the 1 % of the uniform mesh
    (measured: half-space 0.14 % / 0.30 %, two layers <= 0.49 %)."""
    electrodes = surface_electrodes(16, spacing)
    spec = MeshSpec(0.0, 30.0, 12.0, 1.0, 1.0, nodes_at_x=tuple(electrodes[:, 0]))
    mesh = ModelMesh(spec)
    sim = ErtSimulation(mesh, electrodes, abmn)
    np.testing.assert_allclose(sim.electrodes, electrodes, atol=1e-9)  # nodes: no snapping
    rhoa = sim.apparent_resistivity(np.full(sim.n_params, 100.0))
    assert np.max(np.abs(rhoa / 100.0 - 1.0)) < 0.01
    depth = -mesh.cell_centers[:, 1]
    for rho1, rho2 in [(50.0, 200.0), (200.0, 50.0)]:
        rhoa = sim.apparent_resistivity(sim.transfer(np.where(depth < 5.0, rho1, rho2)))
        expected = two_layer_rhoa(electrodes, abmn, rho1, rho2, h=5.0)
        assert np.max(np.abs(rhoa / expected - 1.0)) < 0.01


def test_geometric_factors_textbook():
    a = SPACING
    electrodes = surface_electrodes(6)
    abmn = np.array([[0, 3, 1, 2], [0, 1, 2, 3], [0, 1, 3, 4], [0, -1, 1, 2], [0, -1, 2, -1]])
    # Wenner 2 pi a; dipole-dipole (A B M N in a row) -pi n(n+1)(n+2) a; pole-dipole
    # 2 pi n(n+1) a; pole-pole 2 pi r
    expected = np.pi * a * np.array([2.0, -6.0, -24.0, 4.0, 4.0])
    np.testing.assert_allclose(geometric_factors(electrodes, abmn), expected, rtol=1e-12)


def test_half_space_poles_and_buried_electrodes(small_mesh):
    """Remote electrodes (-1) and electrodes below the surface (mirror-source k)."""
    electrodes = np.vstack([surface_electrodes(9), [[8.0, -2.0], [8.0, -4.0]]])
    abmn = np.array(
        [
            [0, -1, 1, 2],
            [2, -1, 4, 6],
            [1, -1, 3, -1],
            [9, 10, 2, 3],
            [0, 9, 10, 4],
            [9, -1, 10, -1],
        ]
    )
    sim = ErtSimulation(small_mesh, electrodes, abmn)
    rhoa = sim.apparent_resistivity(np.full(sim.n_params, 100.0))
    assert np.max(np.abs(rhoa / 100.0 - 1.0)) < 0.01  # measured 0.1 %


def test_lateral_order_by_mirror_symmetry(small_mesh, small_survey):
    """A model and its mirror image give the same data for mirrored arrays."""
    electrodes, abmn = small_survey
    sim = ErtSimulation(small_mesh, electrodes, abmn)
    x, z = small_mesh.cell_centers.T
    block = np.where((x > 2) & (x < 6) & (z > -3), 10.0, 100.0)
    mirrored = np.where((x > 10) & (x < 14) & (z > -3), 10.0, 100.0)
    mirror_abmn = len(electrodes) - 1 - abmn
    left = sim.apparent_resistivity(sim.transfer(block))
    right = ErtSimulation(small_mesh, electrodes, mirror_abmn).apparent_resistivity(
        sim.transfer(mirrored)
    )
    assert np.max(np.abs(right / left - 1.0)) < 1e-6
    unmirrored = sim.apparent_resistivity(sim.transfer(mirrored))
    assert np.max(np.abs(unmirrored / left - 1.0)) > 0.1  # the block is visible


def test_forward_is_log_of_apparent_resistivity(small_mesh, small_survey):
    sim = ErtSimulation(small_mesh, *small_survey)
    rho = sim.transfer(heterogeneous_model(small_mesh))
    np.testing.assert_array_equal(sim.forward(rho), np.log(sim.apparent_resistivity(rho)))
    assert sim.clock.calls["forward"] == 1  # cached: one engine call for the same model


# --- derivatives --------------------------------------------------------------------
def test_adjoint(small_mesh, small_survey):
    sim = ErtSimulation(small_mesh, *small_survey)
    rho = sim.transfer(heterogeneous_model(small_mesh))
    mismatch = adjoint_mismatch(
        lambda v: sim.jvec(rho, v),
        lambda w: sim.jtvec(rho, w),
        sim.n_params,
        sim.n_data,
        rng=np.random.default_rng(1),
    )
    assert mismatch < 1e-10
    assert sim.clock.calls["jacobian"] == 1  # one Jacobian serves jvec and jtvec


def test_taylor_exact_jacobian_without_singularity_removal(small_mesh, small_survey):
    """Without singularity removal pyGIMLi's Jacobian is the derivative of its response.

    Perturbation in ln(resistivity), chained by hand: ``d rho = rho * d ln(rho)``.
    Steps stop at 1e-3: the engine's response is reproducible to ~1e-10
    relative, far below ``e1`` there (~1e-7).
    """
    sim = ErtSimulation(small_mesh, *small_survey, singularity_removal=False)
    log_rho = np.log(sim.transfer(heterogeneous_model(small_mesh)))
    dm = np.random.default_rng(2).standard_normal(sim.n_params)
    steps, e0, e1 = taylor_orders(
        lambda m: sim.forward(np.exp(m)),
        lambda v: sim.jvec(np.exp(log_rho), np.exp(log_rho) * v),
        log_rho,
        dm,
        steps=np.array([1e-1, 3e-2, 1e-2, 3e-3, 1e-3]),
    )
    assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.2)
    assert convergence_order(steps, e1) > 1.8


def _central_differences(sim, rho, cells, eps):
    columns = []
    for c in cells:
        up, down = rho.copy(), rho.copy()
        up[c] *= 1.0 + eps
        down[c] *= 1.0 - eps
        columns.append((sim.forward(up) - sim.forward(down)) / (2.0 * eps * rho[c]))
    return np.column_stack(columns)


def _test_cells(mesh, sim, n=5):
    """A few core cells under the array, in pyGIMLi order."""
    x, z = mesh.cell_centers.T
    core = np.flatnonzero((x > 1) & (x < 15) & (z > -4))
    chosen = np.random.default_rng(3).choice(core, n, replace=False)
    return sim.transfer.matrix[:, chosen].nonzero()[0]


def test_jacobian_matches_finite_differences(small_mesh, small_survey):
    """Exact mode: relative error < 1e-3 per column (central differences).

    With eps = 1e-2 the truncation error is O(eps^2) ~ 1e-4 relative; the
    engine's response noise (~1e-10 relative) divided by eps and by a single
    cell's share of rho_a (~1e-3) is ~1e-5. Measured: <= 8e-5.
    """
    sim = ErtSimulation(small_mesh, *small_survey, singularity_removal=False)
    rho = sim.transfer(heterogeneous_model(small_mesh))
    cells = _test_cells(small_mesh, sim)
    fd = _central_differences(sim, rho, cells, eps=1e-2)
    jac = sim.jacobian(rho)[:, cells]
    for k in range(len(cells)):
        assert relative(jac[:, k], fd[:, k]) < 1e-3


def test_singularity_removal_jacobian_is_approximate(small_mesh, small_survey):
    """With singularity removal pyGIMLi's Jacobian is only close to the derivative.

    It is built from total potentials, so it is not the derivative of the
    singularity-removed response: away from the electrodes (>= 2 m) the
    measured error is a few percent; next to them it reaches tens of percent.
    This bound catches gross errors (cell order, stale potentials).
    """
    electrodes, abmn = small_survey
    sim = ErtSimulation(small_mesh, electrodes, abmn)
    rho = sim.transfer(heterogeneous_model(small_mesh))
    x, z = small_mesh.cell_centers.T
    far = np.flatnonzero((x > 2) & (x < 14) & (z > -5) & (z < -2))
    cells = sim.transfer.matrix[:, far].nonzero()[0]
    fd = _central_differences(sim, rho, cells, eps=1e-2)
    assert relative(sim.jacobian(rho)[:, cells], fd) < 0.1


def test_jacobian_guard_against_stale_potentials(small_mesh, small_survey):
    """Jacobian at m2 right after a response at m1 equals a fresh one at m2."""
    sim = ErtSimulation(small_mesh, *small_survey, threads=2)
    m1 = sim.transfer(heterogeneous_model(small_mesh, seed=4))
    m2 = sim.transfer(heterogeneous_model(small_mesh, seed=5))
    v = np.random.default_rng(6).standard_normal(sim.n_params)
    sim.forward(m1)
    guarded = sim.jvec(m2, v)
    fresh = ErtSimulation(small_mesh, *small_survey).jvec(m2, v)
    assert np.linalg.norm(fresh) > 0
    assert np.all(np.any(sim.jacobian(m2) != 0, axis=1))  # no all-zero rows
    assert relative(guarded, fresh) < 1e-12
    stale = sim.jacobian(m1)  # and back again
    assert relative(stale @ v, ErtSimulation(small_mesh, *small_survey).jvec(m1, v)) < 1e-12


# --- input checks ------------------------------------------------------------------
@pytest.mark.parametrize("position", [(3.5, 0.0), (4.0, 0.01), (4.0, 0.5)])
def test_electrode_off_node_raises(small_mesh, position):
    electrodes = surface_electrodes(9)
    electrodes[2] = position
    with pytest.raises(EngineError, match="electrode 2"):
        ErtSimulation(small_mesh, electrodes, dipole_dipole(9, 2, 1))


def test_electrode_within_tolerance_is_snapped(small_mesh):
    electrodes = surface_electrodes(9)
    electrodes[2] += [5e-4, -5e-4]
    sim = ErtSimulation(small_mesh, electrodes, dipole_dipole(9, 2, 1))
    np.testing.assert_array_equal(sim.electrodes, surface_electrodes(9))


def test_bad_model_rejected(small_mesh, small_survey):
    sim = ErtSimulation(small_mesh, *small_survey)
    with pytest.raises(ValueError):
        sim.forward(np.full(sim.n_params - 1, 100.0))
    with pytest.raises(ValueError):
        sim.forward(np.full(sim.n_params, -1.0))
