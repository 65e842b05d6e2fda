"""The assembled problem on the bundled sample: each modality through its full map
chain (select → transform → transfer → engine), and the whole objective."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from jointinv.checks import adjoint_mismatch, convergence_order, taylor_orders
from jointinv.config import LoadedConfig, from_mapping
from jointinv.problem import build_problem

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _loaded(**ert_options) -> LoadedConfig:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["modalities"]["ert"]["options"].update(ert_options)
    raw["modalities"]["traveltime"]["options"]["secondary_nodes"] = 1
    return LoadedConfig(from_mapping(raw, QUICKSTART.name), QUICKSTART, "")


@pytest.fixture(scope="module")
def problem():
    # Without singularity removal pyGIMLi's ERT Jacobian is the exact derivative of its
    # response (with it, the Jacobian uses total potentials and is approximate near
    # the electrodes; see tests/engines/test_ert.py), so the derivative tests use it.
    return build_problem(_loaded(singularity_removal=False))


def _smooth_model(problem, rng):
    x, z = problem.mesh.cell_centers.T
    m = problem.m_start.copy()
    for b in problem.blocks:
        bump = np.exp(-((x - rng.uniform(10, 50)) ** 2 + (z + 6) ** 2) / 60.0)
        m[b.slice] += 0.3 * bump * (0.3 if b.name == "density_contrast" else 1.0)
    return m


def test_every_modality_passes_adjoint_test_through_its_map_chain(problem):
    rng = np.random.default_rng(1)
    m = _smooth_model(problem, rng)
    for misfit in problem.objective.misfits:
        op = misfit.operator
        gap = adjoint_mismatch(
            lambda v, op=op: op.jvec(m, v),
            lambda w, op=op: op.jtvec(m, w),
            op.n_params,
            op.n_data,
            rng=rng,
        )
        assert gap < 1e-10, misfit.name


def test_explicit_jacobian_matches_jvec(problem):
    rng = np.random.default_rng(2)
    m = _smooth_model(problem, rng)
    v = rng.standard_normal(len(m))
    for misfit in problem.objective.misfits:
        op = misfit.operator
        jac = op.jacobian(m)
        np.testing.assert_allclose(jac @ v, op.jvec(m, v), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", ["ert", "traveltime", "gravity"])
def test_each_modality_taylor_test_through_its_map_chain(problem, name):
    rng = np.random.default_rng(3)
    m = _smooth_model(problem, rng)
    misfit = next(t for t in problem.objective.misfits if t.name == name)
    op = misfit.operator
    block = next(b for b in problem.blocks if b.name == problem.config.modalities[name].property)
    x, z = problem.mesh.cell_centers.T
    dm = np.zeros_like(m)
    dm[block.slice] = np.exp(-((x - 31) ** 2 + (z + 5) ** 2) / 30.0)
    steps = 10.0 ** -np.arange(2.0, 4.5, 0.5)
    steps, e0, e1 = taylor_orders(op.forward, lambda v: op.jvec(m, v), m, dm, steps=steps)
    print(name, "e0", e0, "e1", e1)
    if name == "gravity":  # linear in density contrast (with a near-linear bounded map)
        assert np.all(e1 < 1e-3 * e0)
    else:
        assert convergence_order(steps, e0) == pytest.approx(1.0, abs=0.15)
        assert convergence_order(steps, e1) > 1.8


def test_whole_objective_taylor_test(problem):
    rng = np.random.default_rng(4)
    obj = problem.objective
    obj.beta = 3.0
    m = _smooth_model(problem, rng)
    x, z = problem.mesh.cell_centers.T
    dm = np.concatenate([np.exp(-((x - 25 - 5 * i) ** 2 + (z + 4) ** 2) / 40.0) for i in range(3)])
    g = obj.gradient(m)
    steps = 10.0 ** -np.arange(2.0, 4.5, 0.5)
    steps, e0, e1 = taylor_orders(obj.value, lambda v: np.array([g @ v]), m, dm, steps=steps)
    print("objective e0", e0, "e1", e1)
    assert convergence_order(steps, e1) > 1.8
    terms = obj.terms(m)
    assert set(terms) == {
        "ert",
        "traveltime",
        "gravity",
        "regularization",
        "cross_gradient/resistivity__velocity",
        "cross_gradient/resistivity__density_contrast",
        "cross_gradient/velocity__density_contrast",
    }


def test_hessian_of_objective_is_sum_of_term_hessians(problem):
    rng = np.random.default_rng(5)
    obj = problem.objective
    m = _smooth_model(problem, rng)
    v = rng.standard_normal(len(m))
    parts = obj.beta * obj.regularization.hessian_vec(m, v)
    for t in [*obj.misfits, *obj.couplings]:
        parts = parts + t.hessian_vec(m, v)
    np.testing.assert_allclose(obj.hessian_vec(m, v), parts, rtol=1e-12)
    # and the Gauss-Newton Hessian is symmetric positive semi-definite
    w = rng.standard_normal(len(m))
    assert w @ obj.hessian_vec(m, v) == pytest.approx(v @ obj.hessian_vec(m, w), rel=1e-9)
    assert v @ obj.hessian_vec(m, v) > 0
