"""The trade-off schedule: β, the misfit weights and the coupling weights.

One object decides, after every Gauss-Newton iteration, how the terms of

    Φ(m) = Σ_k w_k φ_d,k + β R(m) + Σ γ_ij C_ij(m)

are weighted for the next one. The rules (docs/choosing.md: "How a run reaches its targets"):

* **β is cooled only after a full step.** After an accepted step of length 1
  that left some modality above its χ² target, β is divided by the cooling
  factor. After a shortened step (the line search halved it: the misfit has not
  yet responded to the current β) β is held, so a nonlinear problem converges
  at the current β before asking for more structure. When the line search fails
  altogether, β is raised by the cooling factor (:meth:`TradeOff.retreat`) and
  the step is tried again.
* **The run stops when every modality has reached its target** (χ² ≤ target) and
  none lies below its band, and succeeds when every final χ² lies within
  ``band × target`` (default [0.8, 1.2]).
* **Every modality lands on its own target.** Each modality has a trade-off
  ``μ_k = w_k / β`` (its data against the regularization). While its χ² is above
  its target, μ_k grows as β cools; once its χ² is at or below its target, μ_k
  is held; below the band (``band[0] × target``) μ_k is divided by the cooling
  factor, so the modality is no longer over-fitted while the others catch up.
  Without per-modality weights (one modality, or balancing off) β itself is
  raised when the last full step overshot below the band. With
  ``initial_scaling`` every misfit starts scaled to the same Gauss-Newton
  curvature (largest eigenvalue of ``J_kᵀW_k²J_k``); off by default.
* **Steps are damped where the linearisation fails** (``adaptive_damping``, in
  :class:`~jointinv.inversion.GaussNewton`): a Levenberg-Marquardt term
  ``λ·diag(H)`` is raised after a step that gained less than a quarter of its
  predicted decrease and lowered after one that gained more than three quarters.
* **Coupling weights need no tuning** (coupling terms declared without
  ``weight``). A cross-gradient adds, for property a, a smoothness along the
  contours of property b of strength ``2γ|∇m_b|²`` (per unit area); the
  regularization's own smoothness of a is ``2β w_a α``. The default

      γ = κ β α · min(w_a / G_b, w_b / G_a),   G_p = 99th percentile of |∇m_p|² (core),

  keeps that extra smoothness within about κ times the regularization's, even at
  a property's sharpest boundaries, for the weaker-coupled of the two directions,
  so neither property is forced onto the other's structure. γ follows β and the
  current models: it is a ratio, not a number to tune. ``α = (α_x + α_z)/2``,
  ``w_p`` the property weights. For a normalized cross-gradient
  (``τ/(|∇m_a||∇m_b|)``) the same reasoning gives ``γ = κ β α · min(w_a G_a,
  w_b G_b)`` with G_p the area-weighted mean of |∇m_p|² (its local strength grows
  where a property is flat, so no quantile can cap it). While a property has no
  structure yet (G_p = 0, e.g. a homogeneous start), its couplings are off.

The schedule's state after an iteration follows from the records of the
iterations before it (:meth:`TradeOff.replay`), so a resumed run continues
exactly as the uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .inversion import GaussNewton, IterationRecord, Stopping, estimate_beta0, largest_eigenvalue
from .objective import CrossGradient, Objective
from .progress import stage

log = logging.getLogger(__name__)

#: The scale G_p of |∇m_p|² in the automatic coupling weight: this quantile over the
#: core cells, so the extra smoothness stays within about κ times the regularization's
#: even at a property's sharpest boundaries (the mean let a compact anomaly's edges
#: imprint it on the other properties: 4-10 % in velocity on the blind-spot benchmark)
GRADIENT_QUANTILE = 0.99

#: key of β's own relaxation count (runs without per-modality weights)
ALL = "*"

#: Consecutive relaxations after which a modality still below its band is left
#: alone (the model the other data and the regularization need explains it).
MAX_RELAXATIONS = 5


@dataclass(frozen=True)
class ScheduleSettings:
    """The knobs of :class:`TradeOff` (from ``inversion`` in the config).

    Attributes
    ----------
    cooling_factor : float
        β is divided by this after a full step (≥ 1).
    beta_minimum : float
    band : (float, float)
        Final χ² of every modality should lie in ``band × target``.
    balance : bool
        Per-modality weights (initial curvature scaling and holding at target).
    initial_scaling : bool
        Scale every misfit to the same initial GN curvature.
    coupling_strength : float
        κ of the default coupling weight (see the module docstring).
    """

    cooling_factor: float = 2.0
    beta_minimum: float = 0.0
    band: tuple[float, float] = (0.8, 1.2)
    balance: bool = True
    initial_scaling: bool = False
    coupling_strength: float = 3.0


class TradeOff:
    """β, misfit weights and automatic coupling weights (see the module docstring).

    Used by :class:`~jointinv.inversion.GaussNewton` as its ``beta`` callable
    (``tradeoff(m, iteration)`` returns β and sets the coupling weights for the
    step from ``m``) and its ``balance`` callable (``tradeoff.update(record)``
    after each iteration).

    Parameters
    ----------
    objective : Objective
    beta0 : float
    settings : ScheduleSettings
    auto_couplings : sequence of CrossGradient
        The coupling terms whose weight is derived (declared without ``weight``).
    regularization_weights : dict
        ``α · w_p`` of every property block by name (see the module docstring).
    """

    def __init__(
        self,
        objective: Objective,
        beta0: float,
        settings: ScheduleSettings,
        *,
        auto_couplings: Sequence[CrossGradient] = (),
        regularization_weights: dict[str, float] | None = None,
    ) -> None:
        self.objective = objective
        self.settings = settings
        self.beta = float(beta0)
        self.auto_couplings = list(auto_couplings)
        self.regularization_weights = regularization_weights or {}
        self.balance = settings.balance and len(objective.misfits) > 1
        self.relaxations = {t.name: 0 for t in objective.misfits}
        self.relaxations[ALL] = 0  # of β, without balancing

    # --- GaussNewton's beta callable --------------------------------------------
    def __call__(self, m: np.ndarray, iteration: int) -> float:
        """β for a step from ``m``; sets the automatic coupling weights from ``m``."""
        for term in self.auto_couplings:
            term.weight = self.coupling_weight(term, m)
        return self.beta

    def coupling_weight(self, term: CrossGradient, m: np.ndarray) -> float:
        """γ = κ β α · min(w_a/G_b, w_b/G_a) (normalized: min(w_a G_a, w_b G_b))."""
        ga, gb = term.mean_squared_gradients(m, None if term.normalized else GRADIENT_QUANTILE)
        if ga <= 0 or gb <= 0:
            return 0.0
        wa = self.regularization_weights.get(term.a.name, 1.0)
        wb = self.regularization_weights.get(term.b.name, 1.0)
        ratio = min(wa * ga, wb * gb) if term.normalized else min(wa / gb, wb / ga)
        return self.settings.coupling_strength * self.beta * ratio

    # --- after each iteration -----------------------------------------------------
    def targets(self) -> dict[str, float]:
        return {t.name: t.chi2_target for t in self.objective.misfits}

    def update(self, record: IterationRecord) -> None:
        """Set β and the misfit weights for the iteration after ``record``."""
        lo = self.settings.band[0]
        above = [k for k, t in self.targets().items() if record.chi2[k] > t]
        cool = bool(above) and record.step_length >= 1.0
        old_beta = self.beta
        if cool:
            self.beta = max(self.beta / self.settings.cooling_factor, self.settings.beta_minimum)
        if not self.balance:
            self._relax_beta(record, above)
            return
        for t in self.objective.misfits:
            chi2, target = record.chi2[t.name], t.chi2_target
            if chi2 > target:
                self.relaxations[t.name] = 0
                continue  # μ grows with the cooling
            t.weight *= self.beta / old_beta  # hold μ = w/β
            if chi2 < lo * target and self.relaxations[t.name] < MAX_RELAXATIONS:
                t.weight /= self.settings.cooling_factor
                self.relaxations[t.name] += 1
            elif chi2 >= lo * target:
                self.relaxations[t.name] = 0
        log.debug(
            "after iteration %d: beta %.3g, weights %s",
            record.iteration,
            self.beta,
            {t.name: t.weight for t in self.objective.misfits},
        )

    def _relax_beta(self, record: IterationRecord, above: list[str]) -> None:
        """Without per-modality weights (one modality, or balancing off) β is the
        trade-off: raise it when no modality is above its target and one fell below
        its band (the last full step overshot), :data:`MAX_RELAXATIONS` times at most."""
        lo = self.settings.band[0]
        below = [k for k, t in self.targets().items() if record.chi2[k] < lo * t]
        if below and not above and self.relaxations[ALL] < MAX_RELAXATIONS:
            self.beta *= self.settings.cooling_factor
            self.relaxations[ALL] += 1
        elif not below:
            self.relaxations[ALL] = 0

    def retreat(self) -> bool:
        """After a failed line search: raise β by the cooling factor (False if it cannot)."""
        if self.settings.cooling_factor <= 1.0:
            return False
        self.beta *= self.settings.cooling_factor
        return True

    def settled(self, chi2: dict[str, float]) -> bool:
        """Time to stop: every χ² at or below its target and none below its band (a
        modality below it counts once it, or β without balancing, has been relaxed
        :data:`MAX_RELAXATIONS` times)."""
        lo = self.settings.band[0]
        for name, target in self.targets().items():
            if chi2[name] > target:
                return False
            key = name if self.balance else ALL
            stuck = self.relaxations[key] >= MAX_RELAXATIONS
            if chi2[name] < lo * target and not stuck:
                return False
        return True

    def in_band(self, chi2: dict[str, float]) -> bool:
        """Every χ² within ``band × target`` (a run's success)."""
        lo, hi = self.settings.band
        return all(lo * t <= chi2[k] <= hi * t for k, t in self.targets().items())

    def replay(self, records: Sequence[IterationRecord]) -> None:
        """Restore the state after ``records`` (a resumed run): β and weights of the
        last record, relaxation counts from the whole history."""
        for r in records[:-1]:
            self.update(r)
        last = records[-1]
        self.beta = last.beta
        for t in self.objective.misfits:
            t.weight = last.weights.get(t.name, t.weight)

    # --- start ---------------------------------------------------------------------
    def scale_initial(self, m: np.ndarray, rng: np.random.Generator, n_power: int = 10) -> None:
        """``w_k = λ̄/λ_k``: every misfit with the same largest GN curvature."""
        misfits = self.objective.misfits
        lam = np.array(
            [
                largest_eigenvalue(
                    lambda v, t=t: t.hessian_vec(m, v) / t.weight, len(m), rng, n_power
                )
                for t in misfits
            ]
        )
        lam = np.where(lam > 0, lam, 1.0)
        for t, w in zip(misfits, np.exp(np.mean(np.log(lam))) / lam):
            t.weight = float(w)
        log.info("initial misfit weights: %s", {t.name: f"{t.weight:.3g}" for t in misfits})


class BandStopping(Stopping):
    """:class:`~jointinv.inversion.Stopping` whose target is the χ² band of a TradeOff."""

    def __init__(self, tradeoff: TradeOff, *, max_iterations: int, stagnation_tolerance: float):
        super().__init__(
            tradeoff.targets(),
            max_iterations=max_iterations,
            stagnation_tolerance=stagnation_tolerance,
        )
        self.tradeoff = tradeoff

    def targets_reached(self, chi2: dict[str, float]) -> bool:
        return self.tradeoff.settled(chi2)

    def success(self, chi2: dict[str, float]) -> bool:
        return self.tradeoff.in_band(chi2)

    def reached_message(self) -> str:
        lo = self.tradeoff.settings.band[0]
        return f"every modality reached its χ² target (none below {lo:g} × target)"


def build_minimizer(
    objective: Objective,
    m0: np.ndarray,
    inversion: object,
    *,
    rng: np.random.Generator,
    clocks: Sequence[object] = (),
    auto_couplings: Sequence[CrossGradient] = (),
    regularization_weights: dict[str, float] | None = None,
    beta0: float | None = None,
    weights: dict[str, float] | None = None,
) -> tuple[GaussNewton, TradeOff]:
    """The Gauss-Newton minimiser and its schedule from the ``inversion`` settings.

    Used by ``jointinv run`` and by the conflict test's first coupled fit.
    ``beta0`` and ``weights`` (a resumed run) replace the estimates from ``m0``.
    """
    settings = schedule_settings(inversion)
    tradeoff = TradeOff(
        objective,
        1.0,
        settings,
        auto_couplings=auto_couplings,
        regularization_weights=regularization_weights,
    )
    if weights is not None:
        for t in objective.misfits:
            t.weight = weights.get(t.name, 1.0)
    elif tradeoff.balance and settings.initial_scaling:
        tradeoff.scale_initial(m0, rng)
    if beta0 is None and inversion.beta.initial is None:
        stage("beta0 from the Jacobians at the starting model")
    if beta0 is None:
        beta0 = inversion.beta.initial or estimate_beta0(
            objective, m0, ratio=inversion.beta.initial_ratio, rng=rng
        )
    tradeoff.beta = float(beta0)
    log.info("beta0 = %.3g", beta0)
    gn = GaussNewton(
        objective,
        beta=tradeoff,
        stopping=BandStopping(
            tradeoff,
            max_iterations=inversion.max_iterations,
            stagnation_tolerance=inversion.stagnation_tolerance,
        ),
        clocks=clocks,
        balance=tradeoff.update,
        retreat=tradeoff.retreat,
        adaptive_damping=inversion.adaptive_damping,
        cg_max_iterations=inversion.cg.max_iterations,
        cg_tolerance=inversion.cg.tolerance,
        max_halvings=inversion.max_line_search_halvings,
    )
    return gn, tradeoff


def schedule_settings(inversion: object) -> ScheduleSettings:
    """:class:`ScheduleSettings` from the config's ``inversion`` section."""
    return ScheduleSettings(
        cooling_factor=inversion.beta.cooling_factor,
        beta_minimum=inversion.beta.minimum,
        band=tuple(inversion.chi2_band),
        balance=inversion.balancing.enabled,
        initial_scaling=inversion.balancing.initial_scaling,
        coupling_strength=inversion.coupling_strength,
    )
