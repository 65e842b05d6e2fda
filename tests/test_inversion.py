"""Tests of the Gauss-Newton iterator, the β schedule, the stopping rule and β0.

The reference problem is linear-Gaussian with two "modalities" (random dense
matrices on the two blocks of the joint model), so the minimiser of the
objective at fixed β has a closed form.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from jointinv.inversion import (
    BetaCooling,
    GaussNewton,
    IterationRecord,
    Stopping,
    estimate_beta0,
)
from jointinv.maps import Select
from jointinv.mesh import MeshSpec, ModelMesh
from jointinv.objective import Block, DataMisfit, Objective, Regularization
from jointinv.operators import EngineClock, ForwardOperator

SPEC = MeshSpec(x_min=0, x_max=4, depth=3, dx=1, dz=1, n_pad_x=1, n_pad_z=1)  # 6 x 4 cells


class DenseSimulation:
    """Linear engine p -> A p with a clock; optional sleeps make the timing measurable."""

    def __init__(self, a: np.ndarray, *, sleep_forward: float = 0.0, sleep_jac: float = 0.0):
        self.a = a
        self.n_data, self.n_params = a.shape
        self.clock = EngineClock()
        self.sleep_forward = sleep_forward
        self.sleep_jac = sleep_jac

    def forward(self, p):
        with self.clock("forward"):
            time.sleep(self.sleep_forward)
            return self.a @ p

    def jvec(self, p, v):
        with self.clock("jacobian"):
            time.sleep(self.sleep_jac)
            return self.a @ v

    def jtvec(self, p, w):
        with self.clock("jacobian"):
            time.sleep(self.sleep_jac)
            return self.a.T @ w


def _problem(seed: int = 0, *, sleep_forward: float = 0.0, sleep_jac: float = 0.0):
    """Two modalities on two blocks, area-weighted smoothness regularization."""
    rng = np.random.default_rng(seed)
    mesh = ModelMesh(SPEC)
    n = mesh.n_cells
    m_true = rng.standard_normal(2 * n)
    misfits, sims, parts = [], [], []
    for i, (name, n_data, sigma) in enumerate([("ert", 30, 0.1), ("tt", 20, 0.2)]):
        sim = DenseSimulation(
            rng.standard_normal((n_data, n)), sleep_forward=sleep_forward, sleep_jac=sleep_jac
        )
        op = ForwardOperator(sim, Select(2 * n, i * n, n))
        std = np.full(n_data, sigma)
        d = sim.a @ m_true[i * n : (i + 1) * n] + sigma * rng.standard_normal(n_data)
        misfits.append(DataMisfit(name, op, d, std))
        sims.append(sim)
        parts.append((i, sim.a, std, d))
    reference = 0.1 * rng.standard_normal(2 * n)
    reg = Regularization(
        mesh, [Block("a", 0, n), Block("b", n, n)], reference,
        alpha_s=0.1, alpha_x=1.0, alpha_z=0.5,
    )
    return Objective(misfits, reg, [], beta=1.0), sims, parts, reference


def _closed_form(obj: Objective, parts, reference: np.ndarray, beta: float) -> np.ndarray:
    """argmin Σ ½‖W(d − G m)‖² + β (m − m_ref)ᵀR(m − m_ref)."""
    n2 = len(reference)
    n = n2 // 2
    lhs = 2 * beta * obj.regularization.matrix.toarray()
    rhs = lhs @ reference
    for i, a, std, d in parts:
        s = slice(i * n, (i + 1) * n)
        w2 = 1 / std**2
        lhs[s, s] += a.T @ (w2[:, None] * a)
        rhs[s] += a.T @ (w2 * d)
    return np.linalg.solve(lhs, rhs)


def _gauss_newton(obj, sims, beta, *, max_iterations=3, **kw) -> GaussNewton:
    stopping = Stopping({"ert": 0.0, "tt": 0.0}, max_iterations=max_iterations,
                        stagnation_tolerance=1e-9)
    opts = dict(cg_max_iterations=500, cg_tolerance=1e-12)
    opts.update(kw)
    return GaussNewton(obj, beta=beta, stopping=stopping, clocks=[s.clock for s in sims], **opts)


# --- Gauss-Newton ----------------------------------------------------------------------
def test_gauss_newton_reaches_the_closed_form_minimiser():
    obj, sims, parts, reference = _problem(0)
    beta = 0.5
    expected = _closed_form(obj, parts, reference, beta)
    gn = _gauss_newton(obj, sims, BetaCooling(beta, factor=1.0))
    m0 = np.zeros_like(reference)
    it = gn.iterate(m0)
    first = next(it)
    assert first.iteration == 0 and first.step_length == 0.0
    one = next(it)
    # the objective is quadratic: one full Gauss-Newton step lands on the minimiser
    assert one.iteration == 1 and one.step_length == 1.0
    assert np.linalg.norm(gn.model - expected) < 1e-6 * np.linalg.norm(expected)
    rest = list(it)
    assert np.linalg.norm(gn.model - expected) < 1e-6 * np.linalg.norm(expected)
    # Φ never increases and the first step did almost all of the work
    phis = [first.phi, one.phi] + [r.phi for r in rest]
    assert np.all(np.diff(phis) <= 1e-12 * phis[0])
    assert one.relative_decrease == pytest.approx((first.phi - one.phi) / first.phi, rel=1e-12)
    assert gn.message  # a reason is always given
    # the gradient vanishes there
    g = obj.gradient(gn.model)
    assert np.linalg.norm(g) < 1e-6 * np.linalg.norm(obj.gradient(m0))


def test_gauss_newton_run_result_and_records():
    obj, sims, _, _ = _problem(1)
    gn = _gauss_newton(obj, sims, BetaCooling(4.0, factor=2.0), max_iterations=3,
                       cg_max_iterations=5, cg_tolerance=1e-3)
    result = gn.run(np.zeros(2 * 24))
    assert [r.iteration for r in result.iterations] == list(range(result.nit + 1))
    assert result.nit == 3
    assert result.message == "maximum number of iterations (3) reached"
    assert not result.success
    np.testing.assert_array_equal(result.model, gn.model)
    # β of each record follows the schedule (record 0 uses β of iteration 1)
    assert [r.beta for r in result.iterations] == [4.0, 4.0, 2.0, 1.0]
    for r in result.iterations[1:]:
        assert 1 <= r.cg_iterations <= 5
        assert 0 < r.step_length <= 1
    # χ² per modality equals the misfit's own χ² at the final model, recomputed here
    last = result.iterations[-1]
    assert set(last.chi2) == {"ert", "tt"}
    for misfit in obj.misfits:
        op = misfit.operator
        r = (misfit.observed - op.simulation.a @ op.map(result.model)) / misfit.std
        assert last.chi2[misfit.name] == pytest.approx(np.sum(r**2) / len(r), rel=1e-12)
        assert last.terms[misfit.name] == pytest.approx(0.5 * np.sum(r**2), rel=1e-12)
    reg = obj.regularization.value(result.model)
    assert last.terms["regularization"] == pytest.approx(reg, rel=1e-12)
    assert last.phi == pytest.approx(last.terms["ert"] + last.terms["tt"] + 1.0 * reg, rel=1e-12)


def test_gauss_newton_stops_at_once_when_targets_are_met():
    obj, sims, _, _ = _problem(2)
    stopping = Stopping({"ert": 1e12, "tt": 1e12}, max_iterations=5, stagnation_tolerance=0)
    gn = GaussNewton(obj, beta=BetaCooling(1.0), stopping=stopping)
    result = gn.run(np.zeros(48))
    assert result.nit == 0 and result.success
    assert "target" in result.message


def test_gauss_newton_resumes_at_start_iteration():
    obj, sims, _, _ = _problem(3)
    gn = _gauss_newton(obj, sims, BetaCooling(8.0, factor=2.0), max_iterations=4,
                       cg_max_iterations=5)
    records = list(gn.iterate(np.zeros(48), start_iteration=2))
    assert [r.iteration for r in records] == [2, 3, 4]
    assert [r.beta for r in records] == [4.0, 2.0, 1.0]


def test_iteration_seconds_split():
    """Engine time goes to forward/jacobian, not to linear_algebra; the parts add up."""
    sleep = 2e-3
    obj, sims, _, _ = _problem(4, sleep_forward=sleep, sleep_jac=sleep)
    gn = _gauss_newton(obj, sims, BetaCooling(1.0, factor=1.0), max_iterations=2,
                       cg_max_iterations=3, cg_tolerance=1e-12)
    calls = lambda kind: sum(s.clock.calls[kind] for s in sims)  # noqa: E731
    it = gn.iterate(np.zeros(48))
    next(it)
    for _ in range(2):
        before = {k: calls(k) for k in ("forward", "jacobian")}
        t0 = time.perf_counter()
        record = next(it)
        wall = time.perf_counter() - t0
        n_fwd = calls("forward") - before["forward"]
        n_jac = calls("jacobian") - before["jacobian"]
        assert set(record.seconds) == {"forward", "jacobian", "linear_algebra", "other"}
        assert all(v >= 0 for v in record.seconds.values())
        # 1 gradient (jtvec) + ≥ 1 CG product (jvec + jtvec) per modality
        assert n_fwd >= 2 and n_jac >= 2 * 3
        assert record.seconds["forward"] >= n_fwd * sleep
        assert record.seconds["jacobian"] >= n_jac * sleep
        # the CG products' sleeps are not counted again as linear algebra
        assert record.seconds["linear_algebra"] < 0.5 * n_jac * sleep
        assert sum(record.seconds.values()) <= wall
        assert sum(record.seconds.values()) > 0.8 * wall - 1e-3


# --- β schedule and stopping -------------------------------------------------------------
def test_beta_cooling_values():
    m = np.zeros(3)
    cool = BetaCooling(8.0, factor=2.0, minimum=1.5)
    assert [cool(m, k) for k in range(7)] == [8.0, 8.0, 4.0, 2.0, 1.5, 1.5, 1.5]
    assert [BetaCooling(3.0, factor=1.0)(m, k) for k in (1, 5, 50)] == [3.0, 3.0, 3.0]
    assert BetaCooling(100.0, factor=10.0)(m, 4) == pytest.approx(0.1, rel=1e-15)


def _record(iteration: int, chi2: dict[str, float]) -> IterationRecord:
    return IterationRecord(iteration=iteration, beta=1.0, terms={}, chi2=chi2, phi=1.0)


def test_stopping_reasons():
    stop = Stopping({"ert": 1.0, "tt": 1.5}, max_iterations=10, stagnation_tolerance=1e-3)
    high = {"ert": 1.2, "tt": 1.4}
    assert stop(_record(3, high), 0.5) is None
    assert stop(_record(0, high), None) is None
    # targets: every modality at or below its own target (equality counts)
    assert "target" in stop(_record(3, {"ert": 1.0, "tt": 1.5}), 0.5)
    assert stop(_record(3, {"ert": 0.5, "tt": 1.6}), 0.5) is None
    # iteration limit
    assert stop(_record(10, high), 0.5) == "maximum number of iterations (10) reached"
    assert stop(_record(9, high), 0.5) is None
    # stagnation: relative decrease below the tolerance (including an increase)
    assert stop(_record(3, high), 1e-4).startswith("stagnation")
    assert stop(_record(3, high), -0.2).startswith("stagnation")
    assert stop(_record(3, high), 1e-3) is None
    # targets take precedence over the other two
    assert "target" in stop(_record(10, {"ert": 0.9, "tt": 1.0}), 1e-9)
    assert stop.targets_reached({"ert": 1.0, "tt": 1.5, "gravity": 99.0})


# --- β0 ------------------------------------------------------------------------------
def _dense_beta_ratio(obj: Objective, m: np.ndarray) -> float:
    eye = np.eye(len(m))
    data = np.column_stack([obj.data_hessian_vec(m, e) for e in eye])
    reg = 2 * obj.regularization.matrix.toarray()
    return np.linalg.eigvalsh(data).max() / np.linalg.eigvalsh(reg).max()


@pytest.mark.parametrize("seed", range(5))
def test_estimate_beta0_matches_dense_eigenvalues(seed):
    obj, _, _, _ = _problem(seed)
    m = np.zeros(48)
    expected = 3.0 * _dense_beta_ratio(obj, m)
    est = estimate_beta0(obj, m, ratio=3.0, rng=np.random.default_rng(seed), n_power=30)
    assert est == pytest.approx(expected, rel=0.05)
    # power iteration approaches both eigenvalues from below, so more steps help
    est_more = estimate_beta0(obj, m, ratio=3.0, rng=np.random.default_rng(seed), n_power=100)
    assert est_more == pytest.approx(expected, rel=1e-3)


def test_estimate_beta0_default_is_the_right_magnitude():
    """The default 8 power steps are rough (measured: 0.84-1.05 of the dense value)."""
    ratios = []
    for seed in range(5):
        obj, _, _, _ = _problem(seed)
        m = np.zeros(48)
        est = estimate_beta0(obj, m, ratio=1.0, rng=np.random.default_rng(seed))
        ratios.append(est / _dense_beta_ratio(obj, m))
    assert 0.75 < min(ratios) and max(ratios) < 1.25
