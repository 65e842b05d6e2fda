"""Tests of the objective terms: data misfit, regularization, cross-gradient, their sum.

Every term is checked against an independent dense computation (gradient by a
Taylor test of the value, Hessian against an explicitly built matrix).
"""

from __future__ import annotations

import numpy as np
import pytest

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.maps import Chain, Select, Transform
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, CrossGradient, DataMisfit, Objective, Regularization
from jointinv.operators import EngineClock, ForwardOperator


# --- small operators ------------------------------------------------------------------
class DenseLinear:
    """G(m) = A m."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a
        self.n_data, self.n_params = a.shape
        self.n_forward = 0

    def forward(self, m):
        self.n_forward += 1
        return self.a @ m

    def jvec(self, m, v):
        return self.a @ v

    def jtvec(self, m, w):
        return self.a.T @ w


class DenseExp(DenseLinear):
    """G(m) = A exp(m): nonlinear, J = A diag(exp m)."""

    def forward(self, m):
        self.n_forward += 1
        return self.a @ np.exp(m)

    def jvec(self, m, v):
        return self.a @ (np.exp(m) * v)

    def jtvec(self, m, w):
        return np.exp(m) * (self.a.T @ w)


class DenseSimulation:
    """A Simulation (engine protocol) over a dense matrix, in physical units."""

    def __init__(self, a: np.ndarray) -> None:
        self.a = a
        self.n_data, self.n_params = a.shape
        self.clock = EngineClock()

    def forward(self, p):
        return self.a @ p

    def jvec(self, p, v):
        return self.a @ v

    def jtvec(self, p, w):
        return self.a.T @ w


def _dense(matvec, n: int) -> np.ndarray:
    """The matrix of a linear map, column by column."""
    return np.column_stack([matvec(e) for e in np.eye(n)])


def _order(fun, grad, m, dm) -> tuple[float, np.ndarray]:
    """Convergence order of the first-order Taylor error of a scalar function."""
    steps, e0, e1 = taylor_orders(fun, lambda v: grad(m) @ v, m, dm)
    assert e1[-1] < 1e-2 * e0[-1]  # the linear term dominates at the smallest step
    return convergence_order(steps, e1), e1


# --- DataMisfit ------------------------------------------------------------------------
def _misfit(kind: str, rng: np.random.Generator, n_data: int = 40, n_params: int = 15):
    a = rng.standard_normal((n_data, n_params))
    op = DenseLinear(a) if kind == "linear" else DenseExp(a)
    m_true = 0.3 * rng.standard_normal(n_params)
    std = rng.uniform(0.5, 2.0, n_data)
    observed = op.forward(m_true) + std * rng.standard_normal(n_data)
    return DataMisfit("ert", op, observed, std), m_true


@pytest.mark.parametrize("kind", ["linear", "exp"])
def test_misfit_operator_adjoint(kind):
    rng = np.random.default_rng(20)
    misfit, m = _misfit(kind, rng)
    op = misfit.operator
    mismatch = adjoint_mismatch(
        lambda v: op.jvec(m, v), lambda w: op.jtvec(m, w), op.n_params, op.n_data, rng=rng
    )
    assert mismatch < 1e-12


@pytest.mark.parametrize("kind", ["linear", "exp"])
def test_misfit_gradient_taylor(kind):
    rng = np.random.default_rng(21)
    misfit, m_true = _misfit(kind, rng)
    m = m_true + 0.2 * rng.standard_normal(len(m_true))
    order, e1 = _order(misfit.value, misfit.gradient, m, rng.standard_normal(len(m)))
    assert order == pytest.approx(2.0, abs=0.1)
    if kind == "linear":  # quadratic: e1 = h² ½‖W A dm‖², order 2 up to round-off
        assert order == pytest.approx(2.0, abs=1e-6)


def test_misfit_gn_hessian_linear_is_jt_w2_j():
    rng = np.random.default_rng(22)
    misfit, m = _misfit("linear", rng)
    a, std = misfit.operator.a, misfit.std
    expected = a.T @ np.diag(1 / std**2) @ a
    hess = _dense(lambda v: misfit.hessian_vec(m, v), len(m))
    assert np.abs(hess - expected).max() < 1e-12 * np.abs(expected).max()
    # for a linear operator the GN Hessian is the exact one: g(m + h v) - g(m) = h H v
    v = rng.standard_normal(len(m))
    h = 0.7
    dg = misfit.gradient(m + h * v) - misfit.gradient(m)
    np.testing.assert_allclose(dg, h * misfit.hessian_vec(m, v), rtol=1e-10, atol=1e-10)


def test_misfit_gn_hessian_nonlinear_is_jt_w2_j():
    rng = np.random.default_rng(23)
    misfit, m = _misfit("exp", rng)
    op, std = misfit.operator, misfit.std
    jac = _dense(lambda v: op.jvec(m, v), len(m))
    np.testing.assert_allclose(jac, op.a * np.exp(m)[None, :], rtol=1e-14)
    expected = jac.T @ (jac / std[:, None] ** 2)
    hess = _dense(lambda v: misfit.hessian_vec(m, v), len(m))
    assert np.abs(hess - expected).max() < 1e-12 * np.abs(expected).max()


def test_misfit_value_and_chi2_definitions():
    rng = np.random.default_rng(24)
    misfit, m_true = _misfit("exp", rng)
    m = m_true + 0.1
    r = (misfit.observed - misfit.operator.a @ np.exp(m)) / misfit.std
    assert misfit.value(m) == pytest.approx(0.5 * np.sum(r**2), rel=1e-13)
    assert misfit.chi2(m) == pytest.approx(np.sum(r**2) / 40, rel=1e-13)
    np.testing.assert_allclose(misfit.normalized_residual(m), r, rtol=1e-13)


def test_misfit_chi2_is_one_at_the_true_model():
    """Gaussian noise of the stated std: χ² ≈ 1 within 4 standard errors (√(2/N))."""
    rng = np.random.default_rng(25)
    misfit, m_true = _misfit("linear", rng, n_data=3000, n_params=5)
    assert abs(misfit.chi2(m_true) - 1.0) < 4 * np.sqrt(2 / 3000)
    # and the noise-free prediction would give 0
    exact = DataMisfit("x", misfit.operator, misfit.operator.a @ m_true, misfit.std)
    assert exact.chi2(m_true) == 0.0


def test_misfit_caches_the_forward_response():
    rng = np.random.default_rng(26)
    misfit, m = _misfit("exp", rng)
    op = misfit.operator
    op.n_forward = 0  # (the synthetic data took one)
    misfit.value(m), misfit.gradient(m), misfit.chi2(m)
    assert op.n_forward == 1
    m2 = m + 0.5
    v2 = misfit.value(m2)
    misfit.value(m)  # still cached (two models are kept)
    assert op.n_forward == 2
    # an in-place change of the caller's array is a new model, not a stale hit
    m2[0] += 1.0
    assert misfit.value(m2) != v2
    assert op.n_forward == 3


# --- Regularization ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def reg_mesh() -> ModelMesh:
    return ModelMesh(MeshSpec(x_min=0, x_max=6, depth=4, dx=1, dz=0.5, n_pad_x=2, n_pad_z=2))


def _blocks(n: int) -> list[Block]:
    return [Block("rho", 0, n), Block("vel", n, n)]


def _regularization(mesh, reference, **kw) -> Regularization:
    opts = dict(alpha_s=0.3, alpha_x=1.5, alpha_z=0.7, property_weights={"vel": 2.5})
    opts.update(kw)
    return Regularization(mesh, _blocks(mesh.n_cells), reference, **opts)


def test_regularization_gradient_taylor(reg_mesh):
    rng = np.random.default_rng(30)
    n = 2 * reg_mesh.n_cells
    reg = _regularization(reg_mesh, rng.standard_normal(n))
    m = rng.standard_normal(n)
    order, _ = _order(reg.value, reg.gradient, m, rng.standard_normal(n))
    assert order == pytest.approx(2.0, abs=1e-6)  # quadratic


def test_regularization_hessian_is_exact(reg_mesh):
    rng = np.random.default_rng(31)
    n = 2 * reg_mesh.n_cells
    reg = _regularization(reg_mesh, rng.standard_normal(n))
    m, v = rng.standard_normal(n), rng.standard_normal(n)
    for h in [0.3, 1.0, 5.0]:
        expansion = reg.value(m) + h * reg.gradient(m) @ v + 0.5 * h**2 * v @ reg.hessian_vec(m, v)
        assert reg.value(m + h * v) == pytest.approx(expansion, rel=1e-12)
    hess = _dense(lambda u: reg.hessian_vec(m, u), n)
    np.testing.assert_allclose(hess, hess.T, rtol=0, atol=1e-12 * np.abs(hess).max())
    assert np.linalg.eigvalsh(hess).min() > 0  # alpha_s > 0: positive definite
    np.testing.assert_allclose(reg.hessian_diagonal(), np.diag(hess), rtol=1e-14)


def test_regularization_zero_for_the_reference(reg_mesh):
    n = reg_mesh.n_cells
    reference = np.r_[np.full(n, np.log(100.0)), np.full(n, 2000.0)]
    reg = _regularization(reg_mesh, reference)
    assert reg.value(reference) == 0.0
    assert np.abs(reg.gradient(reference)).max() == 0.0
    # without the smallness term, any constant model costs nothing
    smooth = _regularization(reg_mesh, reference, alpha_s=0.0)
    other = np.r_[np.full(n, 3.0), np.full(n, 1500.0)]
    dm = np.abs(other - reference)
    round_off = 1e-14 * dm @ (abs(smooth.matrix) @ dm)  # row sums of DᵀD are 0 to round-off
    assert abs(smooth.value(other)) < round_off
    assert np.abs(smooth.gradient(other)).max() < 1e-14 * (abs(smooth.matrix) @ dm).max()
    assert reg.value(other) > 0


def test_regularization_weights_match_the_integrals(reg_mesh):
    """m - m_ref = a·x in each block: R = w(α_s ∫(a x)² + α_x a² · area spanned by x-faces)."""
    n = reg_mesh.n_cells
    x, _ = reg_mesh.cell_centers.T
    a = 0.4
    reference = np.zeros(2 * n)
    reg = _regularization(reg_mesh, reference)
    smallness = np.sum(reg_mesh.cell_areas * (a * x) ** 2)
    span_x = (x.max() - x.min()) * (-reg_mesh.nodes_z[0])
    one = 0.3 * smallness + 1.5 * a**2 * span_x  # ∂z(a x) = 0
    assert reg.value(np.r_[a * x, np.zeros(n)]) == pytest.approx(one, rel=1e-12)
    assert reg.value(np.r_[np.zeros(n), a * x]) == pytest.approx(2.5 * one, rel=1e-12)
    assert reg.value(np.r_[a * x, a * x]) == pytest.approx(3.5 * one, rel=1e-12)


# --- CrossGradient ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def cg_mesh() -> ModelMesh:
    return ModelMesh(MeshSpec(x_min=-6, x_max=6, depth=8, dx=0.5, dz=0.5, n_pad_x=2, n_pad_z=2))


@pytest.fixture(scope="module")
def small_mesh() -> ModelMesh:
    return ModelMesh(MeshSpec(x_min=0, x_max=5, depth=3, dx=0.5, dz=0.5, n_pad_x=1, n_pad_z=1,
                              pad_factor=1.7))


def _blob(mesh: ModelMesh, x0: float, z0: float, width: float) -> np.ndarray:
    x, z = mesh.cell_centers.T
    return np.exp(-((x - x0) ** 2 + (z - z0) ** 2) / (2 * width**2))


def _cross(mesh: ModelMesh, weight: float = 0.8) -> CrossGradient:
    a, b = _blocks(mesh.n_cells)
    return CrossGradient("cross_rho_vel", mesh, a, b, weight=weight)


def _relative_cross(term: CrossGradient, m: np.ndarray) -> float:
    """Σ A τ² / Σ A |∇a|²|∇b|²: mean sin² of the angle between the gradients."""
    ax, az, bx, bz = term._gradients(m)
    scale = term.areas @ ((ax**2 + az**2) * (bx**2 + bz**2))
    return term.value(m) / (term.weight * scale)


def test_cross_gradient_zero_for_linearly_related_models(cg_mesh):
    rng = np.random.default_rng(40)
    term = _cross(cg_mesh)
    ma = rng.standard_normal(cg_mesh.n_cells) + 3 * _blob(cg_mesh, 1.0, -3.0, 1.5)
    for a, b in [(2.5, -7.0), (-0.01, 3.0), (1e3, 1e4)]:
        m = np.r_[ma, a * ma + b]
        assert _relative_cross(term, m) < 1e-20
        ax, az, bx, bz = term._gradients(m)
        size = np.hypot(ax, az) * np.hypot(bx, bz)
        assert np.abs(term.tau(m)).max() < 1e-14 * size.max()


def test_cross_gradient_positive_for_shifted_structure(cg_mesh):
    term = _cross(cg_mesh)
    shifted = np.r_[_blob(cg_mesh, -2.0, -3.0, 1.5), _blob(cg_mesh, 2.0, -4.0, 1.5)]
    concentric = np.r_[_blob(cg_mesh, 0.0, -4.0, 1.0), 5 * _blob(cg_mesh, 0.0, -4.0, 2.0)]
    rel_shifted = _relative_cross(term, shifted)
    rel_concentric = _relative_cross(term, concentric)
    assert term.value(shifted) > 0
    assert rel_shifted > 0.1  # gradients far from parallel on a large part of the overlap
    # radial gradients around one centre are (nearly, up to discretisation) parallel
    assert rel_concentric < 1e-2 * rel_shifted
    # value scales linearly with the weight
    assert _cross(cg_mesh, 1.6).value(shifted) == pytest.approx(2 * term.value(shifted), rel=1e-14)


def test_cross_gradient_gradient_taylor(cg_mesh):
    rng = np.random.default_rng(41)
    term = _cross(cg_mesh)
    n = cg_mesh.n_cells
    m = np.r_[_blob(cg_mesh, -2, -3, 1.5), _blob(cg_mesh, 2, -4, 1.5)]
    m = m + 0.1 * rng.standard_normal(2 * n)
    # cell-to-cell noise has large gradients: keep the direction at the model's scale
    order, _ = _order(term.value, term.gradient, m, 0.05 * rng.standard_normal(2 * n))
    assert order == pytest.approx(2.0, abs=0.1)


def _tau_jacobian_fd(term: CrossGradient, m: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Jτ by central differences (τ is bilinear, so this is exact up to round-off)."""
    cols = []
    for j in range(len(m)):
        e = np.zeros_like(m)
        e[j] = eps
        cols.append((term.tau(m + e) - term.tau(m - e)) / (2 * eps))
    return np.column_stack(cols)


def test_cross_gradient_gn_hessian_is_2gamma_jt_a_j(small_mesh):
    rng = np.random.default_rng(42)
    term = _cross(small_mesh)
    n = small_mesh.n_cells
    m = np.r_[_blob(small_mesh, 1, -1, 1.0), _blob(small_mesh, 3, -2, 1.0)]
    m = m + 0.1 * rng.standard_normal(2 * n)
    jac = _tau_jacobian_fd(term, m)
    expected = 2 * term.weight * jac.T @ (small_mesh.cell_areas[:, None] * jac)
    hess = _dense(lambda v: term.hessian_vec(m, v), 2 * n)
    assert np.abs(hess - expected).max() < 1e-9 * np.abs(expected).max()
    # and the gradient is 2γ Jτᵀ A τ
    grad = 2 * term.weight * jac.T @ (small_mesh.cell_areas * term.tau(m))
    np.testing.assert_allclose(term.gradient(m), grad, rtol=1e-8, atol=1e-10 * np.abs(grad).max())


def test_cross_gradient_hessian_symmetric_and_psd(cg_mesh):
    rng = np.random.default_rng(43)
    term = _cross(cg_mesh)
    n2 = 2 * cg_mesh.n_cells
    m = rng.standard_normal(n2)
    for _ in range(10):
        v, w = rng.standard_normal(n2), rng.standard_normal(n2)
        vhw = v @ term.hessian_vec(m, w)
        whv = w @ term.hessian_vec(m, v)
        assert abs(vhw - whv) < 1e-12 * max(abs(vhw), abs(whv))
        assert v @ term.hessian_vec(m, v) > 0


# --- Objective -------------------------------------------------------------------------
def _objective(mesh: ModelMesh, rng: np.random.Generator, beta: float = 0.37):
    n = mesh.n_cells
    sel_a, sel_b = Select(2 * n, 0, n), Select(2 * n, n, n)
    op_a = ForwardOperator(
        DenseSimulation(rng.standard_normal((30, n)) / n), Chain([sel_a, Transform("log", n)])
    )
    op_b = ForwardOperator(DenseSimulation(rng.standard_normal((25, n))), sel_b)
    m_true = np.r_[np.log(50) + 0.3 * _blob(mesh, 1, -1, 1.0), 2 * _blob(mesh, 3, -2, 1.0)]
    misfits = []
    for name, op in [("ert", op_a), ("tt", op_b)]:
        d = op.forward(m_true)
        std = 0.05 * np.abs(d) + 0.01
        misfits.append(DataMisfit(name, op, d + std * rng.standard_normal(len(d)), std))
    reference = np.r_[np.full(n, np.log(50)), np.zeros(n)]
    reg = _regularization(mesh, reference)
    cross = _cross(mesh, weight=3.0)
    return Objective(misfits, reg, [cross], beta=beta), m_true


def test_forward_operator_adjoint(small_mesh):
    rng = np.random.default_rng(50)
    obj, m = _objective(small_mesh, rng)
    for misfit in obj.misfits:
        op = misfit.operator
        mismatch = adjoint_mismatch(
            lambda v, op=op: op.jvec(m, v), lambda w, op=op: op.jtvec(m, w),
            op.n_params, op.n_data, rng=rng,
        )
        assert mismatch < 1e-12


def test_objective_taylor(small_mesh):
    rng = np.random.default_rng(51)
    obj, m_true = _objective(small_mesh, rng)
    m = m_true + 0.1 * rng.standard_normal(len(m_true))
    order, _ = _order(obj.value, obj.gradient, m, rng.standard_normal(len(m)))
    assert order == pytest.approx(2.0, abs=0.1)


def test_objective_is_the_sum_of_its_terms(small_mesh):
    rng = np.random.default_rng(52)
    obj, m_true = _objective(small_mesh, rng)
    m = m_true + 0.1 * rng.standard_normal(len(m_true))
    v = rng.standard_normal(len(m))
    reg, cross = obj.regularization, obj.couplings[0]
    terms = obj.terms(m)
    assert set(terms) == {"ert", "tt", "regularization", "cross_rho_vel"}
    value = sum(t.value(m) for t in obj.misfits) + obj.beta * reg.value(m) + cross.value(m)
    assert obj.value(m) == pytest.approx(value, rel=1e-14)
    assert obj.total(terms) == pytest.approx(value, rel=1e-14)
    assert obj.data_value(m) == pytest.approx(terms["ert"] + terms["tt"], rel=1e-14)
    grad = sum(t.gradient(m) for t in obj.misfits) + obj.beta * reg.gradient(m) + cross.gradient(m)
    np.testing.assert_allclose(obj.gradient(m), grad, rtol=1e-13, atol=1e-13 * np.abs(grad).max())
    hv_parts = [t.hessian_vec(m, v) for t in obj.misfits]
    hv = sum(hv_parts) + obj.beta * reg.hessian_vec(m, v) + cross.hessian_vec(m, v)
    np.testing.assert_allclose(obj.hessian_vec(m, v), hv, rtol=1e-13, atol=1e-13 * np.abs(hv).max())
    np.testing.assert_allclose(obj.data_hessian_vec(m, v), sum(hv_parts), rtol=1e-14)
    # β enters only through the regularization
    obj.beta = 2 * obj.beta
    assert obj.value(m) - value == pytest.approx(0.37 * reg.value(m), rel=1e-10)


# --- matrices for the posterior diagnostics --------------------------------------------------
class DenseWithJacobian(DenseLinear):
    has_jacobian = True

    def jacobian(self, m):
        return self.a


@pytest.mark.parametrize("explicit", [True, False])
def test_weighted_jacobian_is_w_j_without_the_balancing_weight(explicit):
    rng = np.random.default_rng(60)
    a = rng.standard_normal((12, 7))
    op = DenseWithJacobian(a) if explicit else DenseLinear(a)
    std = rng.uniform(0.5, 2.0, 12)
    misfit = DataMisfit("ert", op, rng.standard_normal(12), std)
    misfit.weight = 3.0
    m = rng.standard_normal(7)
    wj = misfit.weighted_jacobian(m)
    expected = a / std[:, None]
    assert wj.shape == (12, 7)
    np.testing.assert_allclose(wj.matmat(np.eye(7)), expected, rtol=1e-14)
    np.testing.assert_allclose(wj.rmatmat(np.eye(12)), expected.T, rtol=1e-14)
    v, w = rng.standard_normal(7), rng.standard_normal(12)
    np.testing.assert_allclose(wj.matvec(v), expected @ v, rtol=1e-13)
    np.testing.assert_allclose(wj.rmatvec(w), expected.T @ w, rtol=1e-13)
    np.testing.assert_allclose(misfit.hessian_vec(m, v), 3.0 * wj.rmatvec(wj.matvec(v)), rtol=1e-13)


def test_regularization_and_cross_gradient_hessian_matrices(small_mesh):
    rng = np.random.default_rng(61)
    n = small_mesh.n_cells
    reg = _regularization(small_mesh, np.zeros(2 * n))
    m = rng.standard_normal(2 * n)
    dense = _dense(lambda v: reg.hessian_vec(m, v), 2 * n)
    np.testing.assert_allclose(reg.hessian_matrix().toarray(), dense, rtol=1e-14, atol=1e-14)
    term = _cross(small_mesh)
    dense = _dense(lambda v: term.hessian_vec(m, v), 2 * n)
    np.testing.assert_allclose(
        term.hessian_matrix(m).toarray(), dense, rtol=1e-12, atol=1e-13 * np.abs(dense).max()
    )
