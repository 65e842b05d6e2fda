"""Tests of the posterior diagnostics (jointinv.posterior, jointinv.diagnostics).

* Linear-Gaussian oracles: small problems with explicit G_k and a Gaussian prior,
  whose posterior is known in closed form, Σ_post⁻¹ = Σ_k G_kᵀΓ_k⁻¹G_k + Γ_prior⁻¹.
* Information adds up (seed 000): Hessians add, the joint variance is below every
  single-modality variance, and the scalar case 1/σ² = Σ 1/σ_i².
* The resolution estimate converges to the exact diagonal as the probes grow.
* The quick start: the diagnostics finish, and the posterior std grows with depth
  where the coverage falls.
* The CLI: ``run --no-diagnostics``, ``diagnose``, ``show``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from typer.testing import CliRunner

import jointinv
from jointinv.cli import app
from jointinv.config import LoadedConfig, from_mapping
from jointinv.diagnostics import (
    compute_diagnostics,
    diagnose_result,
    doi_mask,
    gauss_newton_hessian,
    prior_precision,
)
from jointinv.errors import ConfigError, UserInputError
from jointinv.objective import CrossGradient, DataMisfit, Objective, Regularization
from jointinv.posterior import (
    Posterior,
    PriorFactor,
    StackedJacobian,
    decompose_all,
    low_rank_update,
)
from jointinv.problem import Dataset, Problem, build_blocks, build_mesh, build_transforms
from jointinv.results import read_result

from .conftest import Workspace, gravity_only_mapping

runner = CliRunner()



# --- a linear-Gaussian problem ----------------------------------------------------------
class Linear:
    """G(m) = A m with its Jacobian as a matrix."""

    has_jacobian = True

    def __init__(self, a: np.ndarray) -> None:
        self.a = a
        self.n_data, self.n_params = a.shape

    def forward(self, m):
        return self.a @ m

    def jvec(self, m, v):
        return self.a @ v

    def jtvec(self, m, w):
        return self.a.T @ w

    def jacobian(self, m):
        return self.a


class MatrixFreeLinear(Linear):
    """The same, offering only products (the matrix-free path)."""

    has_jacobian = False


ORACLE_CONFIG = {
    "mesh": {
        "core": {"x_min": 0, "x_max": 5, "depth": 3},
        "cell_size": {"dx": 1, "dz": 1},
        "padding": {"n_x": 1, "n_z": 1, "factor": 1.5},
    },
    "properties": {
        "resistivity": {"units": "ohm*m", "transform": "log", "start": 100},
        "density_contrast": {"units": "g/cm^3", "transform": "linear", "start": 0.0},
    },
    "modalities": {
        name: {"kind": "gravity", "data": f"{name}.csv", "property": prop, "error": {"absolute": 1}}
        for name, prop in [("a", "resistivity"), ("b", "density_contrast"), ("c", "resistivity")]
    },
    "coupling": [
        {"kind": "cross_gradient", "properties": ["resistivity", "density_contrast"], "weight": 2.0}
    ],
    "regularization": {"alpha_s": 0.5, "alpha_x": 1.0, "alpha_z": 0.7},
}


def oracle(*, coupling: bool = True, seed: int = 0, beta: float = 0.7):
    """A small linear-Gaussian joint problem (2 properties × 24 cells, 3 modalities).

    Modality a senses resistivity (explicit Jacobian), b density contrast
    (matrix-free), c both (explicit). Returns the problem, a model, the dense G_k
    and σ_k, and the prior precision built independently of ``prior_precision``.
    """
    rng = np.random.default_rng(seed)
    raw = dict(ORACLE_CONFIG)
    if not coupling:
        raw = {**raw, "coupling": []}
    config = from_mapping(raw)
    mesh = build_mesh(config)
    n_cells = mesh.n_cells
    blocks = build_blocks(config, n_cells)
    n = 2 * n_cells
    sizes = {"a": 14, "b": 9, "c": 6}
    g = {k: rng.standard_normal((size, n)) for k, size in sizes.items()}
    g["a"][:, n_cells:] = 0.0
    g["b"][:, :n_cells] = 0.0
    m_ref = np.r_[np.full(n_cells, np.log(100.0)), np.zeros(n_cells)]
    m = m_ref + 0.3 * rng.standard_normal(n)
    std = {k: rng.uniform(0.2, 1.0, size) for k, size in sizes.items()}
    misfits, datasets = [], {}
    for k in sizes:
        op = MatrixFreeLinear(g[k]) if k == "b" else Linear(g[k])
        observed = op.forward(m) + std[k] * rng.standard_normal(sizes[k])
        misfits.append(DataMisfit(k, op, observed, std[k]))
        datasets[k] = Dataset(k, "gravity", None, observed, std[k])
    reg = Regularization(mesh, blocks, m_ref, alpha_s=0.5, alpha_x=1.0, alpha_z=0.7)
    couplings = []
    if coupling:
        couplings = [CrossGradient("cross_gradient/r__d", mesh, *blocks, weight=2.0)]
    objective = Objective(misfits, reg, couplings, beta=beta)
    problem = Problem(
        LoadedConfig(config, Path("oracle.yaml"), ""),
        mesh,
        blocks,
        build_transforms(config, n_cells),
        datasets,
        objective,
        [],
        m_ref,
    )
    prior = beta * 2.0 * reg.matrix.toarray()
    for term in couplings:  # the GN Hessian from products, not from hessian_matrix
        prior = prior + np.column_stack([term.hessian_vec(m, e) for e in np.eye(n)])
    return SimpleNamespace(problem=problem, m=m, g=g, std=std, prior=prior, m_ref=m_ref)


def closed_form_precision(o) -> np.ndarray:
    """Σ_post⁻¹ = Σ_k G_kᵀΓ_k⁻¹G_k + Γ_prior⁻¹."""
    return o.prior + sum(o.g[k].T @ (o.g[k] / o.std[k][:, None] ** 2) for k in o.g)


def jacobians(o) -> dict[str, LinearOperator]:
    return {t.name: t.weighted_jacobian(o.m) for t in o.problem.objective.misfits}


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# --- the prior factor -------------------------------------------------------------------
@pytest.mark.parametrize("n, density", [(1, 1.0), (7, 0.4), (60, 0.05), (300, 0.01)])
def test_prior_factor_solves_and_inverse_diagonal(n, density):
    rng = np.random.default_rng(n)
    a = sp.random(n, n, density=density, random_state=rng)
    p = sp.csr_matrix(a @ a.T + 0.3 * sp.identity(n))
    factor = PriorFactor(p)
    dense = p.toarray()
    x = rng.standard_normal((n, 3))
    assert relative_error(factor.solve(x), np.linalg.solve(dense, x)) < 1e-12
    assert relative_error(factor.solve(x[:, 0]), np.linalg.solve(dense, x[:, 0])) < 1e-12
    assert relative_error(factor.inverse_diagonal(), np.diag(np.linalg.inv(dense))) < 1e-12
    s = np.linalg.inv(factor.whiten(np.eye(n)))  # S, with P = S Sᵀ
    assert relative_error(s @ s.T, dense) < 1e-12
    assert relative_error(factor.color(np.eye(n)), np.linalg.inv(s).T) < 1e-12


def test_prior_factor_of_a_long_band_uses_a_small_bandwidth():
    """A 2D-grid Laplacian: RCM keeps the band near the short side; Takahashi is exact."""
    mesh = build_mesh(from_mapping(ORACLE_CONFIG))
    p = sp.csr_matrix(mesh.gradient_x.T @ mesh.gradient_x + sp.diags(0.01 * mesh.cell_areas))
    factor = PriorFactor(p)
    nx, nz = mesh.shape
    assert factor.bandwidth <= min(nx, nz) + 1
    expected = np.diag(np.linalg.inv(p.toarray()))
    assert relative_error(factor.inverse_diagonal(), expected) < 1e-12


def test_prior_factor_refuses_an_indefinite_matrix():
    with pytest.raises(np.linalg.LinAlgError):
        PriorFactor(sp.csr_matrix(np.array([[1.0, 2.0], [2.0, 1.0]])))


# --- linear-Gaussian oracle -------------------------------------------------------------
def test_prior_precision_is_beta_reg_plus_coupling_hessians():
    o = oracle()
    p = prior_precision(o.problem.objective, o.m).toarray()
    assert relative_error(p, o.prior) < 1e-13


@pytest.mark.parametrize("coupling", [False, True])
def test_posterior_covariance_matches_the_closed_form_at_full_rank(coupling):
    o = oracle(coupling=coupling)
    expected = np.linalg.inv(closed_form_precision(o))
    prior = PriorFactor(prior_precision(o.problem.objective, o.m))
    jac = jacobians(o)
    n_data = sum(j.shape[0] for j in jac.values())
    stacked = StackedJacobian(list(jac.values()))
    exact = decompose_all(jac, prior, rank=n_data, rng=np.random.default_rng(1))["joint"]
    randomized = low_rank_update(stacked, prior, rank=n_data, rng=np.random.default_rng(1))
    for update in (exact, randomized):
        post = Posterior(prior, stacked, update)
        covariance = post.covariance_mat(np.eye(len(o.m)))
        print(f"full-rank covariance error: {relative_error(covariance, expected):.2e}")
        assert relative_error(covariance, expected) < 1e-8
        assert relative_error(post.variance(), np.diag(expected)) < 1e-8


def test_posterior_mean_matches_the_closed_form():
    """One Newton step with the low-rank posterior covariance lands on the posterior mean."""
    o = oracle(coupling=False)
    objective = o.problem.objective
    precision = closed_form_precision(o)
    rhs = o.prior @ o.m_ref + sum(
        o.g[t.name].T @ (t.observed / t.std**2) for t in objective.misfits
    )
    mean = np.linalg.solve(precision, rhs)
    prior = PriorFactor(prior_precision(objective, o.m))
    jac = jacobians(o)
    update = decompose_all(jac, prior, rank=100, rng=np.random.default_rng(2))["joint"]
    post = Posterior(prior, StackedJacobian(list(jac.values())), update)
    m_post = o.m - post.covariance_mat(objective.gradient(o.m)[:, None])[:, 0]
    print(f"posterior mean error: {relative_error(m_post, mean):.2e}")
    assert relative_error(m_post, mean) < 1e-8
    # the gradient of Φ vanishes there: the posterior mean is the minimiser
    assert np.abs(objective.gradient(m_post)).max() < 1e-8 * np.abs(objective.gradient(o.m)).max()


def test_compute_diagnostics_std_is_the_closed_form_in_the_own_transform():
    """posterior_std is sqrt(diag Σ_post), converted to log10 for log properties."""
    o = oracle()
    n_cells = o.problem.mesh.n_cells
    expected = np.sqrt(np.diag(np.linalg.inv(closed_form_precision(o))))
    prior_expected = np.sqrt(np.diag(np.linalg.inv(o.prior)))
    d = compute_diagnostics(o.problem, o.m, rank=100, probes=0, rng=np.random.default_rng(3))
    np.testing.assert_allclose(
        d.posterior_std["resistivity"], expected[:n_cells] / math.log(10), rtol=1e-8
    )
    np.testing.assert_allclose(d.posterior_std["density_contrast"], expected[n_cells:], rtol=1e-8)
    np.testing.assert_allclose(d.prior_std["density_contrast"], prior_expected[n_cells:], rtol=1e-8)
    assert d.std_units == {"resistivity": "log10(ohm*m)", "density_contrast": "g/cm^3"}
    assert d.parameter["resistivity"] == "log10(resistivity)"
    assert list(d.eigenvalues) == ["joint", "a", "b", "c"]


def test_std_of_a_bounded_property_uses_the_transform_derivative():
    """Delta method through the bounded logistic transform: σ_q = |dq/dm| σ_m."""
    raw = {**ORACLE_CONFIG, "coupling": []}
    raw["properties"] = {
        "resistivity": {"units": "ohm*m", "transform": "log", "start": 100, "bounds": [1, 1e4]},
        "density_contrast": {
            "units": "g/cm^3",
            "transform": "linear",
            "start": 0.0,
            "bounds": [-1, 1],
        },
    }
    o = oracle(coupling=False)
    config = from_mapping(raw)
    transforms = build_transforms(config, o.problem.mesh.n_cells)
    problem = Problem(
        LoadedConfig(config, Path("b.yaml"), ""),
        o.problem.mesh,
        o.problem.blocks,
        transforms,
        o.problem.datasets,
        o.problem.objective,
        [],
        o.m_ref,
    )
    d = compute_diagnostics(problem, o.m, rank=100, probes=0, rng=np.random.default_rng(4))
    sigma_m = np.sqrt(np.diag(np.linalg.inv(closed_form_precision(o))))
    n_cells = problem.mesh.n_cells
    t_r, t_d = transforms["resistivity"], transforms["density_contrast"]
    m_r, m_d = o.m[:n_cells], o.m[n_cells:]
    dq_r = t_r.derivative(m_r) / (t_r(m_r) * math.log(10))  # d log10(ρ) / dm
    np.testing.assert_allclose(d.posterior_std["resistivity"], dq_r * sigma_m[:n_cells], rtol=1e-8)
    np.testing.assert_allclose(
        d.posterior_std["density_contrast"], t_d.derivative(m_d) * sigma_m[n_cells:], rtol=1e-8
    )


def test_lower_rank_error_decreases_as_the_rank_grows():
    o = oracle()
    exact = np.diag(np.linalg.inv(closed_form_precision(o)))
    prior = PriorFactor(prior_precision(o.problem.objective, o.m))
    prior_var = prior.inverse_diagonal()
    jac = jacobians(o)
    stacked = StackedJacobian(list(jac.values()))
    ranks = [1, 2, 4, 8, 16, 29]
    truncated, randomized = [], []
    for rank in ranks:
        up = decompose_all(jac, prior, rank=rank, rng=np.random.default_rng(5))["joint"]
        var = prior_var - up.variance_reduction()
        assert np.all(var >= exact * (1 - 1e-10))  # a truncated update overestimates
        truncated.append(var - exact)
        up = low_rank_update(stacked, prior, rank=rank, rng=np.random.default_rng(5))
        randomized.append(np.abs(prior_var - up.variance_reduction() - exact).max())
    errors = [e.max() for e in truncated]
    print("rank:", ranks, "\ntruncated:", [f"{e:.1e}" for e in errors])
    print("randomized:", [f"{e:.1e}" for e in randomized])
    for before, after in zip(truncated, truncated[1:]):  # cell by cell
        assert np.all(after <= before + 1e-13)
    assert errors[0] > 1e3 * errors[-1]
    assert errors[-1] < 1e-10 * exact.max()
    assert all(a > b for a, b in zip(randomized, randomized[1:]))
    assert randomized[-1] < 1e-10 * exact.max()


def test_randomized_eigenvalues_converge_with_power_iterations():
    """Rank 5 of a flat spectrum (240, 157, 90, 81, 76, 66, ...): each subspace
    iteration shrinks the error of the leading eigenvalues by a large factor."""
    o = oracle()
    prior = PriorFactor(prior_precision(o.problem.objective, o.m))
    jac = jacobians(o)
    exact = decompose_all(jac, prior, rank=29, rng=np.random.default_rng(6))["joint"]
    stacked = StackedJacobian(list(jac.values()))
    errors = []
    for q in range(5):
        approx = low_rank_update(
            stacked,
            prior,
            rank=5,
            oversampling=10,
            power_iterations=q,
            rng=np.random.default_rng(6),
        )
        errors.append(np.abs(approx.eigenvalues / exact.eigenvalues[:5] - 1).max())
    print("power iterations -> relative eigenvalue error:", [f"{e:.1e}" for e in errors])
    assert all(b < a / 5 for a, b in zip(errors, errors[1:]))
    assert errors[-1] < 1e-6
    # Vᵀ P V = I and H_d V = P V Λ
    v = approx.vectors
    np.testing.assert_allclose(v.T @ (prior.matrix @ v), np.eye(5), atol=1e-10)
    hv = stacked.hessian_mat(v)
    pv = prior.matrix @ v
    assert np.abs(hv - pv * approx.eigenvalues).max() < 1e-3 * np.abs(hv).max()


# --- information adds up ----------------------------------------------------------------
def test_joint_hessian_is_the_sum_of_the_modality_hessians():
    o = oracle()
    objective = o.problem.objective
    n = len(o.m)
    eye = np.eye(n)
    h = gauss_newton_hessian(objective, o.m).matmat(eye)
    parts = [np.column_stack([t.hessian_vec(o.m, e) for e in eye]) for t in objective.misfits]
    total = sum(parts) + o.prior
    scale = np.abs(total).max()
    print(f"joint vs sum of modality Hessians: {np.abs(h - total).max() / scale:.1e}")
    assert np.abs(h - total).max() <= 1e-14 * scale
    assert relative_error(h, closed_form_precision(o)) < 1e-13
    jac = jacobians(o)
    joint_data = StackedJacobian(list(jac.values())).hessian_mat(eye)
    singles = sum(StackedJacobian([j]).hessian_mat(eye) for j in jac.values())
    assert np.abs(joint_data - singles).max() <= 1e-14 * np.abs(joint_data).max()


def test_joint_variance_is_below_every_single_modality_variance():
    o = oracle()
    prior = PriorFactor(prior_precision(o.problem.objective, o.m))
    prior_var = prior.inverse_diagonal()
    updates = decompose_all(jacobians(o), prior, rank=100, rng=np.random.default_rng(7))
    joint = prior_var - updates["joint"].variance_reduction()
    for name in "abc":
        single = prior_var - updates[name].variance_reduction()
        # against the closed form with that modality alone
        alone = o.prior + o.g[name].T @ (o.g[name] / o.std[name][:, None] ** 2)
        np.testing.assert_allclose(single, np.diag(np.linalg.inv(alone)), rtol=1e-9)
        assert np.all(joint <= single * (1 + 1e-12)), name
        assert np.all(single <= prior_var * (1 + 1e-12)), name
        assert np.any(joint < 0.9 * single), name


def test_scalar_case_precisions_add_up():
    """Seed 000: 1/σ²_post = 1/σ²_prior + 1/σ²_1 + 1/σ²_2."""
    s0, s1, s2 = 2.0, 1.0, 0.5
    prior = PriorFactor(sp.csr_matrix([[1 / s0**2]]))
    jac = {
        "one": aslinearoperator(np.array([[1 / s1]])),
        "two": aslinearoperator(np.array([[1 / s2]])),
    }
    updates = decompose_all(jac, prior, rank=1, rng=np.random.default_rng(8))
    var = prior.inverse_diagonal() - updates["joint"].variance_reduction()
    assert 1 / var[0] == pytest.approx(1 / s0**2 + 1 / s1**2 + 1 / s2**2, rel=1e-14)
    for name, s in (("one", s1), ("two", s2)):
        alone = prior.inverse_diagonal() - updates[name].variance_reduction()
        assert 1 / alone[0] == pytest.approx(1 / s0**2 + 1 / s**2, rel=1e-14)
    # λ is the data's precision relative to the prior's: σ0²/σ1² + σ0²/σ2²
    assert updates["joint"].eigenvalues[0] == pytest.approx(s0**2 / s1**2 + s0**2 / s2**2)


def test_information_shares_sum_to_one_and_follow_the_data():
    o = oracle()
    d = compute_diagnostics(o.problem, o.m, rank=100, probes=0, rng=np.random.default_rng(9))
    for prop in d.properties:
        total = sum(d.information[k][prop] for k in "abc")
        np.testing.assert_allclose(total, 1.0, rtol=1e-10)
    # b senses only density, a only resistivity: each carries most of its property
    assert d.information["a"]["resistivity"].mean() > d.information["b"]["resistivity"].mean()
    assert d.information["b"]["density_contrast"].mean() > 0.5


# --- resolution -------------------------------------------------------------------------
def test_resolution_estimate_converges_to_the_exact_diagonal():
    o = oracle()
    precision = closed_form_precision(o)
    h_data = precision - o.prior
    exact = np.diag(np.linalg.solve(precision, h_data))
    prior = PriorFactor(prior_precision(o.problem.objective, o.m))
    jac = jacobians(o)
    stacked = StackedJacobian(list(jac.values()))
    update = decompose_all(jac, prior, rank=4, rng=np.random.default_rng(10))["joint"]
    post = Posterior(prior, stacked, update)
    errors = {}
    for probes in (4, 16, 64, 256, 1024):
        estimate = post.resolution_diagonal(probes=probes, rng=np.random.default_rng(11))
        errors[probes] = float(np.sqrt(np.mean((estimate - exact) ** 2)))
    low_rank = float(np.sqrt(np.mean((post.resolution_low_rank() - exact) ** 2)))
    print(
        "probes -> rms error:",
        {k: f"{v:.2e}" for k, v in errors.items()},
        f"rank 4 only {low_rank:.2e}",
    )
    assert errors[1024] < errors[4] / 5
    assert errors[1024] < errors[64] < errors[4]
    assert errors[1024] < low_rank / 3
    # at full rank the low-rank part is exact and the probes add (almost) nothing
    full = decompose_all(jac, prior, rank=100, rng=np.random.default_rng(12))["joint"]
    post = Posterior(prior, stacked, full)
    np.testing.assert_allclose(post.resolution_low_rank(), exact, atol=1e-9)
    estimate = post.resolution_diagonal(probes=8, rng=np.random.default_rng(13))
    np.testing.assert_allclose(estimate, exact, atol=1e-7)


# --- coverage and DOI -------------------------------------------------------------------
def test_doi_mask_is_everything_above_the_deepest_covered_cell_per_column():
    mesh = build_mesh(from_mapping(ORACLE_CONFIG))
    nx, nz = mesh.shape
    coverage = np.zeros((nz, nx))
    coverage[-1] = 1.0  # the surface row
    coverage[1, 2] = 0.5  # a deep covered cell in column 2 ...
    coverage[2, 2] = 0.0  # ... below a hole
    mask = doi_mask(mesh, coverage.ravel(), 0.1).reshape(nz, nx)
    assert mask[-1].all()
    assert mask[1:, 2].all() and not mask[0, 2]
    assert not mask[:-1, 0].any()
    assert not doi_mask(mesh, np.zeros(mesh.n_cells), 0.1).any()


# --- config -----------------------------------------------------------------------------
def test_diagnostics_config_defaults_and_errors():
    config = from_mapping(ORACLE_CONFIG)
    assert config.diagnostics.enabled and config.diagnostics.rank == 400
    with pytest.raises(ConfigError, match=re.escape("diagnostics.rank: must be >= 1")):
        from_mapping({**ORACLE_CONFIG, "diagnostics": {"rank": 0}})
    with pytest.raises(ConfigError, match=re.escape("diagnostics.rnak: unknown key")):
        from_mapping({**ORACLE_CONFIG, "diagnostics": {"rnak": 10}})
    improper = {**ORACLE_CONFIG, "regularization": {"alpha_s": 0.0}}
    with pytest.raises(ConfigError, match=re.escape("regularization.alpha_s: must be > 0 for")):
        from_mapping(improper)
    assert not from_mapping({**improper, "diagnostics": {"enabled": False}}).diagnostics.enabled
    modalities = {"joint": ORACLE_CONFIG["modalities"]["a"]}
    with pytest.raises(ConfigError, match=re.escape("modalities.joint: 'joint' names all data")):
        from_mapping({**ORACLE_CONFIG, "modalities": modalities})


# --- the quick start --------------------------------------------------------------------
def _row_means(
    mesh, values: np.ndarray, x_range: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Averages over the cells of each core row within ``x_range``, top row first."""
    nx, nz = mesh.shape
    x, z = mesh.cell_centers.T
    inside = mesh.core_mask & (x > x_range[0]) & (x < x_range[1])
    grid, keep = values.reshape(nz, nx), inside.reshape(nz, nx)
    rows = [iz for iz in range(nz - 1, -1, -1) if keep[iz].any()]
    depth = -z.reshape(nz, nx)[rows, 0]
    return depth, np.array([grid[iz, keep[iz]].mean() for iz in rows])


def test_quickstart_diagnostics(quickstart_run):
    result = quickstart_run
    d = result.diagnostics
    problem = result.problem
    mesh = problem.mesh
    print(
        f"diagnostics {d.seconds:.1f} s; eigenvalues > 1:",
        {k: int((v > 1).sum()) for k, v in d.eigenvalues.items()},
    )
    assert set(d.eigenvalues) == {"joint", "ert", "traveltime", "gravity"}
    # the default rank keeps every direction the data inform: the last kept λ is tiny
    assert d.eigenvalues["joint"][-1] < 1e-2
    # information adds up: the joint spectrum has about as many informed directions as all
    n_joint = int((d.eigenvalues["joint"] > 1).sum())
    n_sum = sum(int((d.eigenvalues[k] > 1).sum()) for k in ("ert", "traveltime", "gravity"))
    assert abs(n_joint - n_sum) <= 0.1 * n_sum
    for prop in d.properties:
        post, prior = d.posterior_std[prop], d.prior_std[prop]
        assert post.shape == (mesh.n_cells,) and np.all(np.isfinite(post))
        assert np.all(post <= prior * (1 + 1e-9))
        for name in ("ert", "traveltime", "gravity"):
            assert np.all(post <= d.single_std[name][prop] * (1 + 1e-9))
    sensors = np.vstack([ds.sensors for ds in problem.datasets.values()])
    span = (sensors[:, 0].min(), sensors[:, 0].max())
    for name, prop in (("ert", "resistivity"), ("traveltime", "velocity")):
        depth, std = _row_means(mesh, d.posterior_std[prop], span)
        _, ratio = _row_means(mesh, d.posterior_std[prop] / d.prior_std[prop], span)
        _, cov = _row_means(mesh, d.coverage[name], span)
        print(
            f"{prop}: depth {np.round(depth, 1)}\n  std {np.round(std, 4)}\n"
            f"  std/prior {np.round(ratio, 3)}\n  coverage {cov / cov[0]}"
        )
        # small where the coverage is high (the top), large at depth: the averages over
        # 3 m depth bands grow, up to dips of 2 % where the coverage is nearly gone and the
        # posterior std levels off at the prior's (which need not grow); the
        # prior-normalised ratio below must grow strictly
        covered = cov > 0  # no ray reaches the deepest rows
        bands = std[: len(std) // 3 * 3].reshape(-1, 3).mean(axis=1)
        print(f"  3 m bands {np.round(bands, 4)}")
        assert np.all(np.diff(bands) > -0.02 * bands[1:]), prop
        assert bands[-1] > 1.2 * bands[0], prop
        # the posterior/prior ratio grows with depth: monotone over 3 m bands, and row by
        # row up to dips of 0.02 (2 % of the prior std; a layer boundary may cause one)
        ratio_bands = ratio[: len(ratio) // 3 * 3].reshape(-1, 3).mean(axis=1)
        assert np.all(np.diff(ratio_bands) > 0), (prop, ratio_bands)
        assert np.diff(ratio).min() > -0.02, (prop, ratio)
        assert ratio[-1] > ratio[0] + 0.3, (prop, ratio)
        # where the coverage is high the data have shrunk the prior most
        assert np.corrcoef(np.log(cov[covered]), ratio[covered])[0, 1] < -0.8, prop
        # the sensing modality carries most of the information on its property; the
        # others add theirs through the couplings
        inside = d.doi_mask[name]
        shares = {k: float(np.median(v[prop][inside])) for k, v in d.information.items()}
        print(f"  median information shares in the {name} DOI: {shares}")
        assert shares[name] > 0.75, shares
        assert all(shares[name] > 5 * v for k, v in shares.items() if k != name), shares
    fit = d.data_fit["ert"]
    assert fit.chi2 == pytest.approx(result.chi2["ert"], rel=1e-10)
    assert abs(fit.mean) < 1 and 0.5 < fit.std < 1.5
    assert d.correlation.shape == (3, 3)
    np.testing.assert_allclose(np.diag(d.correlation), 1.0)
    # and in the file
    saved = read_result(result.output)
    assert saved.diagnostics is not None
    np.testing.assert_array_equal(
        saved.diagnostics.posterior_std["velocity"], d.posterior_std["velocity"]
    )
    with h5py.File(result.output) as f:
        g = f["diagnostics"]
        assert g["posterior_std/resistivity"].shape == (30, 94)
        assert g["posterior_std/resistivity"].attrs["units"] == "log10(ohm*m)"
        assert g["information/gravity/density_contrast"].shape == (30, 94)
        assert g["coverage/ert"].attrs["property"] == "resistivity"
        assert g["eigenvalues/joint"].shape == (d.settings["rank"],)
        assert g["data_fit/traveltime"].attrs["n_data"] == len(
            problem.datasets["traveltime"].observed
        )
        assert g.attrs["rank"] == 400 and g.attrs["seconds"] > 0


# --- the command line -------------------------------------------------------------------
@pytest.fixture(scope="module")
def gravity_result(tmp_path_factory):
    """A gravity-only run without diagnostics (about 2 s)."""
    ws = Workspace(tmp_path_factory.mktemp("diag"))
    config = ws.write("gravity.yaml", gravity_only_mapping())
    out = ws.root / "run.h5"
    result = runner.invoke(app, ["run", str(config), "-o", str(out), "--no-diagnostics", "-q"])
    assert result.exit_code == 0, result.output
    return ws, config, out


def test_run_without_diagnostics_then_diagnose(gravity_result, tmp_path):
    ws, config, original = gravity_result
    out = tmp_path / "run.h5"
    out.write_bytes(original.read_bytes())
    assert read_result(out).diagnostics is None
    result = runner.invoke(app, ["diagnose", str(out), "-q"])
    assert result.exit_code == 0, result.output
    saved = read_result(out)
    assert saved.diagnostics is not None
    assert set(saved.diagnostics.posterior_std) == {"density_contrast"}
    assert saved.diagnostics.data_fit["gravity"].chi2 == pytest.approx(saved.data["gravity"].chi2)
    first = saved.diagnostics.posterior_std["density_contrast"]
    # again, with other settings: replaced, not duplicated
    result = runner.invoke(app, ["diagnose", str(out), "--rank", "5", "--probes", "0", "-q"])
    assert result.exit_code == 0, result.output
    again = read_result(out).diagnostics
    assert again.settings["rank"] == 5 and len(again.eigenvalues["joint"]) == 5
    assert np.all(again.posterior_std["density_contrast"] >= first * (1 - 1e-12))
    assert not list(tmp_path.glob(".*.tmp"))
    shown = runner.invoke(app, ["show", str(out), "--plot", str(tmp_path / "plots")])
    assert shown.exit_code == 0, shown.output
    assert "posterior diagnostics (rank 5" in shown.stdout
    assert re.search(r"density_contrast +std of density_contrast: median", shown.stdout)
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == sorted(
        [
            "convergence.png",
            "model_density_contrast.png",
            "posterior_std_density_contrast.png",
            "resolution_density_contrast.png",
            "coverage_gravity.png",
            "residuals_gravity.png",
            "eigenvalues.png",
            "fit_gravity.png",
        ]
    )


def test_diagnose_with_moved_data_needs_the_config(gravity_result, tmp_path):
    ws, config, original = gravity_result
    out = tmp_path / "run.h5"
    out.write_bytes(original.read_bytes())
    moved = Workspace(tmp_path / "moved")
    with h5py.File(out, "r+") as f:  # as if the run had been made elsewhere
        f["meta"].attrs["config_path"] = str(tmp_path / "elsewhere" / "gravity.yaml")
    before = out.read_bytes()
    result = runner.invoke(app, ["diagnose", str(out)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: ")
    assert "no longer resolve" in line and "jointinv diagnose RESULT CONFIG" in line
    assert out.read_bytes() == before
    config2 = moved.write("gravity.yaml", gravity_only_mapping())
    result = runner.invoke(app, ["diagnose", str(out), str(config2), "-q"])
    assert result.exit_code == 0, result.output
    assert read_result(out).diagnostics is not None


def test_diagnose_refuses_changed_data_and_keeps_the_file(gravity_result, tmp_path):
    ws, config, original = gravity_result
    out = tmp_path / "run.h5"
    out.write_bytes(original.read_bytes())
    with h5py.File(out, "r+") as f:
        f["data/gravity/observed"][0] += 1.0
    before = out.read_bytes()
    with pytest.raises(UserInputError, match="gravity data .* differ from those the result"):
        diagnose_result(out)
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_diagnose_failure_leaves_the_file_untouched(gravity_result, tmp_path, monkeypatch):
    ws, config, original = gravity_result
    out = tmp_path / "run.h5"
    out.write_bytes(original.read_bytes())
    before = out.read_bytes()

    def broken(f, diagnostics):
        f.require_group("diagnostics/posterior_std")  # half written ...
        raise RuntimeError("disk full")  # ... then a failure

    monkeypatch.setattr("jointinv.diagnostics.fill_diagnostics", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        diagnose_result(out)
    assert out.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_diagnose_missing_file(tmp_path):
    result = runner.invoke(app, ["diagnose", str(tmp_path / "nope.h5")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nope.h5'}: no such result file"


def test_a_failure_of_the_diagnostics_keeps_the_inversion(gravity_result, monkeypatch, caplog):
    ws, config, _ = gravity_result

    def broken(problem, model):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr("jointinv.runner.run_diagnostics", broken)
    out = ws.root / "kept.h5"
    result = jointinv.run(config, output=out)
    assert result.diagnostics is None and out.is_file()
    assert read_result(out).diagnostics is None
    assert "posterior diagnostics failed (LinAlgError: not positive definite)" in caplog.text


def test_run_result_carries_the_diagnostics(gravity_result):
    ws, config, _ = gravity_result
    result = jointinv.run(config, write=False)
    assert result.diagnostics is not None
    assert result.diagnostics.settings["rank"] == 400
    assert jointinv.run(config, write=False, diagnostics=False).diagnostics is None
