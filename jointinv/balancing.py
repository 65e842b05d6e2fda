"""Misfit balancing: every modality reaches its own χ² target, none dominates.

Modalities differ by orders of magnitude in data count and sensitivity; with
one β the largest one dominates the Gauss-Newton step, reaches its target
early and is then over-fitted while the others lag. The scheme (documented in
the README):

1. At the start each misfit is scaled by ``w_k = λ̄ / λ_k`` where λ_k is the
   largest eigenvalue of its Gauss-Newton Hessian ``J_kᵀW_kᵀW_kJ_k`` (power
   iteration) and λ̄ the geometric mean of the λ_k: every modality starts with
   the same curvature.
2. After each iteration, the weight of a modality above its χ² target is
   multiplied by ``factor`` and the weight of one below it divided by
   ``factor``; the weights are then rescaled to keep their geometric mean, so
   only the balance changes, not the overall data weight (β does that).

The weights of every iteration are logged and stored in ``/iterations/weights``.
"""

from __future__ import annotations

import logging

import numpy as np

from .inversion import IterationRecord, largest_eigenvalue
from .objective import DataMisfit

log = logging.getLogger(__name__)


class MisfitBalancer:
    """Adapts the weights of the misfit terms (a plain callable on each record).

    Parameters
    ----------
    misfits : list of DataMisfit
    factor : float
        Multiplicative change per iteration (≥ 1).
    """

    def __init__(self, misfits: list[DataMisfit], *, factor: float = 1.5) -> None:
        self.misfits = misfits
        self.factor = factor
        self._log_mean = 0.0

    def scale_initial(self, m: np.ndarray, rng: np.random.Generator, n_power: int = 10) -> None:
        """Set ``w_k = λ̄/λ_k`` from the largest eigenvalue of each GN Hessian."""
        lam = np.array(
            [
                largest_eigenvalue(
                    lambda v, t=t: t.hessian_vec(m, v) / t.weight, len(m), rng, n_power
                )
                for t in self.misfits
            ]
        )
        lam = np.where(lam > 0, lam, 1.0)
        self._set(np.exp(np.mean(np.log(lam))) / lam)
        log.info("initial misfit weights: %s", self.weights)

    @property
    def weights(self) -> dict[str, float]:
        return {t.name: t.weight for t in self.misfits}

    def _set(self, w: np.ndarray) -> None:
        for t, wk in zip(self.misfits, w):
            t.weight = float(wk)
        self._log_mean = float(np.mean(np.log(w)))

    def __call__(self, record: IterationRecord) -> None:
        w = np.array([t.weight for t in self.misfits])
        for k, t in enumerate(self.misfits):
            chi2 = record.chi2[t.name]
            if chi2 > t.chi2_target:
                w[k] *= self.factor
            elif chi2 < t.chi2_target:
                w[k] /= self.factor
        w *= np.exp(self._log_mean - np.mean(np.log(w)))
        self._set(w)
        log.debug("misfit weights after iteration %d: %s", record.iteration, self.weights)
