"""Do the datasets agree? A likelihood-ratio test of the coupling, with attribution.

Hypotheses
----------
*Coupled* (the null): one joint model explains every modality, as
``jointinv run`` fits it (couplings and shared or derived properties active).
*Uncoupled* (the alternative): each modality is fitted alone, free of the
coupling terms, with the same regularization (``build_problem(only=[name])``).

Statistic
---------
With Gaussian noise the data misfit is ``φ_d,k = ½‖(d_k − G_k(m))/σ_k‖²`` and
``2φ_d,k = χ²_k·N_k``, so the likelihood-ratio statistic is ::

    T = 2 Σ_k [φ_d,k(m_coupled) − φ_d,k(m_k alone)] = Σ_k Δ(χ²_k·N_k)

Both hypotheses are minimised at the same β (β*, where the coupled fit of
``jointinv run`` ends; see :class:`ConfigSetup`). ``T ≥ 0`` up to optimisation
error when the modalities sense different properties: the uncoupled fit has
more freedom. When they share a property each copy of the alternative carries
its own regularization, and ``T`` may be negative (no evidence of conflict).

Calibration
-----------
*Parametric bootstrap* (the reference): data are simulated from the coupled
solution with each modality's stated σ, ``d* = G(m_coupled) + σ·ε``, both
hypotheses are fitted again and ``p = (1 + #{T* ≥ T}) / (N + 1)``. Replicate
``i`` draws its noise from ``np.random.SeedSequence(seed).spawn(N)[i]``, so the
p-value is the same serially and with any number of worker processes.

*Fast approximation*: ``T ~ χ²(ν)`` with ``ν = Σ_k tr H_k(alone) − tr H(coupled)``,
the difference of the effective numbers of parameters. ``H = W J A⁻¹ JᵀW`` is
the linearised hat (resolution) matrix at the solution, with ``A = JᵀW²J +
β∇²R + Σ∇²C`` the Gauss-Newton Hessian of the objective; ``tr H = tr(A⁻¹JᵀW²J)``
is computed exactly: densely for up to :data:`DENSE_LIMIT` parameters, and
above that from ``A = B + UᵀU`` (``B`` the sparse regularization, coupling and
prior Hessians, ``U`` the stacked weighted Jacobians, one row per datum) by
Woodbury's identity with a sparse LU of ``B`` (:func:`hessian_solver`). Only
when a term offers no matrix are the traces Hutchinson estimates,
``E[zᵀA⁻¹JᵀW²Jz]`` over Rademacher vectors ``z`` (fixed seed) with one CG
solve each (relative tolerance :data:`TRACE_CG_TOLERANCE`). The χ² law is exact
for a linear problem with Gaussian noise and a weak prior; with the χ²-target
stopping of ``jointinv run`` it is a rough guide and the bootstrap is the reference.

*When the χ² law is not used* (:func:`dof_check`): ν < :data:`MIN_DOF` (ν ≤ 0
included); Hutchinson's error of ν above ν/3; or ``T < −√(2ν)``, one standard
deviation of χ²(ν) below its lower bound 0, i.e. the optimisation error of the
nonlinear fits is larger than the sampling spread the law assumes. The report
then says ``dof_reliable: false`` with the reason, the log warns, and unless a
bootstrap was asked for the p-value comes from a *linearised bootstrap* of
``conflict.fallback_replicates`` replicates (``calibration``).

*Linearised bootstrap* (``conflict.bootstrap_mode: linearised``): each
hypothesis is replaced by its Gauss-Newton quadratic model about its solution
for the observed data (:class:`QuadraticModel`, Jacobians frozen there), and a
replicate's fit is one linear solve of that model for the replicate's data (the
same noise draws as the refits). On a linear problem it gives the refits' T*
up to solver tolerance; on a nonlinear one it omits the optimisation error of
the refits.

Attribution
-----------
The tension modality ``k`` adds is ``T − T_{−k}``, the change in the statistic
when it joins the others (``T_{−k}`` from the same test without ``k``), with a
χ² p-value on ``ν − ν_{−k}`` degrees of freedom. By default
(``conflict.attribution: linearised``) the coupled fit without ``k`` is the
minimum of the quadratic model of its objective about the coupled solution (one
linear solve, no new engine runs); ``refit`` fits it again (one more nonlinear
fit per modality). The suspect is the modality
with the smallest such p-value. A modality's verdict is ``conflict`` only when
the test as a whole finds one (its p-value < α) and its own p-value is < α: on
a nonlinear problem ``T`` and ``T_{−k}`` each carry the optimisation error of
their fits, and a small ``ν − ν_{−k}`` turns that error alone into a small
p-value.

Augmentation
------------
Bias parameters (:mod:`jointinv.bias`) declared in the config join the model
vector in both hypotheses; their estimates and posterior σ (``sqrt`` of the
diagonal of ``A⁻¹`` at the coupled solution) are reported, and the test is run
again with them to show whether they explain the conflict. That second pass
runs its own β schedule from the start model: started from the first pass's
coupled solution (a model that has absorbed part of the bias), its fit at β*
stalled on the porosity conflict case with the delay split between the statics
and the model (T = 82–113 instead of 13.3).

Each bias also carries ρ, its multiple correlation with every other parameter
under the linearised posterior, ``ρ² = 1 − 1/(A_bb·(A⁻¹)_bb)``: near 1 the model
can take the bias's place (a shot static against the velocity under that shot).
Above :data:`SEPARABLE_CORRELATION` a bias is reported as not separable from the
model and never as significant; otherwise it is significant when
``|b| > z_{1−α/2}·σ_b``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.linalg import cho_factor, cho_solve
from scipy.sparse.linalg import LinearOperator, cg, splu
from threadpoolctl import threadpool_limits

from . import interrupt
from .bias import BiasBlock, augment, declared_blocks
from .errors import UserInputError
from .inversion import DAMPING_START, BetaCooling, GaussNewton, Stopping
from .objective import Objective

log = logging.getLogger(__name__)

#: up to this many parameters the hat-matrix traces and bias σ are computed densely
DENSE_LIMIT = 1500

#: relative CG tolerance of the solves of Hutchinson's probes (their variance dominates)
TRACE_CG_TOLERANCE = 1e-3

#: relative CG tolerance of the linear solves of the linearised refits (larger problems)
LINEAR_CG_TOLERANCE = 1e-6

#: the χ²(ν) law is not used below this many effective parameters (ν ≤ 0 included)
MIN_DOF = 1.0

#: a bias whose multiple correlation with the other parameters exceeds this is
#: reported as not separable from the model (and never as significant)
SEPARABLE_CORRELATION = 0.9

#: exit code of ``jointinv conflict-test`` when a conflict is found
EXIT_CONFLICT = 3

#: cap on the Gauss-Newton iterations of each fit of a bootstrap replicate (config
#: fits), below ``inversion.max_iterations``; None: the same cap as the fits of the
#: observed data, so that T* is computed exactly as T. On the quick start a cap of 8
#: stopped 3 of 8 replicate fits before they stagnated (the coupled fit of the observed
#: data at β* takes 10), so it is off by default.
REPLICATE_MAX_ITERATIONS: int | None = None


class Setup(Protocol):
    """What the test needs from a problem (a config, or a small linear test problem).

    ``objective(names)`` returns the coupled objective of those modalities (a
    single name: that modality alone); it may be cached, since the test sets the
    observed data of its misfits before each fit. ``solve`` minimises an
    objective from ``m0`` and returns the model. Must be picklable for workers.
    """

    names: list[str]

    def objective(self, names: tuple[str, ...]) -> Objective: ...

    def start(self) -> np.ndarray: ...

    def solve(self, objective: Objective, m0: np.ndarray) -> np.ndarray: ...

    def bias_blocks(self) -> list[BiasBlock]: ...


# --- fitting -----------------------------------------------------------------------
def fixed_beta_solve(
    objective: Objective,
    m0: np.ndarray,
    *,
    beta: float,
    iterations: int = 2,
    cg_tolerance: float = 1e-10,
    cg_max_iterations: int = 1000,
) -> np.ndarray:
    """Gauss-Newton at a fixed β (no cooling, no χ² stopping); exact for linear problems."""
    names = {t.name: -1.0 for t in objective.misfits}
    gn = GaussNewton(
        objective,
        beta=BetaCooling(beta, factor=1.0),
        stopping=Stopping(names, max_iterations=iterations, stagnation_tolerance=0.0),
        cg_max_iterations=cg_max_iterations,
        cg_tolerance=cg_tolerance,
    )
    return gn.run(m0).model


@dataclass
class Fit:
    """One hypothesis fitted to one set of data."""

    model: np.ndarray
    phi: dict[str, float]
    n_data: dict[str, int]

    @property
    def chi2(self) -> dict[str, float]:
        return {k: 2.0 * v / self.n_data[k] for k, v in self.phi.items()}


def fit(
    setup: Setup,
    names: tuple[str, ...],
    data: dict[str, np.ndarray],
    m0: np.ndarray | None = None,
) -> tuple[Fit, Objective]:
    """Fit the coupled objective of ``names`` to ``data`` from ``m0`` (default: the
    setup's start); φ_d without balancing weights."""
    objective = setup.objective(names)
    for t in objective.misfits:
        t.observed = np.asarray(data[t.name], dtype=float)
        t.weight = 1.0
    m = setup.solve(objective, setup.start() if m0 is None else m0)
    phi = {t.name: t.misfit(m) for t in objective.misfits}
    return Fit(m, phi, {t.name: t.n_data for t in objective.misfits}), objective


def statistic(setup: Setup, data: dict[str, np.ndarray], m0: np.ndarray | None = None) -> float:
    """T = 2 Σ_k [φ_d,k(coupled) − φ_d,k(alone)]; the coupled fit starts from ``m0``,
    each fit alone from the coupled solution."""
    names = tuple(setup.names)
    coupled, _ = fit(setup, names, data, m0)
    alone = sum(fit(setup, (k,), data, coupled.model)[0].phi[k] for k in names)
    return 2.0 * (sum(coupled.phi.values()) - alone)


# --- linear algebra at a solution ------------------------------------------------------
def _dense_hessian(objective: Objective, m: np.ndarray) -> np.ndarray:
    """A, column by column (one Hessian-vector product each), symmetrised."""
    n = len(m)
    a, e = np.empty((n, n)), np.zeros(n)
    for i in range(n):
        if i % 500 == 0:
            interrupt.check()
        e[i] = 1.0
        a[:, i] = objective.hessian_vec(m, e)
        e[i] = 0.0
    a += a.T
    a *= 0.5
    return a


def _cg_solve(
    objective: Objective, m: np.ndarray, b: np.ndarray, *, rtol: float = 1e-6, maxiter: int = 500
) -> np.ndarray:
    n = len(m)
    diag = objective.hessian_diagonal(m)
    diag = np.where(diag > 0, diag, 1.0)
    hess = LinearOperator((n, n), matvec=lambda v: objective.hessian_vec(m, v), dtype=float)
    precond = LinearOperator((n, n), matvec=lambda v: v / diag, dtype=float)
    x, _ = cg(hess, b, rtol=rtol, maxiter=maxiter, M=precond, callback=_check_interrupt)
    return x


def _check_interrupt(_x: np.ndarray) -> None:
    interrupt.check()


def hat_traces(
    objective: Objective, m: np.ndarray, *, probes: int = 20, seed: int = 0
) -> dict[str, float]:
    """tr of each modality's diagonal block of the hat matrix, tr(A⁻¹ J_kᵀW_k²J_k).

    Exact (dense) for up to :data:`DENSE_LIMIT` parameters, else Hutchinson's
    estimator with ``probes`` Rademacher vectors drawn from ``seed``. The sum
    over modalities is the effective number of parameters.
    """
    return {k: float(v.mean()) for k, v in trace_samples(objective, m, probes, seed).items()}


def trace_samples(
    objective: Objective,
    m: np.ndarray,
    probes: int = 20,
    seed: int = 0,
    solve: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The terms whose mean is :func:`hat_traces`: one exact value when dense, else
    one per Hutchinson probe ``zᵀA⁻¹J_kᵀW_k²J_k z``. The probes depend only on
    ``seed`` and the length of ``m``, so samples of two objectives of the same model
    vector are paired (their differences estimate ν with a smaller error). ``solve``
    applies A⁻¹ (default: CG to :data:`TRACE_CG_TOLERANCE`); when it comes from a
    Woodbury factorisation (:func:`hessian_solver`) the traces are exact."""
    n = len(m)
    if hasattr(solve, "traces"):  # exact, from a Woodbury factorisation
        return {k: np.array([v]) for k, v in solve.traces().items()}
    if n <= DENSE_LIMIT:
        a = _dense_hessian(objective, m)
        eye = np.eye(n)
        out = {}
        for t in objective.misfits:
            d = np.column_stack([t.hessian_vec(m, e) for e in eye])
            out[t.name] = np.array([np.trace(np.linalg.solve(a, d))])
        return out
    rng = np.random.default_rng(seed)
    out = {t.name: np.zeros(probes) for t in objective.misfits}
    for i in range(probes):
        z = rng.choice([-1.0, 1.0], size=n)
        if solve is None:
            x = _cg_solve(objective, m, z, rtol=TRACE_CG_TOLERANCE, maxiter=200)
        else:
            x = solve(z)
        for t in objective.misfits:
            out[t.name][i] = float(x @ t.hessian_vec(m, z))
    return out


def posterior_std(objective: Objective, m: np.ndarray, index: np.ndarray) -> np.ndarray:
    """sqrt(diag(A⁻¹)) at ``index``: the linearised posterior σ of those parameters."""
    return np.sqrt(_posterior_diagonals(objective, m, index)[0])


def _posterior_diagonals(
    objective: Objective, m: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(A⁻¹)_ii and A_ii at ``index`` (A the Gauss-Newton Hessian at ``m``)."""
    index = np.asarray(index, dtype=int)
    if len(index) == 0:
        return np.zeros(0), np.zeros(0)
    if len(m) <= DENSE_LIMIT:
        a = _dense_hessian(objective, m)
        return np.diag(np.linalg.inv(a))[index], np.diag(a)[index]
    inverse, direct = np.empty(len(index)), np.empty(len(index))
    solve = hessian_solver(objective, m)
    for j, i in enumerate(index):
        e = np.zeros(len(m))
        e[i] = 1.0
        inverse[j] = max(solve(e)[i], 0.0)
        direct[j] = objective.hessian_vec(m, e)[i]
    return inverse, direct


def squared_multiple_correlation(a_inverse_ii: np.ndarray, a_ii: np.ndarray) -> np.ndarray:
    """ρ²_i = 1 − 1/(A_ii·(A⁻¹)_ii): the squared multiple correlation of parameter i
    with all the others under the linearised posterior N(m, A⁻¹); 0 when the data
    resolve it independently, → 1 when other parameters can take its place."""
    product = np.asarray(a_ii) * np.asarray(a_inverse_ii)
    return np.clip(1.0 - 1.0 / np.maximum(product, 1.0), 0.0, 1.0)


class QuadraticModel:
    """The Gauss-Newton quadratic model of a fitted objective about its solution ``m``.

    :meth:`refit` minimises it for other observed data, with the Jacobians frozen
    at ``m``: one linear solve ``A δ = −g*`` (:func:`hessian_solver`), and
    returns each modality's φ_d at ``m + δ`` from its linearised residual. Exact
    for a linear problem with a quadratic regularization.
    """

    def __init__(self, objective: Objective, m: np.ndarray) -> None:
        self.objective, self.m = objective, m
        self.observed = {t.name: t.observed.copy() for t in objective.misfits}
        self.residual = {t.name: t.normalized_residual(m).copy() for t in objective.misfits}
        self.wj = {t.name: t.weighted_jacobian(m) for t in objective.misfits}
        self.std = {t.name: t.std for t in objective.misfits}
        self.gradient = objective.gradient(m)
        #: A⁻¹ b at ``m``
        self.solve = hessian_solver(objective, m)

    def refit(self, data: dict[str, np.ndarray]) -> dict[str, float]:
        """φ_d of every modality at the minimum of the model for ``data``."""
        shift = {k: (data[k] - d) / self.std[k] for k, d in self.observed.items()}
        g = self.gradient - sum(self.wj[k].rmatvec(shift[k]) for k in shift)
        delta = -self.solve(g)
        out = {}
        for k in shift:
            r = self.residual[k] + shift[k] - self.wj[k].matvec(delta)
            out[k] = 0.5 * float(r @ r)
        return out


def hessian_solver(objective: Objective, m: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """b ↦ A⁻¹b for the Gauss-Newton Hessian A at ``m``.

    Up to :data:`DENSE_LIMIT` parameters: dense Cholesky. Larger: A = B + UᵀU with
    B the sparse part (β∇²R, coupling and prior Hessians) and U the stacked
    weighted Jacobians W_kJ_k (one row per datum), solved by Woodbury's identity
    ``A⁻¹ = B⁻¹ − B⁻¹Uᵀ(I + UB⁻¹Uᵀ)⁻¹UB⁻¹`` with a sparse LU of B: a few
    seconds for the quick start (8460 parameters, 813 data). CG to
    :data:`LINEAR_CG_TOLERANCE` when a term offers no matrix or B is singular.
    """
    direct = direct_solver(objective, m)
    if direct is not None:
        return direct
    return lambda b: _cg_solve(objective, m, b, rtol=LINEAR_CG_TOLERANCE, maxiter=1000)


def direct_solver(
    objective: Objective, m: np.ndarray
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The direct solvers of :func:`hessian_solver` (dense Cholesky or Woodbury), or
    None when neither applies (a term without a matrix, a singular sparse part)."""
    if len(m) <= DENSE_LIMIT:
        factor = cho_factor(_dense_hessian(objective, m))
        return lambda b: cho_solve(factor, b)
    parts = _sparse_and_low_rank(objective, m)
    if parts is None:
        return None
    try:
        solve = _Woodbury(*parts)
    except RuntimeError as exc:  # splu: the sparse part is singular
        log.debug("conflict test: no sparse factorisation (%s), CG instead", exc)
        return None
    z = np.random.default_rng(0).standard_normal(len(m))
    error = np.linalg.norm(objective.hessian_vec(m, solve(z)) - z) / np.linalg.norm(z)
    if error < LINEAR_CG_TOLERANCE:
        return solve
    log.debug("conflict test: Woodbury solve inaccurate (%.2g), CG instead", error)
    return None


class DirectGaussNewton(GaussNewton):
    """Gauss-Newton whose steps solve the Gauss-Newton system directly
    (:func:`direct_solver`) instead of by CG to the config's loose tolerance: the
    fits of the test at a fixed β* then reach the stagnation tolerance in a few
    iterations, each a full Newton step of the quadratic model. Falls back to CG
    when no direct solver applies or a damping is active."""

    def _search_direction(self, m: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, int]:
        solve = None if self.damping else direct_solver(self.objective, m)
        if solve is None:
            return super()._search_direction(m, g)
        return solve(-g), 0

    def raise_damping(self) -> bool:
        """After a failed line search: try the step again with more Levenberg-Marquardt
        damping (β stays β*). A full Newton step of a nonlinear fit can overshoot where
        no shortening of it decreases Φ (seen on the pass with statics, whose first
        step moved the delay into the statics and raised the ERT misfit)."""
        self.damping = max(4.0 * self.damping, DAMPING_START)
        return True


def _sparse_and_low_rank(objective: Objective, m: np.ndarray) -> tuple[Any, Any, Any] | None:
    """(B, U, rows of U of each modality) of :func:`hessian_solver`, or None when a
    term offers no matrix."""
    n = len(m)
    reg = objective.regularization
    inner = getattr(reg, "inner", reg)  # bias.PaddedRegularization: zero on the biases
    if not hasattr(inner, "hessian_matrix"):
        return None
    r = sp.csr_matrix(inner.hessian_matrix())
    b = sp.csr_matrix(sp.block_diag([r, sp.csr_matrix((n - r.shape[0],) * 2)]))
    b = objective.beta * b
    for term in objective.couplings:
        if hasattr(term, "hessian_matrix"):
            b = b + term.hessian_matrix(m)
        elif hasattr(term, "precision"):  # bias.BiasPrior: diagonal
            b = b + sp.diags(term.precision)
        else:
            return None
    rows, start = [], {}
    for t in objective.misfits:
        start[t.name] = sum(r.shape[0] for r in rows)
        wj = t._weighted_jacobian(m)
        if wj is None:
            return None
        columns = sp.csr_matrix(
            (np.ones(len(wj.columns)), (np.arange(len(wj.columns)), wj.columns)),
            shape=(len(wj.columns), n),
        )
        rows.append(np.sqrt(t.weight) * (sp.csr_matrix(wj.matrix) @ columns))
    u = sp.csr_matrix(sp.vstack(rows))
    names = [t.name for t in objective.misfits]
    ends = [*[start[k] for k in names[1:]], u.shape[0]]
    return sp.csc_matrix(b), u, {k: slice(start[k], e) for k, e in zip(names, ends)}


class _Woodbury:
    """A⁻¹ = B⁻¹ − B⁻¹Uᵀ(I + UB⁻¹Uᵀ)⁻¹UB⁻¹ (see :func:`hessian_solver`); also the
    exact hat-matrix traces, since A⁻¹Uᵀ = B⁻¹Uᵀ(I + UB⁻¹Uᵀ)⁻¹."""

    def __init__(self, b: Any, u: Any, rows: dict[str, slice]) -> None:
        self.lu = splu(b)
        self.u, self.rows = u, rows
        self.bu = self.lu.solve(np.asarray(u.T.todense()))  # B⁻¹Uᵀ, (n, n_data)
        self.capacitance = cho_factor(np.eye(u.shape[0]) + u @ self.bu)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = self.lu.solve(x)
        return y - self.bu @ cho_solve(self.capacitance, self.u @ y)

    def traces(self) -> dict[str, float]:
        """tr(A⁻¹ J_kᵀW_k²J_k) = Σ (U_k ∘ (A⁻¹U_kᵀ)ᵀ) for every modality k."""
        a_inv_ut = cho_solve(self.capacitance, self.bu.T).T  # A⁻¹Uᵀ, (n, n_data)
        out = {}
        for k, rows in self.rows.items():
            u_k = self.u[rows]
            out[k] = float(u_k.multiply(a_inv_ut[:, rows].T).sum())
        return out


# --- the report --------------------------------------------------------------------
@dataclass
class BiasEstimate:
    """One bias parameter at the coupled solution (reported units).

    ``correlation`` is ρ, the multiple correlation of the parameter with all the
    others under the linearised posterior (:func:`squared_multiple_correlation`);
    above :data:`SEPARABLE_CORRELATION` the data cannot tell the bias from the
    structure (``separable`` False). ``significant``: separable and
    ``|value| / std`` above the two-sided normal quantile at α.
    """

    modality: str
    kind: str
    label: str
    value: float
    std: float
    units: str
    correlation: float = 0.0
    separable: bool = True
    significant: bool = False


@dataclass
class ModalityRow:
    """One line of the report."""

    name: str
    n_data: int
    chi2_alone: float
    chi2_joint: float
    tension: float
    dof: float
    p_value: float
    verdict: str


@dataclass
class Analysis:
    """The test on one version of the problem (plain, or augmented with biases).

    ``dof_std`` is the Monte Carlo error of ν (Hutchinson; 0 when exact);
    ``dof_reliable`` False (with ``dof_note`` saying why) when the χ²(ν) law
    cannot calibrate T (:func:`dof_check`), and then the p-value comes from a
    linearised bootstrap; ``calibration`` names where the p-value comes from:
    ``chi2``, ``bootstrap`` (refits), ``linearised bootstrap``.
    """

    augmented: bool
    alpha: float
    statistic: float
    dof: float
    p_fast: float
    p_bootstrap: float | None
    bootstrap_statistics: list[float]
    rows: list[ModalityRow]
    biases: list[BiasEstimate] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    dof_std: float = 0.0
    dof_reliable: bool = True
    dof_note: str = ""
    calibration: str = "chi2"
    attribution: str = "linearised"
    #: T with every fit carried to the minimum of its quadratic model
    #: (:meth:`_Fitted.linearised_statistic`); the linearised bootstrap tests it
    statistic_linearised: float = float("nan")

    @property
    def p_value(self) -> float:
        """The bootstrap p-value when there is one, else the fast approximation's."""
        return self.p_bootstrap if self.p_bootstrap is not None else self.p_fast

    @property
    def conflict(self) -> bool:
        return self.p_value < self.alpha

    @property
    def suspect(self) -> str | None:
        """The modality to distrust (smallest p-value of its added tension), if any."""
        if not self.conflict:
            return None
        return min(self.rows, key=lambda r: (r.p_value, -r.tension)).name

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(p_value=self.p_value, conflict=self.conflict, suspect=self.suspect)
        return out


def _p_chi2(t: float, dof: float) -> float:
    if dof <= 1e-9:
        return 1.0
    return float(stats.chi2.sf(max(t, 0.0), dof))


def dof_check(statistic: float, dof: float, dof_std: float, linearised: float) -> str:
    """Why T ~ χ²(ν) cannot calibrate ``statistic`` ("" when it can).

    - ν < :data:`MIN_DOF` (ν ≤ 0 included): the coupled model has about as many
      effective parameters as the separate ones, or more; no χ² law fits.
    - Hutchinson's error of ν above ν/3: ν is not known to be positive.
    - T < −√(2ν), one standard deviation of χ²(ν) below its lower bound 0, or
      |T − T_lin| > √(2ν), T_lin (``linearised``) being T with every fit carried to
      the minimum of its quadratic model: the optimisation error of the nonlinear
      fits exceeds the sampling spread the law assumes.
    """
    if dof < MIN_DOF:
        return f"nu = {dof:.3g} < {MIN_DOF:g}"
    if dof_std > dof / 3.0:
        return f"Hutchinson error of nu ({dof_std:.3g}) above nu/3 (nu = {dof:.3g})"
    spread = np.sqrt(2.0 * dof)
    if statistic < -spread:
        return (
            f"T = {statistic:.4g} below -sqrt(2 nu) = {-spread:.3g}: "
            "the fits' optimisation error exceeds the spread of chi2(nu)"
        )
    if abs(statistic - linearised) > spread:
        return (
            f"|T - T_lin| = {abs(statistic - linearised):.3g} above sqrt(2 nu) = {spread:.3g} "
            f"(T_lin = {linearised:.4g}, the fits carried to their quadratic models' minima): "
            "the fits' optimisation error exceeds the spread of chi2(nu)"
        )
    return ""


@dataclass
class _Fitted:
    """The fits of the observed data, and their linearisations when needed."""

    coupled: Fit
    objective: Objective
    alone: dict[str, Fit]
    alone_objectives: dict[str, Objective]
    traces_coupled: dict[str, np.ndarray]
    traces_alone: dict[str, np.ndarray]
    #: the linearisations of the coupled fit and of each fit alone (built once)
    quadratic: dict[str, QuadraticModel] = field(default_factory=dict)

    def hypothesis(self, key: str) -> tuple[Fit, Objective]:
        """The fit and objective of the coupled hypothesis (``key`` "") or of one
        modality alone."""
        if not key:
            return self.coupled, self.objective
        return self.alone[key], self.alone_objectives[key]

    def linearised(self, key: str) -> QuadraticModel:
        """The quadratic model of the coupled fit (``key`` "") or of one fit alone."""
        if key not in self.quadratic:
            f, obj = self.hypothesis(key)
            self.quadratic[key] = QuadraticModel(obj, f.model)
        return self.quadratic[key]

    @property
    def statistic(self) -> float:
        alone = sum(f.phi[k] for k, f in self.alone.items())
        return 2.0 * (sum(self.coupled.phi.values()) - alone)

    def linearised_statistic(self, data: dict[str, np.ndarray]) -> float:
        """T with every fit carried to the minimum of its quadratic model (one Newton
        step from its solution): T free of the fits' remaining optimisation error,
        computed as the linearised bootstrap computes T*."""
        coupled = sum(self.linearised("").refit(data).values())
        alone = sum(self.linearised(k).refit(data)[k] for k in self.alone)
        return 2.0 * (coupled - alone)

    def dof(self) -> tuple[float, float]:
        """ν and its Monte Carlo error (0 when the traces are exact)."""
        nu = self.dof_samples()
        return float(nu.mean()), float(nu.std(ddof=1) / np.sqrt(len(nu))) if len(nu) > 1 else 0.0

    def dof_samples(self) -> np.ndarray:
        """ν per probe (paired probes), or its one exact value."""
        alone = sum(v for v in self.traces_alone.values())
        return alone - sum(v for v in self.traces_coupled.values())


def _fit_hypotheses(
    setup: Setup, data: dict[str, np.ndarray], probes: int, seed: int
) -> _Fitted:
    names = tuple(setup.names)
    coupled, obj_c = fit(setup, names, data)
    log.info("conflict test: fits of each modality alone")
    alone, objectives = {}, {}
    for k in names:
        alone[k], objectives[k] = fit(setup, (k,), data, coupled.model)
    fitted = _Fitted(coupled, obj_c, alone, objectives, {}, {})
    log.info("conflict test: hat-matrix traces (effective numbers of parameters)")
    fitted.traces_coupled = _traces(fitted, "", probes, seed)
    fitted.traces_alone = {k: _traces(fitted, k, probes, seed)[k] for k in names}
    return fitted


def _traces(fitted: _Fitted, key: str, probes: int, seed: int) -> dict[str, np.ndarray]:
    """Trace samples of the coupled fit (``key`` "") or of one fit alone; on a
    problem too large for dense traces the probes use the solver of the
    hypothesis's quadratic model (:func:`hessian_solver`)."""
    f, obj = fitted.hypothesis(key)
    if len(f.model) <= DENSE_LIMIT:
        return trace_samples(obj, f.model, probes, seed)
    return trace_samples(obj, f.model, probes, seed, solve=fitted.linearised(key).solve)


def _without(
    setup: Setup, fitted: _Fitted, others: tuple[str, ...], data: dict[str, np.ndarray],
    mode: str, probes: int, seed: int,
) -> tuple[float, np.ndarray]:
    """T and ν samples of the test on ``others`` (the coupled fit of ``others``
    refitted from the coupled solution, or its quadratic model about it)."""
    m_c = fitted.coupled.model
    if mode == "refit":
        f, obj = fit(setup, others, data, m_c)
        phi, model, solve = f.phi, f.model, None
    else:
        sub = setup.objective(others)
        obj = Objective(
            [t for t in fitted.objective.misfits if t.name in others],
            sub.regularization,
            sub.couplings,
            beta=fitted.objective.beta,
        )
        q = QuadraticModel(obj, m_c)
        phi, model = q.refit(data), m_c
        solve = q.solve if len(m_c) > DENSE_LIMIT else None
    tr = trace_samples(obj, model, probes, seed, solve=solve)
    t = 2.0 * (sum(phi.values()) - sum(fitted.alone[n].phi[n] for n in others))
    nu = sum(fitted.traces_alone[n] for n in others) - sum(v for v in tr.values())
    return t, nu


def _rows(
    setup: Setup, fitted: _Fitted, data: dict[str, np.ndarray], mode: str | None,
    probes: int, seed: int,
) -> list[ModalityRow]:
    names = tuple(setup.names)
    t_all, dof = fitted.statistic, fitted.dof()[0]
    if mode and len(names) > 2:
        log.info("conflict test: attribution (the test without each modality, %s)", mode)
    rows = []
    for k in names:
        others = tuple(n for n in names if n != k)
        t_o, dof_o = 0.0, 0.0
        if mode and len(others) >= 2:
            t_o, nu_o = _without(setup, fitted, others, data, mode, probes, seed)
            dof_o = float(np.mean(nu_o))
        tension, dof_k = t_all - t_o, dof - dof_o
        c, a = fitted.coupled, fitted.alone[k]
        rows.append(
            ModalityRow(
                k, c.n_data[k], a.chi2[k], c.chi2[k], tension, dof_k, _p_chi2(tension, dof_k), ""
            )
        )
    return rows


def _attribution_mode(attribution: bool | str | None) -> str | None:
    if attribution is True:
        return "linearised"
    if not attribution:
        return None
    if attribution not in ("linearised", "refit"):
        raise UserInputError(
            f"attribution must be 'linearised' or 'refit', got {attribution!r}"
        )
    return attribution


def analyze(
    setup: Setup,
    *,
    alpha: float = 0.05,
    bootstrap: int = 0,
    workers: int = 1,
    seed: int = 0,
    probes: int = 20,
    data: dict[str, np.ndarray] | None = None,
    attribution: bool | str = "linearised",
    bootstrap_mode: str = "refit",
    fallback_replicates: int = 0,
) -> Analysis:
    """Run the test on ``setup`` (observed data: those of its objectives, or ``data``).

    Parameters
    ----------
    alpha : float
        Significance level, in (0, 1).
    bootstrap : int
        Parametric-bootstrap replicates (0: fast approximation only).
    workers : int
        Processes for the bootstrap refits (1: serial, in this process).
    seed : int
        Seed of the bootstrap noise and of Hutchinson's probes.
    probes : int
        Hutchinson probes when the problem is too large for dense traces.
    attribution : 'linearised', 'refit' or False
        Each modality's added tension from the test without it: its coupled fit
        as the quadratic model about the coupled solution (one linear solve), or
        refitted (one more nonlinear fit per modality); False: none.
    bootstrap_mode : 'refit' or 'linearised'
        Replicates refitted (the reference), or each hypothesis's quadratic model
        about its solution minimised for the replicate's data (Jacobians frozen).
    fallback_replicates : int
        Replicates of the linearised bootstrap that gives the p-value when
        ``bootstrap`` is 0 and the χ² law cannot be used (:func:`dof_check`).
    """
    check_options(alpha=alpha, bootstrap=bootstrap, workers=workers)
    mode = _attribution_mode(attribution)
    check_bootstrap_mode(bootstrap_mode)
    names = tuple(setup.names)
    if len(names) < 2:
        raise UserInputError("the conflict test needs at least two modalities")
    t0 = time.perf_counter()
    if data is None:
        data = {t.name: t.observed.copy() for t in setup.objective(names).misfits}
    fitted = _fit_hypotheses(setup, data, probes, seed)
    t_all, (dof, dof_std) = fitted.statistic, fitted.dof()
    t_lin = fitted.linearised_statistic(data)
    biases = estimate_biases(
        setup.bias_blocks(), fitted.objective, fitted.coupled.model, alpha=alpha
    )
    t1 = time.perf_counter()
    rows = _rows(setup, fitted, data, mode, probes, seed)
    t2 = time.perf_counter()
    note = dof_check(t_all, dof, dof_std, t_lin)
    if note:
        log.warning("conflict test: the chi2(nu) approximation is unreliable here: %s", note)
    if not bootstrap and note and fallback_replicates:
        log.warning(
            "conflict test: p-value from a linearised bootstrap of %d replicates instead",
            fallback_replicates,
        )
        bootstrap, bootstrap_mode, workers = fallback_replicates, "linearised", 1
    calibration, replicates = "chi2", []
    if bootstrap:
        calibration = "bootstrap" if bootstrap_mode == "refit" else "linearised bootstrap"
        replicates = _bootstrap(setup, fitted, bootstrap, bootstrap_mode, seed, workers)
    p_boot = None
    if replicates:  # the linearised T* against T computed as they are: T_lin
        observed = t_all if calibration == "bootstrap" else t_lin
        p_boot = (1 + int(np.sum(np.asarray(replicates) >= observed))) / (len(replicates) + 1)
    seconds = {
        "fits_and_fast": t1 - t0,
        "attribution": t2 - t1,
        "bootstrap": time.perf_counter() - t2,
    }
    augmented = bool(setup.bias_blocks())
    p_fast = _p_chi2(t_all, dof)
    overall = (p_fast if p_boot is None else p_boot) < alpha
    for r in rows:  # a modality is in conflict only when the test as a whole finds one
        r.verdict = "conflict" if overall and r.p_value < alpha else "consistent"
    return Analysis(
        augmented, alpha, t_all, dof, p_fast, p_boot, replicates, rows, biases, seconds,
        dof_std=dof_std, dof_reliable=not note, dof_note=note, calibration=calibration,
        attribution=mode or "none", statistic_linearised=t_lin,
    )


def _bootstrap(
    setup: Setup, fitted: _Fitted, n: int, mode: str, seed: int, workers: int
) -> list[float]:
    obj_c, m_c = fitted.objective, fitted.coupled.model
    log.info("conflict test: %d bootstrap replicates (%s)", n, mode)
    predicted = {t.name: t.predicted(m_c).copy() for t in obj_c.misfits}
    std = {t.name: t.std.copy() for t in obj_c.misfits}
    if mode == "linearised":
        return linearised_bootstrap(fitted, predicted, std, n=n, seed=seed)
    log.info("conflict test: refits on %d worker(s)", workers)
    return bootstrap_statistics(setup, predicted, std, n=n, seed=seed, workers=workers, m0=m_c)


def linearised_bootstrap(
    fitted: _Fitted,
    predicted: dict[str, np.ndarray],
    std: dict[str, np.ndarray],
    *,
    n: int,
    seed: int = 0,
) -> list[float]:
    """T* of ``n`` replicates with every hypothesis linearised about its solution
    for the observed data (:class:`QuadraticModel`): 1 + K linear solves each,
    same noise as :func:`bootstrap_statistics` (replicate ``i`` from
    ``SeedSequence(seed).spawn(n)[i]``, drawn in the order of the modalities)."""
    coupled = fitted.linearised("")
    alone = {k: fitted.linearised(k) for k in fitted.alone}
    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        for s in np.random.SeedSequence(seed).spawn(n):
            interrupt.check()
            data = _replicate_data(s, predicted, std, list(alone))
            phi_alone = sum(q.refit(data)[k] for k, q in alone.items())
            out.append(2.0 * (sum(coupled.refit(data).values()) - phi_alone))
    return out


def estimate_biases(
    blocks: list[BiasBlock], objective: Objective, m: np.ndarray, *, alpha: float = 0.05
) -> list[BiasEstimate]:
    """Every bias parameter of ``blocks`` at ``m`` with its linearised posterior σ
    and its correlation with the other parameters (reported units); used by the
    conflict test and by ``jointinv run``."""
    if not blocks:
        return []
    index = np.concatenate([np.arange(b.start, b.start + b.size) for b in blocks])
    var, a_ii = _posterior_diagonals(objective, m, index)
    rho = np.sqrt(squared_multiple_correlation(var, a_ii))
    z_crit = stats.norm.isf(alpha / 2.0)
    out, j = [], 0
    for b in blocks:
        for i, label in enumerate(b.labels):
            value, std = b.scale * m[b.start + i], b.scale * np.sqrt(var[j])
            separable = bool(rho[j] <= SEPARABLE_CORRELATION)
            significant = separable and abs(value) > z_crit * std
            out.append(
                BiasEstimate(
                    b.modality, b.kind, label, value, std, b.units,
                    float(rho[j]), separable, bool(significant),
                )
            )
            j += 1
    return out


def check_bootstrap_mode(mode: str) -> None:
    """Refuse a bootstrap mode other than 'refit' or 'linearised'."""
    if mode not in ("refit", "linearised"):
        raise UserInputError(f"bootstrap_mode must be 'refit' or 'linearised', got {mode!r}")


def check_options(*, alpha: float, bootstrap: int, workers: int) -> None:
    """Refuse α outside (0, 1), a negative number of replicates or < 1 worker."""
    if not 0.0 < alpha < 1.0:
        raise UserInputError(f"alpha must lie in (0, 1), got {alpha:g}")
    if bootstrap < 0:
        raise UserInputError(f"the number of bootstrap replicates must be >= 1, got {bootstrap}")
    if workers < 1:
        raise UserInputError(f"workers must be >= 1, got {workers}")


# --- the bootstrap ---------------------------------------------------------------------
def _replicate_data(
    seed: np.random.SeedSequence,
    predicted: dict[str, np.ndarray],
    std: dict[str, np.ndarray],
    names: list[str],
) -> dict[str, np.ndarray]:
    """One replicate's data, ``predicted + σ·ε``, the noise drawn from ``seed`` in the
    order of ``names``: the refit and the linearised bootstraps draw the same noise."""
    rng = np.random.default_rng(seed)
    return {k: predicted[k] + std[k] * rng.standard_normal(len(predicted[k])) for k in names}


def _replicates(
    setup: Setup,
    predicted: dict[str, np.ndarray],
    std: dict[str, np.ndarray],
    seeds: list[np.random.SeedSequence],
    m0: np.ndarray | None = None,
) -> list[float]:
    """T of each replicate (one per seed): noise drawn in the order of ``setup.names``."""
    out = []
    flag = hasattr(setup, "replicate")  # ConfigSetup: the iteration cap of replicate fits
    if flag:
        setup.replicate = True
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            for s in seeds:
                interrupt.check()
                data = _replicate_data(s, predicted, std, setup.names)
                out.append(statistic(setup, data, m0))
    finally:
        if flag:
            setup.replicate = False
    return out


def bootstrap_statistics(
    setup: Setup,
    predicted: dict[str, np.ndarray],
    std: dict[str, np.ndarray],
    *,
    n: int,
    seed: int = 0,
    workers: int = 1,
    m0: np.ndarray | None = None,
) -> list[float]:
    """T of ``n`` data sets simulated from ``predicted`` with noise σ = ``std``.

    Warm start: each coupled fit starts from ``m0`` (the coupled solution of
    the observed data, default the setup's start), next to its optimum since
    the data are simulated from it; each fit alone starts from the coupled fit
    of the same replicate, exactly as for the observed statistic. All fits are
    at the same β* as the observed ones.

    Replicate ``i`` uses ``SeedSequence(seed).spawn(n)[i]``; with ``workers > 1``
    the replicates are split into ``workers`` contiguous chunks run in a process
    pool (one pickled copy of ``setup`` per chunk, so a :class:`ConfigSetup`
    builds its problems, engines included, once per worker and only swaps the
    observed data between replicates), and the result is the same list as
    serially.
    """
    seeds = np.random.SeedSequence(seed).spawn(n)
    if workers <= 1 or n == 1:
        return _replicates(setup, predicted, std, seeds, m0)
    chunks = [list(c) for c in np.array_split(np.arange(n), min(workers, n))]
    with ProcessPoolExecutor(max_workers=len(chunks)) as pool:
        futures = [
            pool.submit(_replicates, setup, predicted, std, [seeds[i] for i in c], m0)
            for c in chunks
        ]
        interrupt.wait_for(futures, pool)
        return [t for f in futures for t in f.result()]


# --- a config as a setup ------------------------------------------------------------------
class ConfigSetup:
    """A config's problem as seen by the test.

    Both hypotheses are minimised at the same β, so they share the
    regularization: the first fit of the full coupled objective follows
    ``jointinv run`` (β estimate and cooling, χ² targets, balancing) and fixes
    β* (its last β); it is then continued at β* without balancing weights, and
    every other fit (alone, leave-one-out, bootstrap replicates) minimises its
    objective at β*, starting from the coupled solution (a fit alone from the
    coupled fit of the same data), by :class:`DirectGaussNewton`. Each fixed-β
    fit stops on the config's stagnation tolerance or ``max_iterations``, the fits of bootstrap
    replicates (``replicate`` set) included, unless :data:`REPLICATE_MAX_ITERATIONS`
    sets a lower cap for them. A fit stopped by the cap is logged as a warning
    and every fit is recorded in :attr:`fits`. With ``augmented=True`` the
    biases of ``conflict.biases`` join the model vector.
    """

    def __init__(self, loaded: Any, *, augmented: bool = False) -> None:
        self.loaded = loaded
        self.augmented = augmented
        self.names = list(loaded.config.modalities)
        self.beta: float | None = None
        #: the automatic coupling weights at β* (set by the first coupled fit)
        self.coupling_weights: dict[str, float] = {}
        #: set while fitting bootstrap replicates (:data:`REPLICATE_MAX_ITERATIONS`)
        self.replicate = False
        #: (modalities, iterations, stop message, capped) of every fixed-β fit
        self.fits: list[tuple[str, int, str, bool]] = []
        self._cache: dict[tuple[str, ...], tuple[Any, Objective]] = {}
        self._blocks: list[BiasBlock] | None = None
        #: the coupled solution of the observed data (set by the first coupled fit)
        self.coupled_model: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        keep = ("loaded", "augmented", "names", "beta", "coupling_weights")
        return {k: self.__dict__[k] for k in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._cache, self._blocks = {}, None
        self.replicate, self.fits = False, []
        self.coupled_model = None

    def _problem(self, names: tuple[str, ...]) -> tuple[Any, Objective]:
        from .problem import build_problem

        key = tuple(n for n in self.names if n in names)
        if key not in self._cache:
            problem = build_problem(self.loaded, only=list(key), biases=False)
            objective = problem.objective
            for term in problem.auto_couplings:  # γ* of the first coupled fit
                term.weight = self.coupling_weights.get(term.name, term.weight)
            if self.bias_blocks():
                objective = augment(objective, self.bias_blocks(), len(problem.m_start))
            self._cache[key] = (problem, objective)
        return self._cache[key]

    def declared_biases(self) -> dict[str, list[str]]:
        """The modalities' own ``biases`` (both passes), and ``conflict.biases`` too
        in the augmented pass."""
        config = self.loaded.config
        out = {n: list(m.biases) for n, m in config.modalities.items() if m.biases}
        if self.augmented:
            for name, kinds in config.conflict.biases.items():
                have = out.setdefault(name, [])
                have += [k for k in kinds if k not in have]
        return out

    def bias_blocks(self) -> list[BiasBlock]:
        if self._blocks is None:
            declared = self.declared_biases()
            datasets = {}
            if declared:
                from .problem import load_datasets

                datasets = load_datasets(self.loaded)
            self._blocks = declared_blocks(declared, datasets)
        return self._blocks

    def objective(self, names: tuple[str, ...]) -> Objective:
        return self._problem(names)[1]

    def start(self) -> np.ndarray:
        problem, objective = self._problem(tuple(self.names))
        m0 = np.zeros(_n_params(objective, problem.m_start))
        n = len(problem.m_start)
        m0[:n] = problem.m_start
        return m0

    def solve(self, objective: Objective, m0: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="blas"):
            first = self.coupled_model is None and len(objective.misfits) == len(self.names)
            if self.beta is None and first:
                m0 = self._run_schedule(objective, m0)
                self.beta = float(objective.beta)
                log.info("conflict test: beta* = %.3g", self.beta)
            if self.beta is None:
                raise RuntimeError("fit the coupled objective first: it fixes beta*")
            model = self._fixed_beta(objective, m0)
            if first and not self.replicate:
                self.coupled_model = model
            return model

    def _gauss_newton(self, objective: Objective, beta: Any, **extra: Any) -> GaussNewton:
        settings = self.loaded.config.inversion
        gn = DirectGaussNewton(
            objective,
            beta=beta,
            clocks=self._problem(tuple(self.names))[0].clocks,
            cg_max_iterations=settings.cg.max_iterations,
            cg_tolerance=settings.cg.tolerance,
            max_halvings=settings.max_line_search_halvings,
            adaptive_damping=settings.adaptive_damping,
            **extra,
        )
        gn.retreat = gn.raise_damping
        return gn

    def _fixed_beta(self, objective: Objective, m0: np.ndarray) -> np.ndarray:
        settings = self.loaded.config.inversion
        for t in objective.misfits:
            t.weight = 1.0
        never = {t.name: -1.0 for t in objective.misfits}
        cap = settings.max_iterations
        if self.replicate and REPLICATE_MAX_ITERATIONS is not None:
            cap = min(cap, REPLICATE_MAX_ITERATIONS)
        gn = self._gauss_newton(
            objective,
            BetaCooling(self.beta, factor=1.0),
            stopping=Stopping(
                never, max_iterations=cap, stagnation_tolerance=settings.stagnation_tolerance
            ),
        )
        t0 = time.perf_counter()
        names = "+".join(t.name for t in objective.misfits)
        result = self._run_logged(gn, m0, f"fit of {names} at beta*")
        capped = result.nit >= cap and "maximum" in gn.message
        self.fits.append((names, result.nit, gn.message, capped))
        log.info(
            "conflict test: %sfit of %s at beta*: %d iterations in %.1f s (%s)",
            "replicate " if self.replicate else "",
            names,
            result.nit,
            time.perf_counter() - t0,
            gn.message,
        )
        if capped:
            log.warning(
                "conflict test: a %sfit of %s stopped at the cap of %d iterations "
                "before stagnating; its misfit, hence %s, is approximate",
                "replicate " if self.replicate else "",
                names,
                cap,
                "T*" if self.replicate else "T",
            )
        return result.model

    def _run_schedule(self, objective: Objective, m0: np.ndarray) -> np.ndarray:
        """The first coupled fit, as ``jointinv run`` does it; fixes β* and the
        automatic coupling weights γ* for every later fit."""
        from .schedule import build_minimizer

        settings = self.loaded.config.inversion
        problem = self._problem(tuple(self.names))[0]
        gn, _ = build_minimizer(
            objective,
            m0,
            settings,
            rng=np.random.default_rng(settings.seed),
            clocks=problem.clocks,
            auto_couplings=problem.auto_couplings,
            regularization_weights=problem.regularization_weights,
        )
        names = "+".join(t.name for t in objective.misfits)
        model = self._run_logged(gn, m0, f"coupled fit of {names} (fixes beta*)").model
        self.coupling_weights = {t.name: t.weight for t in problem.auto_couplings}
        return model

    def _run_logged(self, gn: GaussNewton, m0: np.ndarray, what: str) -> Any:
        """``gn.run(m0)`` with one progress line per iteration: which hypothesis,
        the iteration and every χ² (the fits of replicates in the debug log only)."""
        level = logging.DEBUG if self.replicate else logging.INFO
        label = ("with biases: " if self.augmented else "") + what

        def progress(record: Any) -> None:
            chi2 = ", ".join(f"{k} {v:.3g}" for k, v in record.chi2.items())
            log.log(
                level, "conflict test: %s: iteration %d, chi2 %s", label, record.iteration, chi2
            )

        return gn.run(m0, on_iteration=progress)


def _n_params(objective: Objective, m_model: np.ndarray) -> int:
    reg = objective.regularization
    return getattr(reg, "n_params", len(m_model))


# --- the command ---------------------------------------------------------------------
@dataclass
class ConflictReport:
    """The test on a config: plain, and again with its biases when it declares some."""

    config: str
    plain: Analysis
    augmented: Analysis | None = None
    #: False for the report written after the plain pass while the pass with the
    #: declared biases is still to come (what an interrupted test leaves)
    complete: bool = True

    @property
    def final(self) -> Analysis:
        """The analysis the verdict rests on (the augmented one when there is one)."""
        return self.augmented if self.augmented is not None else self.plain

    @property
    def conflict(self) -> bool:
        return self.final.conflict

    @property
    def exit_code(self) -> int:
        """0 when consistent at α, :data:`EXIT_CONFLICT` (3) when a conflict is found."""
        return EXIT_CONFLICT if self.conflict else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "complete": self.complete,
            "conflict": self.conflict,
            "exit_code": self.exit_code,
            "plain": self.plain.to_dict(),
            "augmented": None if self.augmented is None else self.augmented.to_dict(),
        }

    def write_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically)."""
        from .outputs import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), indent=2, default=float) + "\n")

    def write_hdf5(self, path: str | Path) -> Path:
        """``/`` attrs (config, conflict, exit_code) and one group per analysis:
        attrs of the statistic, ``bootstrap_statistics``, ``modalities/<name>``
        attrs and a ``biases`` group of columns (written atomically)."""
        from .results import write_atomic

        def fill(f: Any) -> None:
            f.attrs.update(
                config=self.config,
                complete=self.complete,
                conflict=self.conflict,
                exit_code=self.exit_code,
            )
            for key, a in (("plain", self.plain), ("augmented", self.augmented)):
                if a is not None:
                    _fill_analysis(f.create_group(key), a)

        path = Path(path)
        write_atomic(path, fill)
        return path


def _fill_analysis(g: Any, a: Analysis) -> None:
    import h5py

    g.attrs.update(
        augmented=a.augmented,
        alpha=a.alpha,
        statistic=a.statistic,
        dof=a.dof,
        p_fast=a.p_fast,
        p_bootstrap=np.nan if a.p_bootstrap is None else a.p_bootstrap,
        p_value=a.p_value,
        conflict=a.conflict,
        suspect=a.suspect or "",
        dof_std=a.dof_std,
        statistic_linearised=a.statistic_linearised,
        dof_reliable=a.dof_reliable,
        dof_note=a.dof_note,
        calibration=a.calibration,
        attribution=a.attribution,
    )
    g.create_dataset("bootstrap_statistics", data=np.asarray(a.bootstrap_statistics, float))
    for row in a.rows:
        g.create_group(f"modalities/{row.name}").attrs.update(asdict(row))
    b = g.create_group("biases")
    for col in ("modality", "kind", "label", "units"):
        b.create_dataset(col, data=[getattr(x, col) for x in a.biases], dtype=h5py.string_dtype())
    for col in ("value", "std", "correlation"):
        b.create_dataset(col, data=np.asarray([getattr(x, col) for x in a.biases], float))
    for col in ("separable", "significant"):
        b.create_dataset(col, data=np.asarray([getattr(x, col) for x in a.biases], bool))


def conflict_test(
    config: Any,
    *,
    alpha: float | None = None,
    bootstrap: int | None = None,
    workers: int | None = None,
    seed: int | None = None,
    on_partial: Callable[[ConflictReport], None] | None = None,
) -> ConflictReport:
    """Run the conflict test of a config (see the module docstring).

    Options left as None come from the config's ``conflict`` section. When
    the config declares biases, the test is run a second time with them; then
    ``on_partial`` is called with the report of the plain pass (``complete``
    False) before that second pass starts, so it can be written and survive an
    interruption.

    Raises
    ------
    UserInputError
        α outside (0, 1), ``bootstrap`` < 1 or ``workers`` < 1 given
        explicitly, fewer than two modalities, or a bad config.
    """
    from .config import as_loaded

    loaded = as_loaded(config)
    c = loaded.config.conflict
    if bootstrap is not None and bootstrap < 1:
        raise UserInputError(f"the number of bootstrap replicates must be >= 1, got {bootstrap}")
    options = {
        "alpha": c.alpha if alpha is None else alpha,
        "bootstrap": c.bootstrap if bootstrap is None else bootstrap,
        "workers": c.workers if workers is None else workers,
        "seed": c.seed if seed is None else seed,
        "probes": c.probes,
        "attribution": c.attribution,
        "bootstrap_mode": c.bootstrap_mode,
        "fallback_replicates": c.fallback_replicates,
    }
    check_options(**{k: options[k] for k in ("alpha", "bootstrap", "workers")})
    if len(loaded.config.modalities) < 2:
        raise UserInputError(f"{loaded.name}: the conflict test needs at least two modalities")
    with_biases = ConfigSetup(loaded, augmented=True)
    if c.biases:
        with_biases.bias_blocks()  # a bias the data cannot carry fails now, not after the fits
    log.info("conflict test: coupled and uncoupled fits")
    as_given = ConfigSetup(loaded)
    plain = analyze(as_given, **options)
    augmented = None
    if c.biases:
        if on_partial is not None:
            on_partial(ConflictReport(str(loaded.path), plain, None, complete=False))
        log.info("conflict test: again with the biases %s", dict(c.biases))
        augmented = analyze(with_biases, **options)
    return ConflictReport(str(loaded.path), plain, augmented)


def report_tables(report: ConflictReport) -> list[Any]:
    """rich Tables of the report: one per analysis. Names come from the config and
    are printed literally (:class:`rich.text.Text`: no markup, no emoji codes)."""
    from rich.table import Table
    from rich.text import Text

    tables = []
    for a in (report.plain, report.augmented):
        if a is None:
            continue
        title = "with biases" if a.augmented else "as given"
        boot = "—" if a.p_bootstrap is None else f"{a.p_bootstrap:.3g}"
        verdict = f"CONFLICT (suspect: {a.suspect})" if a.conflict else "consistent"
        kind = "linearised " if a.calibration == "linearised bootstrap" else ""
        caution = "" if a.dof_reliable else f" (χ² law unreliable: {a.dof_note})"
        t = Table(
            title=f"Conflict test, data {title}",
            caption=Text(
                f"T = {a.statistic:.4g}, ν = {a.dof:.3g}, p(χ²) = {a.p_fast:.3g}{caution}, "
                f"p({kind}bootstrap, N={len(a.bootstrap_statistics)}) = {boot}, "
                f"α = {a.alpha:g}: {verdict}"
            ),
        )
        for col in ("modality", "χ² alone", "χ² joint", "tension (ν)", "p-value"):
            t.add_column(col, justify="left" if col == "modality" else "right")
        t.add_column("biases ± σ", overflow="fold")
        t.add_column("verdict")
        for r in a.rows:
            biases = "\n".join(_bias_line(b) for b in a.biases if b.modality == r.name)
            t.add_row(
                Text(r.name),
                f"{r.chi2_alone:.3f}",
                f"{r.chi2_joint:.3f}",
                f"{r.tension:.3g} ({r.dof:.3g})",
                f"{r.p_value:.3g}",
                Text(biases or "—"),
                Text(r.verdict),
            )
        tables.append(t)
    return tables


def _bias_line(b: BiasEstimate) -> str:
    """``kind label value ± σ units``, then ``significant`` or the correlation ρ with
    the model when the data cannot separate them."""
    name = f"{b.kind} {b.label if b.label != b.kind else ''}".strip()
    line = f"{name} {b.value:.4g} ± {b.std:.2g} {b.units}"
    if not b.separable:
        return line + f" (ρ = {b.correlation:.2f}: not separable from the model)"
    return line + (" (significant)" if b.significant else "")
