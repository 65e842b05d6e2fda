"""Hard vs soft petrophysical coupling (bias and variance) and misfit balancing, on
small synthetic problems with linear engines (fast, no pyGIMLi)."""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.inversion import BetaCooling, GaussNewton, Stopping
from jointinv.maps import Chain, Select, Transfer, Transform
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, DataMisfit, Objective, PetrophysicalCoupling, Regularization
from jointinv.operators import EngineClock, ForwardOperator
from jointinv.petrophysics import Archie, RelationMap


class MatrixSimulation:
    """A linear engine d = K p (explicit kernel), for tests."""

    def __init__(self, kernel: np.ndarray) -> None:
        self.kernel = kernel
        self.n_data, self.n_params = kernel.shape
        self.clock = EngineClock()
        self.transfer = Transfer.permutation(np.arange(self.n_params))

    def forward(self, p):
        return self.kernel @ p

    def jacobian(self, p):
        return self.kernel

    def jvec(self, p, v):
        return self.kernel @ v

    def jtvec(self, p, w):
        return self.kernel.T @ w


class LogMatrixSimulation(MatrixSimulation):
    """d = K ln p: a linear engine in the log of the property (like ln ρa sensing ln ρ)."""

    def forward(self, p):
        return self.kernel @ np.log(p)

    def jacobian(self, p):
        return self.kernel / p[None, :]

    def jvec(self, p, v):
        return self.kernel @ (v / p)

    def jtvec(self, p, w):
        return (self.kernel.T @ w) / p


MESH = ModelMesh(MeshSpec(0, 12, 6, 1.0, 1.0, n_pad_x=0, n_pad_z=0))
N = MESH.n_cells
X, Z = MESH.cell_centers.T


def smooth_kernel(
    n_data: int, rng: np.random.Generator, width: float, depth: tuple[float, float] = (-6, 0)
) -> np.ndarray:
    """Rows are smooth bumps at random places (like sensitivities of surface data)."""
    cx = rng.uniform(0, 12, n_data)
    cz = rng.uniform(*depth, n_data)
    return np.exp(-((X[None] - cx[:, None]) ** 2 + (Z[None] - cz[:, None]) ** 2) / width**2)


def true_porosity() -> np.ndarray:
    return 0.25 + 0.15 * np.exp(-((X - 5) ** 2 + (Z + 3) ** 2) / 6.0)


POROSITY = Transform("linear", N, lower=0.02, upper=0.6)
LOG_RHO = Transform("log", N)
TRUE_ARCHIE = Archie(fluid_resistivity=20.0, m=2.0)
WRONG_ARCHIE = Archie(fluid_resistivity=20.0, m=1.3)


def _data(rng):
    """Porosity data (a gravity-like linear engine) and log-resistivity data."""
    phi = true_porosity()
    k_phi = smooth_kernel(30, rng, 3.0)
    k_rho = smooth_kernel(60, rng, 2.0)
    d_phi = k_phi @ phi
    d_rho = k_rho @ np.log(TRUE_ARCHIE.value(phi))
    s_phi = 0.01 * np.abs(d_phi).mean() * np.ones_like(d_phi)
    s_rho = 0.01 * np.abs(d_rho).mean() * np.ones_like(d_rho)
    d_phi = d_phi + s_phi * rng.standard_normal(len(d_phi))
    d_rho = d_rho + s_rho * rng.standard_normal(len(d_rho))
    return (k_phi, d_phi, s_phi), (k_rho, d_rho, s_rho)


def _invert(objective, m0, beta, iterations=12):
    gn = GaussNewton(
        objective,
        beta=BetaCooling(beta, factor=1.0),
        stopping=Stopping(
            {"a": 1e-9, "b": 1e-9}, max_iterations=iterations, stagnation_tolerance=1e-9
        ),
        cg_max_iterations=400,
        cg_tolerance=1e-8,
    )
    return gn.run(m0).model


def hard_coupled(data, relation, beta=100.0):
    """Porosity only; resistivity derived from it through ``relation``."""
    (k_phi, d_phi, s_phi), (k_rho, d_rho, s_rho) = data
    block = Block("porosity", 0, N)
    to_phi = [Select(N, 0, N), POROSITY]
    op_phi = ForwardOperator(MatrixSimulation(k_phi), Chain(to_phi))
    op_rho = ForwardOperator(LogMatrixSimulation(k_rho), Chain([*to_phi, RelationMap(relation, N)]))
    misfits = [DataMisfit("a", op_phi, d_phi, s_phi), DataMisfit("b", op_rho, d_rho, s_rho)]
    m0 = POROSITY.inverse(np.full(N, 0.25))
    reg = Regularization(MESH, [block], m0, alpha_s=1e-3, alpha_x=1.0, alpha_z=1.0)
    m = _invert(Objective(misfits, reg, []), m0, beta)
    phi = POROSITY(m)
    return phi, relation.value(phi)


def soft_coupled(data, relation, weight, beta=100.0, rho_regularization=1.0):
    """Porosity and resistivity inverted independently, linked by λ/2‖ln ρ − ln f(φ)‖².

    ``rho_regularization`` scales the regularization of the resistivity block; with
    it ≈ 0 the soft problem tends to the hard one as λ → ∞ (same objective)."""
    (k_phi, d_phi, s_phi), (k_rho, d_rho, s_rho) = data
    a, b = Block("porosity", 0, N), Block("resistivity", N, N)
    op_phi = ForwardOperator(MatrixSimulation(k_phi), Chain([Select(2 * N, 0, N), POROSITY]))
    op_rho = ForwardOperator(LogMatrixSimulation(k_rho), Chain([Select(2 * N, N, N), LOG_RHO]))
    misfits = [DataMisfit("a", op_phi, d_phi, s_phi), DataMisfit("b", op_rho, d_rho, s_rho)]
    m0 = np.r_[
        POROSITY.inverse(np.full(N, 0.25)), LOG_RHO.inverse(TRUE_ARCHIE.value(np.full(N, 0.25)))
    ]
    reg = Regularization(
        MESH,
        [a, b],
        m0,
        alpha_s=1e-3,
        alpha_x=1.0,
        alpha_z=1.0,
        property_weights={"resistivity": rho_regularization},
    )
    link = PetrophysicalCoupling(
        "petrophysical/porosity__resistivity",
        a,
        b,
        transform_a=POROSITY,
        transform_b=LOG_RHO,
        relation=relation,
        weight=weight,
        cell_weights=MESH.cell_areas,
    )
    m = _invert(Objective(misfits, reg, [link]), m0, beta)
    return POROSITY(m[a.slice]), LOG_RHO(m[b.slice])


def model_error(phi, rho) -> float:
    """Relative error of porosity plus that of ln resistivity, against the truth."""
    phi_t = true_porosity()
    lnrho_t = np.log(TRUE_ARCHIE.value(phi_t))
    return float(
        np.linalg.norm(phi - phi_t) / np.linalg.norm(phi_t - phi_t.mean())
        + np.linalg.norm(np.log(rho) - lnrho_t) / np.linalg.norm(lnrho_t - lnrho_t.mean())
    )


@pytest.fixture(scope="module")
def data():
    return _data(np.random.default_rng(7))


def test_soft_coupling_approaches_hard_coupling_as_weight_grows(data):
    phi_hard, _ = hard_coupled(data, TRUE_ARCHIE)
    gaps = []
    for weight in (1e0, 1e2, 1e4, 1e6):
        phi_soft, _ = soft_coupled(data, TRUE_ARCHIE, weight, rho_regularization=1e-8)
        gaps.append(np.linalg.norm(phi_soft - phi_hard) / np.linalg.norm(phi_hard))
    print("relative gap soft(λ) - hard for λ = 1, 1e2, 1e4, 1e6:", np.round(gaps, 5))
    assert all(g1 > g2 for g1, g2 in zip(gaps[:-1], gaps[1:]))  # shrinks as λ grows
    assert gaps[-1] < 0.02 * gaps[0]
    assert gaps[-1] < 5e-3


def test_wrong_relation_hurts_hard_coupling_more_than_moderate_soft_coupling(data):
    err_hard = model_error(*hard_coupled(data, WRONG_ARCHIE))
    err_soft = model_error(*soft_coupled(data, WRONG_ARCHIE, 1e1))
    err_hard_true = model_error(*hard_coupled(data, TRUE_ARCHIE))
    print(
        f"model error: hard (wrong m) {err_hard:.3f}, soft λ=10 (wrong m) {err_soft:.3f}, "
        f"hard (true m) {err_hard_true:.3f}"
    )
    assert err_hard > 1.5 * err_soft
    assert err_hard_true < err_hard


# --- balancing -------------------------------------------------------------------------
def _balancing_problem(rng):
    """Dataset 'large' has 20 times the data of 'small' and a much stiffer Hessian; it
    senses the shallow half, 'small' the deep half."""
    phi = true_porosity()
    k_large = smooth_kernel(400, rng, 1.5, depth=(-3, 0))
    k_small = smooth_kernel(20, rng, 1.5, depth=(-6, -3))
    block = Block("porosity", 0, N)
    chain = Chain([Select(N, 0, N), POROSITY])
    misfits = []
    for name, kernel, noise in (("large", k_large, 1e-3), ("small", k_small, 3e-2)):
        d = kernel @ phi
        s = noise * np.abs(d).mean() * np.ones_like(d)
        d = d + s * rng.standard_normal(len(d))
        misfits.append(DataMisfit(name, ForwardOperator(MatrixSimulation(kernel), chain), d, s))
    m0 = POROSITY.inverse(np.full(N, 0.25))
    reg = Regularization(MESH, [block], m0, alpha_s=1e-3, alpha_x=1.0, alpha_z=1.0)
    return Objective(misfits, reg, []), m0


def _run_balancing(balanced: bool) -> dict[str, float]:
    """The same problem and budget (10 iterations, β halved after full steps), with and
    without balancing. Without it the β schedule is set by the stiff, large dataset
    and the small one lags behind; with it both land in their χ² band."""
    from jointinv.inversion import estimate_beta0
    from jointinv.schedule import BandStopping, ScheduleSettings, TradeOff

    rng = np.random.default_rng(11)
    objective, m0 = _balancing_problem(rng)
    settings = ScheduleSettings(balance=balanced, initial_scaling=balanced)
    tradeoff = TradeOff(objective, 1.0, settings)
    if balanced:
        tradeoff.scale_initial(m0, rng)
    tradeoff.beta = estimate_beta0(objective, m0, ratio=1.0, rng=rng)
    gn = GaussNewton(
        objective,
        beta=tradeoff,
        stopping=BandStopping(tradeoff, max_iterations=10, stagnation_tolerance=1e-3),
        balance=tradeoff.update,
        retreat=tradeoff.retreat,
        cg_max_iterations=100,
    )
    result = gn.run(m0)
    print("balanced" if balanced else "unbalanced", result.message, result.iterations[-1].chi2)
    return result.iterations[-1].chi2


def test_balancing_lets_every_dataset_reach_its_target():
    chi2 = _run_balancing(balanced=True)
    assert all(0.8 <= v <= 1.2 for v in chi2.values()), chi2


def test_without_balancing_one_dataset_misses_its_target():
    chi2 = _run_balancing(balanced=False)
    assert max(chi2.values()) > 1.5
