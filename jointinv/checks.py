"""Numerical checks for operators: adjoint (dot-product) and Taylor tests.

Used by the test suite; also handy when adding a new engine.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def adjoint_mismatch(
    jvec: Callable[[np.ndarray], np.ndarray],
    jtvec: Callable[[np.ndarray], np.ndarray],
    n_in: int,
    n_out: int,
    *,
    rng: np.random.Generator,
) -> float:
    """Relative mismatch ``|wᵀ(Jv) − vᵀ(Jᵀw)| / max(|wᵀJv|, |vᵀJᵀw|)`` for random v, w."""
    v = rng.standard_normal(n_in)
    w = rng.standard_normal(n_out)
    lhs = float(w @ jvec(v))
    rhs = float(v @ jtvec(w))
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs), np.finfo(float).tiny)


def taylor_orders(
    fun: Callable[[np.ndarray], np.ndarray],
    jvec: Callable[[np.ndarray], np.ndarray],
    m: np.ndarray,
    dm: np.ndarray,
    *,
    steps: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Errors of the zeroth- and first-order Taylor expansions of ``fun``.

    For step ``h``: ``e0 = ‖f(m + h dm) − f(m)‖`` and
    ``e1 = ‖f(m + h dm) − f(m) − h J dm‖``. A correct derivative gives
    ``e0 ~ h`` and ``e1 ~ h²``.

    Returns
    -------
    steps, e0, e1 : arrays
    """
    if steps is None:
        steps = 10.0 ** -np.arange(1, 5)
    f0 = np.atleast_1d(fun(m))
    jdm = np.atleast_1d(jvec(dm))
    e0, e1 = [], []
    for h in steps:
        fh = np.atleast_1d(fun(m + h * dm))
        e0.append(np.linalg.norm(fh - f0))
        e1.append(np.linalg.norm(fh - f0 - h * jdm))
    return np.asarray(steps), np.asarray(e0), np.asarray(e1)


def convergence_order(steps: np.ndarray, errors: np.ndarray) -> float:
    """Least-squares slope of log(error) against log(step)."""
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])
