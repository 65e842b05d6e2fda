"""Posterior diagnostics at the final model: what each dataset determined, and how well.

For Gaussian noise information adds up: the Gauss-Newton Hessian of the joint
problem is the sum of the modalities' Hessians and the prior's,

    H = Σ_k J_kᵀW_kᵀW_kJ_k + P,    P = β·∇²R + Σ_couplings (their GN Hessians),

and H is the precision of the linearised posterior. Here ``P``, everything in
the objective that is not data, plays the prior precision Γ_prior⁻¹: the
regularization at the final β plus the coupling terms' Gauss-Newton Hessians
at the final model. The balancing weights of the misfits (if any) are left
out: the data enter with their stated standard deviations.

:func:`compute_diagnostics` returns, per property (in its own transform:
log10 of the property for ``transform: log``, the property itself for
``linear``), the prior and posterior standard deviations and the diagonal of
the resolution matrix; per modality the eigen-spectrum of its
prior-preconditioned Hessian, its share of the information per cell, its
coverage and a depth-of-investigation mask, and its data fit; and the
correlation between the properties of the final model. The linear algebra is
in :mod:`jointinv.posterior`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator
from threadpoolctl import threadpool_limits

from .config import DiagnosticsConfig, LoadedConfig, load_config, parse_config
from .coordinates import variables
from .diagnostics_file import fill_diagnostics, remove_diagnostics
from .errors import ConfigError, UserInputError
from .mesh import ModelMesh
from .objective import Objective
from .posterior import LowRankUpdate, Posterior, PriorFactor, StackedJacobian, decompose_all
from .problem import DATA_LABELS, Problem, build_problem, source_property
from .progress import stage
from .resultfile import open_result
from .results import rewrite_atomic

log = logging.getLogger(__name__)

#: Defaults: the ``diagnostics`` section of the config. The rank (400) was
#: chosen on the quick start, where the posterior std at rank 400 is within
#: 1e-7 of the full-rank one (rank 300: 0.4 %, rank 200: 15 %); see docs/diagnostics.md.
DEFAULTS = DiagnosticsConfig()
#: A decomposition whose smallest kept eigenvalue is above this is reported as
#: truncated: the directions left out would each remove more than ~9 % of
#: the prior variance along them.
TRUNCATION_WARNING = 0.1


@dataclass
class DataFit:
    """How well the final model fits one modality's data.

    Attributes
    ----------
    chi2 : float
        χ² = Σ r²/N with r the normalized residuals.
    mean, std : float
        Mean and standard deviation of the normalized residuals (ideally 0 and 1).
    fraction_beyond_3sigma : float
        Share of the data with |r| > 3.
    residual : ndarray
        d − G(m) per datum (data units, ``units``).
    normalized_residual : ndarray
        (d − G(m)) / σ per datum.
    units : str
    """

    chi2: float
    mean: float
    std: float
    fraction_beyond_3sigma: float
    residual: np.ndarray
    normalized_residual: np.ndarray
    units: str

    @classmethod
    def from_residuals(cls, residual: np.ndarray, std: np.ndarray, units: str) -> DataFit:
        r = residual / std
        return cls(
            chi2=float(np.mean(r**2)),
            mean=float(np.mean(r)),
            std=float(np.std(r)),
            fraction_beyond_3sigma=float(np.mean(np.abs(r) > 3.0)),
            residual=residual,
            normalized_residual=r,
            units=units,
        )


@dataclass
class Diagnostics:
    """The linearised posterior at the final model (see the module docstring).

    Every per-cell array has one value per model cell (x fastest).

    Attributes
    ----------
    posterior_std, prior_std : dict
        Per property, in ``std_units[property]`` (e.g. ``log10(ohm*m)``).
    std_units, parameter : dict
        Per property: units of the std and the quantity it is the std of
        (``log10(resistivity)`` or ``density_contrast``).
    resolution : dict
        Per property: diagonal of the model resolution matrix R = H⁻¹H_d
        (dimensionless, 1 = fully resolved by the data).
    eigenvalues : dict
        ``joint`` and each modality: eigenvalues of the prior-preconditioned
        data-misfit Hessian, descending (dimensionless).
    information : dict
        Per modality and property: that modality's share of the information per
        cell, g_k / Σ_j g_j with g_k = 1/σ²_k − 1/σ²_prior the precision it adds
        alone; in [0, 1], summing to 1 over the modalities where any adds.
    single_std : dict
        Per modality and property: posterior std with that modality alone (same
        units as ``posterior_std``).
    coverage : dict
        Per modality: cumulative sensitivity ‖(W_kJ_k)[:, c]‖₂ / A_c of each cell
        of the property it senses (1/m² per parameter unit).
    doi_mask : dict
        Per modality: the cells above its depth of investigation: in each column,
        down to the deepest cell whose coverage is at least ``doi_threshold``
        times the largest coverage in the core region (see :func:`doi_mask`).
    sensed_property : dict
        Per modality: the inverted property its coverage refers to.
    data_fit : dict
        Per modality: :class:`DataFit`.
    correlation : ndarray (n_properties, n_properties)
        Pearson correlation of the properties (in their own transform) over
        the core cells of the final model.
    settings : dict
        rank, oversampling, power_iterations, probes, doi_threshold, beta.
    seconds : float
        Wall time of :func:`compute_diagnostics`.
    """

    properties: list[str]
    posterior_std: dict[str, np.ndarray]
    prior_std: dict[str, np.ndarray]
    std_units: dict[str, str]
    parameter: dict[str, str]
    resolution: dict[str, np.ndarray]
    eigenvalues: dict[str, np.ndarray]
    information: dict[str, dict[str, np.ndarray]]
    single_std: dict[str, dict[str, np.ndarray]]
    coverage: dict[str, np.ndarray]
    doi_mask: dict[str, np.ndarray]
    sensed_property: dict[str, str]
    data_fit: dict[str, DataFit]
    correlation: np.ndarray
    settings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


# --- the operators --------------------------------------------------------------
def prior_precision(objective: Objective, m: np.ndarray) -> sp.csr_matrix:
    """P = β·∇²R + Σ couplings' Gauss-Newton Hessians at ``m`` (sparse, n × n).

    Raises
    ------
    TypeError
        If a coupling term offers no ``hessian_matrix(m)``.
    """
    p = objective.beta * objective.regularization.hessian_matrix()
    for term in objective.couplings:
        if not hasattr(term, "hessian_matrix"):
            raise TypeError(f"coupling {term.name} offers no hessian_matrix(m)")
        p = p + term.hessian_matrix(m)
    return sp.csr_matrix(p)


def gauss_newton_hessian(objective: Objective, m: np.ndarray) -> LinearOperator:
    """H = Σ_k J_kᵀW_kᵀW_kJ_k + P at ``m`` as a matrix-free operator (n × n)."""
    prior = prior_precision(objective, m)
    data = StackedJacobian([t.weighted_jacobian(m) for t in objective.misfits])
    n = len(m)
    return LinearOperator(
        (n, n),
        matvec=lambda v: prior @ v + data.hessian_mat(v[:, None])[:, 0],
        matmat=lambda v: prior @ v + data.hessian_mat(v),
        dtype=float,
    )


# --- the computation ----------------------------------------------------------
# One BLAS thread, as for the inversion: the numbers do not depend on the
# machine's thread count, and the dense blocks here (band ~200, n_data ~1000)
# gain nothing from threads but lose a lot when the cores are shared.
@threadpool_limits.wrap(limits=1, user_api="blas")
def compute_diagnostics(
    problem: Problem,
    model: np.ndarray,
    *,
    rank: int = DEFAULTS.rank,
    oversampling: int = DEFAULTS.oversampling,
    power_iterations: int = DEFAULTS.power_iterations,
    probes: int = DEFAULTS.probes,
    doi_threshold: float = DEFAULTS.doi_threshold,
    rng: np.random.Generator,
) -> Diagnostics:
    """The linearised posterior of ``problem`` at ``model``.

    Parameters
    ----------
    problem : Problem
        Its objective's β is the one the final model was computed with.
    model : ndarray
        The joint model vector (inversion parameters).
    rank : int
        Eigenpairs kept in each low-rank decomposition (joint and per modality).
    oversampling, power_iterations : int
        Of the randomized eigensolver.
    probes : int
        Random probes of the Hutchinson estimate of the resolution diagonal.
    doi_threshold : float
        Relative coverage that bounds the depth of investigation.
    rng : numpy.random.Generator

    Returns
    -------
    Diagnostics
    """
    started = time.perf_counter()
    objective = problem.objective
    m = np.asarray(model, dtype=float)
    stage("diagnostics: Jacobians at the final model")
    jacobians = {t.name: t.weighted_jacobian(m) for t in objective.misfits}
    prior = PriorFactor(prior_precision(objective, m))
    prior_var = prior.inverse_diagonal()
    settings = dict(rank=rank, oversampling=oversampling, power_iterations=power_iterations)
    stage("diagnostics: %d eigenpairs of each Hessian (joint and per modality)", rank)
    updates = decompose_all(jacobians, prior, **settings, rng=rng)
    for name, update in updates.items():
        _warn_if_truncated(name, update, rank)
    joint = Posterior(prior, StackedJacobian(list(jacobians.values())), updates["joint"])
    var = joint.variance(prior_var)
    single_var = {k: prior_var - updates[k].variance_reduction() for k in jacobians}
    scale = _std_scale(problem, m)
    blocks = problem.blocks
    coverage = {k: _coverage(problem, k, j) for k, j in jacobians.items()}
    if probes:
        stage("diagnostics: resolution from %d probes", probes)
    return Diagnostics(
        properties=[b.name for b in blocks],
        posterior_std=_per_property(problem, np.sqrt(np.maximum(var, 0.0)) * scale),
        prior_std=_per_property(problem, np.sqrt(prior_var) * scale),
        std_units={b.name: _own_units(problem, b.name) for b in blocks},
        parameter={b.name: _own_label(problem, b.name) for b in blocks},
        resolution=_per_property(problem, joint.resolution_diagonal(probes=probes, rng=rng)),
        eigenvalues={k: u.eigenvalues for k, u in updates.items()},
        information=_information_shares(problem, prior_var, single_var),
        single_std={
            k: _per_property(problem, np.sqrt(np.maximum(v, 0.0)) * scale)
            for k, v in single_var.items()
        },
        coverage=coverage,
        doi_mask={k: doi_mask(problem.mesh, c, doi_threshold) for k, c in coverage.items()},
        sensed_property={k: _sensed_block(problem, k) for k in jacobians},
        data_fit={t.name: _data_fit(problem, t.name, m) for t in objective.misfits},
        correlation=property_correlation(problem, m),
        settings={
            **settings,
            "probes": probes,
            "doi_threshold": doi_threshold,
            "beta": float(objective.beta),
        },
        seconds=time.perf_counter() - started,
    )


def _warn_if_truncated(name: str, update: LowRankUpdate, rank: int) -> None:
    if update.rank >= rank and update.eigenvalues[-1] > TRUNCATION_WARNING:
        log.warning(
            "diagnostics (%s): the smallest of %d kept eigenvalues is %.3g > %g; "
            "the posterior std is overestimated, raise diagnostics.rank",
            name,
            update.rank,
            update.eigenvalues[-1],
            TRUNCATION_WARNING,
        )


# --- per-property helpers -------------------------------------------------------
def _per_property(problem: Problem, values: np.ndarray) -> dict[str, np.ndarray]:
    return {b.name: np.asarray(values[b.slice]) for b in problem.blocks}


def _is_log(problem: Problem, prop: str) -> bool:
    return problem.config.properties[prop].transform == "log"


def _own_label(problem: Problem, prop: str) -> str:
    return f"log10({prop})" if _is_log(problem, prop) else prop


def _own_units(problem: Problem, prop: str) -> str:
    units = problem.config.properties[prop].units
    return f"log10({units})" if _is_log(problem, prop) else units


def _std_scale(problem: Problem, m: np.ndarray) -> np.ndarray:
    """|d q / d m| per parameter, q the property in its own transform (delta method).

    q = log10(p) for log properties (dq/dm = p'(m) / (p ln 10)), q = p otherwise.
    """
    out = np.empty_like(m)
    for b in problem.blocks:
        t = problem.transforms[b.name]
        mb = m[b.slice]
        d = t.derivative(mb)
        out[b.slice] = np.abs(d / (t(mb) * np.log(10.0)) if _is_log(problem, b.name) else d)
    return out


def own_transform(problem: Problem, m: np.ndarray) -> dict[str, np.ndarray]:
    """Every inverted property in its own transform (log10 or physical)."""
    out = {}
    for b in problem.blocks:
        p = problem.transforms[b.name](m[b.slice])
        out[b.name] = np.log10(p) if _is_log(problem, b.name) else p
    return out


def property_correlation(problem: Problem, m: np.ndarray) -> np.ndarray:
    """Pearson correlation of the properties (own transform) over the core cells."""
    core = problem.mesh.core_mask
    values = np.array([v[core] for v in own_transform(problem, m).values()])
    if len(values) < 2:
        return np.ones((len(values), len(values)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(values))


def _information_shares(
    problem: Problem, prior_var: np.ndarray, single_var: dict[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """g_k / Σ_j g_j per cell, g_k = 1/σ²_k − 1/σ²_prior (0 where no modality adds)."""
    gains = {
        k: np.maximum(1.0 / np.maximum(v, np.finfo(float).tiny) - 1.0 / prior_var, 0.0)
        for k, v in single_var.items()
    }
    total = sum(gains.values())
    floor = 1e-12 / prior_var  # below this no modality adds anything measurable
    informed = total > floor
    return {
        k: _per_property(problem, np.where(informed, g / np.where(informed, total, 1.0), 0.0))
        for k, g in gains.items()
    }


# --- per-modality helpers -------------------------------------------------------
def _sensed_block(problem: Problem, modality: str) -> str:
    return source_property(problem.config, problem.config.modalities[modality].property)


def _column_norms_squared(op: LinearOperator, chunk: int = 256) -> np.ndarray:
    """diag(AᵀA) of an operator, from Aᵀ applied to blocks of unit vectors."""
    n_rows = op.shape[0]
    out = np.zeros(op.shape[1])
    for start in range(0, n_rows, chunk):
        rows = np.arange(start, min(start + chunk, n_rows))
        unit = np.zeros((n_rows, len(rows)))
        unit[rows, np.arange(len(rows))] = 1.0
        at = op.rmatmat(unit)
        out += np.einsum("ij,ij->i", at, at)
    return out


def _coverage(problem: Problem, modality: str, jacobian: LinearOperator) -> np.ndarray:
    """‖(W J)[:, c]‖₂ / A_c over the cells of the sensed property (1/m² per parameter unit)."""
    block = next(b for b in problem.blocks if b.name == _sensed_block(problem, modality))
    norms = np.sqrt(_column_norms_squared(jacobian)[block.slice])
    return norms / problem.mesh.cell_areas


def doi_mask(mesh: ModelMesh, coverage: np.ndarray, threshold: float) -> np.ndarray:
    """Cells above the depth of investigation, per column of the mesh.

    In each column the depth of investigation is the centre of the deepest
    cell whose coverage is at least ``threshold`` times the largest coverage
    in the core region; the mask holds that cell and every cell above it
    (columns with no such cell are all False). Holes in the coverage (cells no
    ray crosses) inside the covered depth range stay in the mask.
    """
    nx, nz = mesh.shape
    top = np.max(coverage[mesh.core_mask], initial=0.0)
    covered = mesh.full(coverage >= threshold * top, fill=False) if top > 0 else mesh.full(
        np.zeros(mesh.n_cells, bool), fill=False
    )
    covered = covered.reshape(nz, nx)
    # rows run from the bottom (index 0) to the surface: keep rows at or above the deepest covered
    deepest = np.where(covered.any(axis=0), covered.argmax(axis=0), nz)
    return (np.arange(nz)[:, None] >= deepest[None, :]).ravel()[mesh.active]


def _data_fit(problem: Problem, name: str, m: np.ndarray) -> DataFit:
    misfit = next(t for t in problem.objective.misfits if t.name == name)
    kind = problem.datasets[name].kind
    residual = misfit.observed - misfit.predicted(m)
    return DataFit.from_residuals(residual, misfit.std, DATA_LABELS[kind][1])


# --- from a config, and for a saved result ------------------------------------------
def run_diagnostics(
    problem: Problem,
    model: np.ndarray,
    *,
    rank: int | None = None,
    probes: int | None = None,
) -> Diagnostics:
    """:func:`compute_diagnostics` with the settings of the problem's config.

    ``rank`` and ``probes`` override the config's; the random generator is
    seeded with ``inversion.seed``.
    """
    config = problem.config
    settings = config.diagnostics
    started = time.perf_counter()
    out = compute_diagnostics(
        problem,
        model,
        rank=rank or settings.rank,
        oversampling=settings.oversampling,
        power_iterations=settings.power_iterations,
        probes=settings.probes if probes is None else probes,
        doi_threshold=settings.doi_threshold,
        rng=np.random.default_rng(config.inversion.seed),
    )
    log.info(
        "posterior diagnostics in %.1f s (rank %d, %d probes)",
        time.perf_counter() - started,
        out.settings["rank"],
        out.settings["probes"],
    )
    return out


def problem_from_result(
    path: str | Path, config: str | Path | None = None
) -> tuple[Problem, np.ndarray]:
    """Rebuild the problem and the final model of a saved result.

    The config is the one stored in ``/meta`` (its data paths resolved from
    the stored ``config_path``), or ``config`` when given. The final model is
    read from ``/models`` (physical units → inversion parameters), β from the
    last iteration, the modalities from ``/data``.

    Raises
    ------
    UserInputError
        If the file is not a result, its data files no longer resolve (then
        pass ``config``), the config does not match the result's mesh and
        modalities, or the data differ from those stored in the result.
    """
    path = Path(path)
    with open_result(path) as f:
        meta = dict(f["meta"].attrs)
        models = {k: d[()].ravel() for k, d in variables(f["models"]).items()}
        modalities = list(f["data"])
        observed = {k: f[f"data/{k}/observed"][()] for k in modalities}
        beta = float(f["iterations/beta"][-1])
        shape = (len(f["mesh/nodes_x"]) - 1, len(f["mesh/nodes_z"]) - 1)
    loaded = load_config(config) if config is not None else _stored_config(path, meta)
    try:
        problem = build_problem(loaded, only=modalities)
    except ConfigError as exc:
        if config is not None or "file not found" not in str(exc):
            raise
        raise UserInputError(
            f"{path}: the data of its stored config no longer resolve ({exc}); "
            "give the config: jointinv diagnose RESULT CONFIG"
        ) from None
    missing = sorted(set(modalities) - set(problem.datasets))
    if missing:
        raise UserInputError(f"{path}: the config has no modality {', '.join(missing)}")
    if problem.mesh.shape != shape:
        raise UserInputError(
            f"{path}: its mesh has {shape[0]} x {shape[1]} cells, the config's "
            f"{problem.mesh.shape[0]} x {problem.mesh.shape[1]}"
        )
    for t in problem.objective.misfits:
        if t.observed.shape != observed[t.name].shape or not np.allclose(
            t.observed, observed[t.name], rtol=1e-12, atol=0.0
        ):
            raise UserInputError(
                f"{path}: the {t.name} data ({problem.datasets[t.name].survey.source}) differ "
                "from those the result was computed with"
            )
    problem.objective.beta = beta
    model = np.concatenate(
        [problem.transforms[b.name].inverse(models[b.name]) for b in problem.blocks]
    )
    return problem, model


def _stored_config(path: Path, meta: dict) -> LoadedConfig:
    if "config_text" not in meta:
        raise UserInputError(f"{path}: no config stored in /meta; give the config")
    text = str(meta["config_text"])
    stored = Path(str(meta.get("config_path", path)))
    return LoadedConfig(parse_config(text, stored.name), stored, text)


def diagnose_result(
    path: str | Path,
    config: str | Path | None = None,
    *,
    rank: int | None = None,
    probes: int | None = None,
) -> Diagnostics:
    """Compute the diagnostics of a saved result and write them into it.

    The file is rewritten atomically (a modified copy replaces it); earlier
    diagnostics are replaced. See :func:`problem_from_result` for ``config``.
    """
    problem, model = problem_from_result(path, config)
    if problem.config.regularization.alpha_s == 0:
        raise UserInputError(
            f"{path}: regularization.alpha_s is 0, so the prior is improper and the "
            "posterior has no finite variance; no diagnostics"
        )
    diagnostics = run_diagnostics(problem, model, rank=rank, probes=probes)

    def _modify(f: h5py.File) -> None:
        remove_diagnostics(f)
        fill_diagnostics(f, diagnostics)

    rewrite_atomic(Path(path), _modify)
    return diagnostics
