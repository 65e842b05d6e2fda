"""Gauss-Newton minimisation of the joint objective.

The minimiser is an iterator: :meth:`GaussNewton.iterate` yields one
:class:`IterationRecord` per step (iteration 0 is the starting model), so the
caller logs, checkpoints or stops as it likes. The β schedule and the stopping
rule are small explicit objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg

from . import interrupt
from .objective import Objective
from .operators import EngineClock

ARMIJO_C = 1e-4
#: times a failed line search may raise β and try again, per iteration
MAX_RETREATS = 2
#: first Levenberg-Marquardt damping after a poor step (fraction of diag(H))
DAMPING_START = 0.1


@dataclass
class IterationRecord:
    """What happened in one Gauss-Newton iteration.

    Attributes
    ----------
    iteration : int
        0 for the starting model.
    beta : float
        Regularization weight used for this step.
    terms : dict
        Value of every objective term by name (regularization without β).
    chi2 : dict
        χ² = 2φ_d/N per modality.
    phi : float
        Total objective at this β.
    step_length : float
        Accepted line-search step (0 for iteration 0).
    cg_iterations : int
    seconds : dict
        Wall time split into ``forward``, ``jacobian`` (engine calls),
        ``linear_algebra`` (gradient, CG) and ``other``.
    relative_decrease : float or None
        (Φ before − Φ after) / Φ before, at this iteration's β.
    weights : dict
        Balancing weight of every misfit term used in this iteration.
    damping : float
        Levenberg-Marquardt damping for the next step (after this step's gain).
    """

    iteration: int
    beta: float
    terms: dict[str, float]
    chi2: dict[str, float]
    phi: float
    step_length: float = 0.0
    cg_iterations: int = 0
    relative_decrease: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    damping: float = 0.0


class BetaCooling:
    """β_k = max(β0 / factor^(k−1), minimum) for iteration k ≥ 1."""

    def __init__(self, beta0: float, *, factor: float = 2.0, minimum: float = 0.0) -> None:
        self.beta0 = beta0
        self.factor = factor
        self.minimum = minimum

    def __call__(self, model: np.ndarray, iteration: int) -> float:
        return max(self.beta0 / self.factor ** max(iteration - 1, 0), self.minimum)


class Stopping:
    """Stop when every modality reaches its χ² target, at the iteration limit, or on stagnation.

    Parameters
    ----------
    chi2_targets : dict
        Target χ² by modality name.
    max_iterations : int
    stagnation_tolerance : float
        Stop when Φ decreased by less than this fraction in the last step.
    """

    def __init__(
        self, chi2_targets: dict[str, float], *, max_iterations: int, stagnation_tolerance: float
    ) -> None:
        self.chi2_targets = chi2_targets
        self.max_iterations = max_iterations
        self.stagnation_tolerance = stagnation_tolerance

    def targets_reached(self, chi2: dict[str, float]) -> bool:
        return all(chi2[k] <= t for k, t in self.chi2_targets.items())

    def success(self, chi2: dict[str, float]) -> bool:
        """Whether a run that ends with these χ² succeeded."""
        return self.targets_reached(chi2)

    def reached_message(self) -> str:
        return "every modality reached its χ² target"

    def __call__(self, record: IterationRecord, relative_decrease: float | None) -> str | None:
        if self.targets_reached(record.chi2):
            return self.reached_message()
        if record.iteration >= self.max_iterations:
            return f"maximum number of iterations ({self.max_iterations}) reached"
        if relative_decrease is not None and relative_decrease < self.stagnation_tolerance:
            tol = self.stagnation_tolerance
            return f"stagnation: Φ decreased by {relative_decrease:.2e} (< {tol:g})"
        return None


@dataclass
class InversionResult:
    """Outcome of a run, in the spirit of ``scipy.optimize.OptimizeResult``."""

    model: np.ndarray
    iterations: list[IterationRecord]
    message: str
    success: bool

    @property
    def nit(self) -> int:
        return len(self.iterations) - 1


class GaussNewton:
    """Gauss-Newton with CG on the normal equations and backtracking line search.

    Parameters
    ----------
    objective : Objective
    beta : callable (model, iteration) -> float
    stopping : Stopping
    clocks : sequence of EngineClock
        The engines' clocks, to split wall time per iteration.
    balance : callable (record) -> None, optional
        Called after every iteration to update the misfit weights (and β).
    retreat : callable () -> bool, optional
        Called when the line search fails: it raises β and returns True to try
        the step again (at most :data:`MAX_RETREATS` times per iteration).
    cg_max_iterations, cg_tolerance : int, float
    max_halvings : int
        Line-search halvings before giving up.
    """

    def __init__(
        self,
        objective: Objective,
        *,
        beta: Callable[[np.ndarray, int], float],
        stopping: Stopping,
        clocks: Sequence[EngineClock] = (),
        balance: Callable[[IterationRecord], None] | None = None,
        retreat: Callable[[], bool] | None = None,
        adaptive_damping: bool = False,
        cg_max_iterations: int = 50,
        cg_tolerance: float = 1e-2,
        max_halvings: int = 8,
    ) -> None:
        self.objective = objective
        self.beta = beta
        self.stopping = stopping
        self.clocks = list(clocks)
        self.balance = balance
        self.retreat = retreat
        #: Levenberg-Marquardt damping λ (adds λ·diag(H) to the GN Hessian); adapted
        #: from the gain ratio of every step when ``adaptive_damping`` is on
        self.damping = 0.0
        self.adaptive_damping = adaptive_damping
        self.cg_max_iterations = cg_max_iterations
        self.cg_tolerance = cg_tolerance
        self.max_halvings = max_halvings
        self.message = ""

    # --- bookkeeping ---------------------------------------------------------
    def _engine_seconds(self) -> dict[str, float]:
        out = {"forward": 0.0, "jacobian": 0.0}
        for c in self.clocks:
            for k in out:
                out[k] += c.seconds.get(k, 0.0)
        return out

    def _record(self, m: np.ndarray, iteration: int, **extra) -> IterationRecord:
        terms = self.objective.terms(m)
        chi2 = {t.name: t.chi2(m) for t in self.objective.misfits}
        return IterationRecord(
            iteration=iteration,
            beta=self.objective.beta,
            terms=terms,
            chi2=chi2,
            phi=self.objective.total(terms),
            weights={t.name: t.weight for t in self.objective.misfits},
            **extra,
        )

    # --- one step --------------------------------------------------------------
    def _search_direction(self, m: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, int]:
        n = len(m)
        obj = self.objective
        diag = obj.hessian_diagonal(m)
        diag = np.where(diag > 0, diag, 1.0)
        lm = self.damping

        def matvec(v: np.ndarray) -> np.ndarray:
            return obj.hessian_vec(m, v) + lm * diag * v

        hess = LinearOperator((n, n), matvec=matvec, dtype=float)
        precond_diag = diag * (1.0 + lm)
        precond = LinearOperator((n, n), matvec=lambda v: v / precond_diag, dtype=float)
        count = [0]

        def _count(_xk: np.ndarray) -> None:
            count[0] += 1
            interrupt.check()

        step, _ = cg(
            hess,
            -g,
            rtol=self.cg_tolerance,
            maxiter=self.cg_max_iterations,
            M=precond,
            callback=_count,
        )
        return step, count[0]

    def _line_search(
        self, m: np.ndarray, step: np.ndarray, phi0: float, slope: float
    ) -> tuple[np.ndarray, float] | None:
        alpha = 1.0
        for _ in range(self.max_halvings + 1):
            interrupt.check()
            trial = m + alpha * step
            phi = self.objective.value(trial)
            if np.isfinite(phi) and phi <= phi0 + ARMIJO_C * alpha * slope:
                return trial, alpha
            alpha *= 0.5
        return None

    # --- the iteration ----------------------------------------------------------
    def iterate(
        self,
        m0: np.ndarray,
        *,
        start_iteration: int = 0,
        resumed: IterationRecord | None = None,
    ) -> Iterator[IterationRecord]:
        """Yield the record of the starting model, then one per iteration.

        After the loop ends, :attr:`message` says why, and :attr:`model` holds
        the final model.

        To continue a run from a checkpoint, pass the model after iteration
        ``start_iteration`` as ``m0`` and that iteration's stored record as
        ``resumed`` (with the misfit weights it used already restored): the
        stopping rule and the balancing then act on it exactly as in the
        uninterrupted run, and the run goes on with iteration ``start_iteration + 1``.
        """
        m = np.array(m0, dtype=float)
        self.model = m
        self.objective.beta = self.beta(m, max(start_iteration, 1))
        record = self._record(m, start_iteration)
        yield record
        if resumed is not None and start_iteration > 0:
            reason = self.stopping(resumed, resumed.relative_decrease)
            if reason:
                self.message = reason
                return
            if self.balance is not None:
                self.balance(resumed)
        if start_iteration == 0 and self.stopping.targets_reached(record.chi2):
            self.message = self.stopping.reached_message()
            return
        iteration = start_iteration
        while True:
            iteration += 1
            if iteration > self.stopping.max_iterations:
                self.message = (
                    f"maximum number of iterations ({self.stopping.max_iterations}) reached"
                )
                return
            record, m = self._step(m, iteration)
            for _ in range(MAX_RETREATS if self.retreat is not None else 0):
                if record is not None or not self.retreat():
                    break
                record, m = self._step(m, iteration)
            if record is None:
                self.message = "line search failed: no decrease of Φ along the Gauss-Newton step"
                return
            self.model = m
            yield record
            reason = self.stopping(record, record.relative_decrease)
            if self.balance is not None and not reason:
                self.balance(record)
            if reason:
                self.message = reason
                return

    def _step(self, m: np.ndarray, iteration: int) -> tuple[IterationRecord | None, np.ndarray]:
        interrupt.check()
        t0 = time.perf_counter()
        e0 = self._engine_seconds()
        self.objective.beta = self.beta(m, iteration)
        phi0 = self.objective.value(m)
        t_lin0 = time.perf_counter()
        e_lin0 = self._engine_seconds()
        g = self.objective.gradient(m)
        step, n_cg = self._search_direction(m, g)
        e_lin1 = self._engine_seconds()
        linalg = time.perf_counter() - t_lin0 - sum(e_lin1[k] - e_lin0[k] for k in e_lin1)
        found = self._line_search(m, step, phi0, float(g @ step))
        if found is None:
            self._adapt_damping(0.0)
            return None, m
        m_new, alpha = found
        if self.adaptive_damping:
            quad = float(step @ self.objective.hessian_vec(m, step))
            predicted = -(alpha * float(g @ step) + 0.5 * alpha**2 * quad)
            if predicted > 0:  # else the step was nil (at a minimum): nothing to learn
                self._adapt_damping((phi0 - self.objective.value(m_new)) / predicted)
        record = self._record(
            m_new, iteration, step_length=alpha, cg_iterations=n_cg, damping=self.damping
        )
        e1 = self._engine_seconds()
        total = time.perf_counter() - t0
        seconds = {k: e1[k] - e0[k] for k in e1}
        seconds["linear_algebra"] = linalg
        seconds["other"] = max(total - sum(seconds.values()), 0.0)
        record.seconds = seconds
        record.relative_decrease = (phi0 - record.phi) / max(abs(phi0), np.finfo(float).tiny)
        return record, m_new

    def _adapt_damping(self, gain: float) -> None:
        """Trust-region rule on the gain ratio (actual/predicted decrease of Φ)."""
        if not self.adaptive_damping:
            return
        if gain < 0.25:
            self.damping = max(4.0 * self.damping, DAMPING_START)
        elif gain > 0.75:
            self.damping = self.damping / 3.0 if self.damping > DAMPING_START else 0.0

    def run(
        self,
        m0: np.ndarray,
        on_iteration: Callable[[IterationRecord], None] | None = None,
    ) -> InversionResult:
        """Iterate to the end and return the result; ``on_iteration`` is called with
        every record (the starting model's included)."""
        records = []
        for record in self.iterate(m0):
            records.append(record)
            if on_iteration is not None:
                on_iteration(record)
        return InversionResult(
            model=self.model,
            iterations=records,
            message=self.message,
            success=self.stopping.success(records[-1].chi2),
        )


def estimate_beta0(
    objective: Objective, m: np.ndarray, *, ratio: float, rng: np.random.Generator, n_power: int = 8
) -> float:
    """β0 = ratio · λmax(data GN Hessian) / λmax(regularization Hessian), by power iteration.

    Both on the model parameters only: bias parameters appended to the model vector
    (:mod:`jointinv.bias`, the regularization's ``n_model`` first entries are the model)
    are not regularized, and a traveltime static's column of the data Hessian, N_shot/σ²,
    would otherwise set λmax and β0 a thousand times too large.
    """
    n = len(m)
    n_model = getattr(objective.regularization, "n_model", n)

    def on_model(hessian_vec: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable:
        def matvec(v: np.ndarray) -> np.ndarray:
            full = np.zeros(n)
            full[:n_model] = v
            return hessian_vec(m, full)[:n_model]

        return matvec

    lam_data = largest_eigenvalue(on_model(objective.data_hessian_vec), n_model, rng, n_power)
    lam_reg = largest_eigenvalue(
        on_model(objective.regularization.hessian_vec), n_model, rng, n_power
    )
    return ratio * lam_data / lam_reg


def largest_eigenvalue(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, rng: np.random.Generator, n_iter: int
) -> float:
    v = rng.standard_normal(n)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(n_iter):
        w = matvec(v)
        lam = float(np.linalg.norm(w))
        if lam == 0:
            return 0.0
        v = w / lam
    return lam
