"""Tests of the coupling terms: petrophysical (soft rock-physics link), normalized
cross-gradient, and the balancing weight of a data misfit.

Gradients are checked by Taylor tests of the value; Gauss-Newton Hessians against
matrices built from finite-difference Jacobians of the residuals.
"""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.checks import convergence_order, taylor_orders
from jointinv.maps import Transform
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, CrossGradient, DataMisfit, PetrophysicalCoupling
from jointinv.petrophysics import Archie, DensityMixing

N = 30


def _dense(matvec, n: int) -> np.ndarray:
    """The matrix of a linear map, column by column."""
    return np.column_stack([matvec(e) for e in np.eye(n)])


def _fd_jacobian(fun, m: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂fun/∂m by central differences, column by column."""
    cols = []
    for j in range(len(m)):
        e = np.zeros_like(m)
        e[j] = eps
        cols.append((fun(m + e) - fun(m - e)) / (2 * eps))
    return np.column_stack(cols)


def _order(fun, grad, m, dm, steps=None) -> float:
    """Convergence order of the first-order Taylor error of a scalar function."""
    steps, e0, e1 = taylor_orders(fun, lambda v: grad(m) @ v, m, dm, steps=steps)
    assert e1[-1] < 1e-2 * e0[-1]  # the linear term dominates at the smallest step
    return convergence_order(steps, e1)


# --- PetrophysicalCoupling ---------------------------------------------------------------
POROSITY = Block("porosity", 0, N)
OTHER = Block("other", N, N)


def _archie_term(cell_weights=None, *, bounded_log: bool = False, weight: float = 10.0):
    """Porosity (linear, bounded [0.01, 0.6]) -> resistivity (log) through Archie."""
    t_phi = Transform("linear", N, lower=0.01, upper=0.6)
    t_rho = Transform("log", N, lower=1.0, upper=1e4) if bounded_log else Transform("log", N)
    relation = Archie(fluid_resistivity=20.0, m=2.0)
    term = PetrophysicalCoupling(
        "petrophysical/porosity__resistivity",
        POROSITY,
        OTHER,
        transform_a=t_phi,
        transform_b=t_rho,
        relation=relation,
        weight=weight,
        cell_weights=np.ones(N) if cell_weights is None else cell_weights,
    )
    return term, t_phi, t_rho, relation


def _mixing_term(cell_weights=None, weight: float = 4.0):
    """Porosity (linear, bounded) -> density contrast (linear, bounded [-1, 1])."""
    t_phi = Transform("linear", N, lower=0.01, upper=0.6)
    t_rho = Transform("linear", N, lower=-1.0, upper=1.0)
    relation = DensityMixing(rho_matrix=2.65, rho_fluid=1.0, reference=2.0)
    term = PetrophysicalCoupling(
        "petrophysical/porosity__density_contrast",
        POROSITY,
        OTHER,
        transform_a=t_phi,
        transform_b=t_rho,
        relation=relation,
        weight=weight,
        cell_weights=np.ones(N) if cell_weights is None else cell_weights,
    )
    return term, t_phi, t_rho, relation


TERMS = {
    "archie_log": lambda w=None: _archie_term(w),
    "archie_bounded_log": lambda w=None: _archie_term(w, bounded_log=True),
    "mixing_linear": lambda w=None: _mixing_term(w),
}


def _consistent(term_name: str, rng: np.random.Generator, cell_weights=None):
    """A term and a model where property b equals f(property a) exactly."""
    term, t_phi, t_b, relation = TERMS[term_name](cell_weights)
    phi = rng.uniform(0.05, 0.5, N)
    m = np.r_[t_phi.inverse(phi), t_b.inverse(relation.value(phi))]
    return term, m


@pytest.mark.parametrize("name", list(TERMS))
def test_petrophysical_zero_on_the_relation(name):
    rng = np.random.default_rng(60)
    term, m = _consistent(name, rng)
    assert term.value(m) < 1e-20
    assert np.abs(term.residual(m)).max() < 1e-12
    # the minimum: the gradient vanishes too (up to round-off of the residual)
    assert np.abs(term.gradient(m)).max() < 1e-9


def test_petrophysical_value_off_the_relation():
    """ρ = 1.1·Archie(φ): g = ln 1.1 in every cell, Φ = λ/2 Σ w (ln 1.1)²."""
    rng = np.random.default_rng(61)
    weights = rng.uniform(0.0, 2.0, N)
    term, t_phi, t_rho, archie = _archie_term(weights, weight=10.0)
    phi = rng.uniform(0.05, 0.5, N)
    m = np.r_[t_phi.inverse(phi), t_rho.inverse(1.1 * archie.value(phi))]
    np.testing.assert_allclose(term.residual(m), np.log(1.1), rtol=1e-12)
    expected = 0.5 * 10.0 * weights.sum() * np.log(1.1) ** 2
    assert term.value(m) == pytest.approx(expected, rel=1e-12)
    # a relative misfit: the same factor too low costs the same
    m_low = np.r_[t_phi.inverse(phi), t_rho.inverse(archie.value(phi) / 1.1)]
    assert term.value(m_low) == pytest.approx(expected, rel=1e-12)


def test_petrophysical_linear_output_value():
    """Density contrast 0.05 above the mixing law: g = 0.05, Φ = λ/2 Σ w 0.05²."""
    rng = np.random.default_rng(62)
    weights = rng.uniform(0.5, 1.5, N)
    term, t_phi, t_rho, mixing = _mixing_term(weights, weight=4.0)
    assert not term.log_b
    phi = rng.uniform(0.05, 0.5, N)
    contrast = 0.65 - 1.65 * phi  # φ·1.0 + (1 − φ)·2.65 − 2.0
    np.testing.assert_allclose(mixing.value(phi), contrast, rtol=1e-13, atol=1e-15)
    m = np.r_[t_phi.inverse(phi), t_rho.inverse(contrast + 0.05)]
    np.testing.assert_allclose(term.residual(m), 0.05, rtol=1e-10)
    assert term.value(m) == pytest.approx(0.5 * 4.0 * weights.sum() * 0.05**2, rel=1e-10)


def _off_relation(name: str, rng: np.random.Generator, cell_weights=None):
    term, m = _consistent(name, rng, cell_weights)
    scale = np.r_[np.full(N, 0.05), np.full(N, 0.1 if term.log_b else 0.05)]
    return term, m + scale * rng.standard_normal(2 * N)


@pytest.mark.parametrize("name", list(TERMS))
def test_petrophysical_gradient_taylor(name):
    rng = np.random.default_rng(63)
    term, m = _off_relation(name, rng, rng.uniform(0.2, 2.0, N))
    assert term.value(m) > 0
    order = _order(term.value, term.gradient, m, 0.05 * rng.standard_normal(2 * N))
    assert order == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("name", list(TERMS))
def test_petrophysical_gn_hessian_is_lambda_jt_w_j(name):
    rng = np.random.default_rng(64)
    weights = rng.uniform(0.2, 2.0, N)
    term, m = _off_relation(name, rng, weights)
    jac = _fd_jacobian(term.residual, m)
    assert jac.shape == (N, 2 * N)
    expected = term.weight * jac.T @ (weights[:, None] * jac)
    hess = _dense(lambda v: term.hessian_vec(m, v), 2 * N)
    assert np.abs(hess - expected).max() < 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(
        term.hessian_diagonal(m), np.diag(expected), rtol=1e-6, atol=1e-9 * expected.max()
    )
    # the gradient is λ Jgᵀ W g
    grad = term.weight * jac.T @ (weights * term.residual(m))
    np.testing.assert_allclose(term.gradient(m), grad, rtol=1e-6, atol=1e-9 * np.abs(grad).max())
    # symmetric, positive semi-definite, rank N (one residual per cell)
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-14 * np.abs(hess).max())
    eig = np.linalg.eigvalsh(hess)
    assert eig.min() > -1e-12 * eig.max()
    assert np.sum(eig > 1e-10 * eig.max()) == N


def test_petrophysical_cell_weights_confine_the_term():
    rng = np.random.default_rng(65)
    region = np.zeros(N, dtype=bool)
    region[5:17] = True
    term, m = _off_relation("archie_log", rng, np.where(region, 1.0, 0.0))
    full, _ = _off_relation("archie_log", np.random.default_rng(65))
    g = term.gradient(m)
    outside = np.r_[~region, ~region]
    assert np.all(g[outside] == 0.0)
    assert np.abs(g[~outside]).min() > 0
    assert np.all(term.hessian_diagonal(m)[outside] == 0.0)
    v = rng.standard_normal(2 * N)
    assert np.all(term.hessian_vec(m, v)[outside] == 0.0)
    # changing the model outside the region changes nothing
    m2 = m.copy()
    m2[outside] += rng.standard_normal(outside.sum())
    assert term.value(m2) == term.value(m)
    # and inside it equals the unweighted term restricted to the region
    r = full.residual(m)
    assert term.value(m) == pytest.approx(0.5 * full.weight * np.sum(r[region] ** 2), rel=1e-13)


# --- normalized CrossGradient ------------------------------------------------------------
@pytest.fixture(scope="module")
def cg_mesh() -> ModelMesh:
    return ModelMesh(MeshSpec(x_min=-6, x_max=6, depth=8, dx=0.5, dz=0.5, n_pad_x=2, n_pad_z=2))


@pytest.fixture(scope="module")
def small_mesh() -> ModelMesh:
    return ModelMesh(
        MeshSpec(x_min=0, x_max=5, depth=3, dx=0.5, dz=0.5, n_pad_x=1, n_pad_z=1, pad_factor=1.7)
    )


def _blob(mesh: ModelMesh, x0: float, z0: float, width: float) -> np.ndarray:
    x, z = mesh.cell_centers.T
    return np.exp(-((x - x0) ** 2 + (z - z0) ** 2) / (2 * width**2))


def _cross(mesh: ModelMesh, *, normalized: bool = True, epsilon: float = 1e-3, weight=0.8):
    n = mesh.n_cells
    a, b = Block("rho", 0, n), Block("vel", n, n)
    return CrossGradient(
        "cross_gradient/rho__vel",
        mesh,
        a,
        b,
        weight=weight,
        normalized=normalized,
        epsilon=epsilon,
    )


def test_normalized_cross_gradient_zero_for_linearly_related_models(cg_mesh):
    rng = np.random.default_rng(70)
    term = _cross(cg_mesh)
    ma = rng.standard_normal(cg_mesh.n_cells) + 3 * _blob(cg_mesh, 1.0, -3.0, 1.5)
    scale = term.weight * cg_mesh.cell_areas.sum()  # the value if sin² = 1 everywhere
    for a, b in [(2.5, -7.0), (-0.01, 3.0), (1e3, 1e4)]:
        m = np.r_[ma, a * ma + b]
        assert term.value(m) / scale < 1e-20
        assert np.abs(term.tau(m)).max() < 1e-12
    # perpendicular gradients: τ_n = ±1 up to ε (here |∇| = 1 and 2 per m)
    x, z = cg_mesh.cell_centers.T
    tau = term.tau(np.r_[x, 2 * z])
    np.testing.assert_allclose(np.abs(tau[np.abs(tau) > 0.5]), 1.0, rtol=1e-6)


def _shifted(mesh: ModelMesh, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    m = np.r_[_blob(mesh, -2, -3, 1.5), _blob(mesh, 2, -4, 1.5)]
    return m + noise * rng.standard_normal(2 * mesh.n_cells)


@pytest.mark.parametrize("epsilon", [1e-3, 0.1])
def test_normalized_cross_gradient_gradient_taylor(cg_mesh, epsilon):
    rng = np.random.default_rng(71)
    term = _cross(cg_mesh, epsilon=epsilon)
    m = _shifted(cg_mesh, rng)
    # |∇m| drops to ~4e-3 per m in places: a step of 0.1·dm there leaves the
    # asymptotic regime of the normalization, so start at 0.01
    steps = 10.0 ** -np.arange(2, 6)
    order = _order(term.value, term.gradient, m, 0.05 * rng.standard_normal(len(m)), steps)
    assert order == pytest.approx(2.0, abs=0.05)
    # τ_n is the sine of an angle
    assert np.abs(term.tau(m)).max() <= 1.0


def test_normalized_cross_gradient_gn_hessian_is_2gamma_jt_a_j(small_mesh):
    rng = np.random.default_rng(72)
    term = _cross(small_mesh, epsilon=1e-2)
    areas = small_mesh.cell_areas
    m = _shifted(small_mesh, rng)
    jac = _fd_jacobian(term.tau, m)
    expected = 2 * term.weight * jac.T @ (areas[:, None] * jac)
    hess = _dense(lambda v: term.hessian_vec(m, v), len(m))
    assert np.abs(hess - expected).max() < 1e-6 * np.abs(expected).max()
    np.testing.assert_allclose(
        term.hessian_diagonal(m), np.diag(expected), rtol=1e-6, atol=1e-9 * expected.max()
    )
    grad = 2 * term.weight * jac.T @ (areas * term.tau(m))
    np.testing.assert_allclose(term.gradient(m), grad, rtol=1e-6, atol=1e-9 * np.abs(grad).max())
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-13 * np.abs(hess).max())
    assert np.linalg.eigvalsh(hess).min() > -1e-12 * np.abs(hess).max()


def test_normalized_cross_gradient_insensitive_to_contrast(cg_mesh):
    """×10 contrast of m_b: the normalized value barely moves, the plain one grows ×100."""
    x, z = cg_mesh.cell_centers.T
    # trends keep |∇m| ≳ 0.05 per m in every cell, far above ε
    ma = 0.1 * x + _blob(cg_mesh, -2, -3, 1.5)
    mb = 0.05 * z + _blob(cg_mesh, 2, -4, 1.5)
    plain = _cross(cg_mesh, normalized=False)
    for epsilon, tolerance in [(1e-4, 1e-2), (1e-6, 1e-4)]:
        normalized = _cross(cg_mesh, epsilon=epsilon)
        low = normalized.value(np.r_[ma, mb])
        high = normalized.value(np.r_[ma, 10 * mb])
        assert low > 0.1 * normalized.weight * cg_mesh.cell_areas.sum() * 1e-3  # not trivial
        assert abs(high - low) < tolerance * low
    low, high = plain.value(np.r_[ma, mb]), plain.value(np.r_[ma, 10 * mb])
    assert high == pytest.approx(100 * low, rel=1e-12)


# --- DataMisfit.weight -------------------------------------------------------------------
class _ExpOperator:
    """G(m) = A exp(m), with or without a Jacobian matrix."""

    def __init__(self, a: np.ndarray, has_jacobian: bool) -> None:
        self.a = a
        self.n_data, self.n_params = a.shape
        self.has_jacobian = has_jacobian

    def forward(self, m):
        return self.a @ np.exp(m)

    def jvec(self, m, v):
        return self.a @ (np.exp(m) * v)

    def jtvec(self, m, w):
        return np.exp(m) * (self.a.T @ w)

    def jacobian(self, m):
        return self.a * np.exp(m)[None, :]


@pytest.mark.parametrize("has_jacobian", [False, True])
def test_misfit_weight_scales_value_gradient_hessian_not_chi2(has_jacobian):
    rng = np.random.default_rng(80)
    a = rng.standard_normal((40, 15))
    op = _ExpOperator(a, has_jacobian)
    m = 0.3 * rng.standard_normal(15)
    std = rng.uniform(0.5, 2.0, 40)
    observed = op.forward(m + 0.2 * rng.standard_normal(15))
    misfit = DataMisfit("gravity", op, observed, std)
    r = (observed - op.forward(m)) / std
    jac = a * np.exp(m)[None, :] / std[:, None]
    v = rng.standard_normal(15)
    unweighted = (
        misfit.value(m),
        misfit.gradient(m),
        misfit.hessian_vec(m, v),
        misfit.chi2(m),
        misfit.misfit(m),
    )
    assert unweighted[0] == pytest.approx(0.5 * r @ r, rel=1e-13)
    np.testing.assert_allclose(unweighted[1], -jac.T @ r, rtol=1e-12)
    np.testing.assert_allclose(unweighted[2], jac.T @ (jac @ v), rtol=1e-12)
    misfit.weight = 0.37
    assert misfit.value(m) == pytest.approx(0.37 * unweighted[0], rel=1e-14)
    np.testing.assert_allclose(misfit.gradient(m), 0.37 * unweighted[1], rtol=1e-14)
    np.testing.assert_allclose(misfit.hessian_vec(m, v), 0.37 * unweighted[2], rtol=1e-14)
    assert misfit.chi2(m) == unweighted[3]
    assert misfit.misfit(m) == unweighted[4]
    assert misfit.chi2(m) == pytest.approx(r @ r / 40, rel=1e-13)
    diag = misfit.hessian_diagonal(m)
    if has_jacobian:
        np.testing.assert_allclose(diag, 0.37 * np.sum(jac**2, axis=0), rtol=1e-12)
    else:
        assert diag is None


# --- sparse Gauss-Newton Hessians (the prior of the posterior diagnostics) ----------------
@pytest.mark.parametrize("name", list(TERMS))
def test_petrophysical_hessian_matrix_is_the_hessian_product(name):
    rng = np.random.default_rng(70)
    weights = rng.uniform(0.0, 2.0, N)
    term, m = _consistent(name, rng, weights)
    m = m + 0.1 * rng.standard_normal(len(m))
    dense = _dense(lambda v: term.hessian_vec(m, v), len(m))
    matrix = term.hessian_matrix(m)
    assert matrix.shape == (2 * N, 2 * N)
    np.testing.assert_allclose(
        matrix.toarray(), dense, rtol=1e-13, atol=1e-13 * np.abs(dense).max()
    )


@pytest.mark.parametrize("normalized", [False, True])
def test_cross_gradient_hessian_matrix_is_the_hessian_product(small_mesh, normalized):
    rng = np.random.default_rng(71)
    term = _cross(small_mesh, normalized=normalized)
    n = small_mesh.n_cells
    m = np.r_[_blob(small_mesh, 1, -1, 1.0), _blob(small_mesh, 3, -2, 1.0)]
    m = m + 0.1 * rng.standard_normal(2 * n)
    dense = _dense(lambda v: term.hessian_vec(m, v), 2 * n)
    matrix = term.hessian_matrix(m)
    np.testing.assert_allclose(
        matrix.toarray(), dense, rtol=1e-12, atol=1e-13 * np.abs(dense).max()
    )
    # embedded in a larger joint model: zero outside the two blocks
    wide = term.hessian_matrix(np.r_[m, np.zeros(n)])
    assert wide.shape == (3 * n, 3 * n) and wide[2 * n :].nnz == 0
