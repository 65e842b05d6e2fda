"""Maps from the joint model vector to one engine's physical property.

A modality sees the joint model through a chain of maps::

    joint m  --Select-->  m_p (one property, transformed)
             --Transform-->  p (physical units)
             --Transfer-->  p on the engine's cells

Each map has ``__call__(x)``, ``jvec(x, v)`` (its Jacobian times ``v``) and
``jtvec(x, w)`` (the transpose times ``w``). :class:`Chain` composes them by the
chain rule; this is the only place the chain rule is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from scipy.special import expit


class Map(Protocol):
    """A differentiable map between vectors."""

    n_in: int
    n_out: int

    def __call__(self, x: np.ndarray) -> np.ndarray: ...

    def jvec(self, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...

    def jtvec(self, x: np.ndarray, w: np.ndarray) -> np.ndarray: ...

    def matrix_at(self, x: np.ndarray) -> sp.spmatrix: ...


@dataclass(frozen=True)
class Select:
    """Pick the block ``[start, start + size)`` of the joint model vector."""

    n_in: int
    start: int
    size: int

    @property
    def n_out(self) -> int:
        return self.size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x[self.start : self.start + self.size]

    def jvec(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return v[self.start : self.start + self.size]

    def matrix_at(self, x: np.ndarray) -> sp.csr_matrix:
        """The Jacobian as a sparse matrix (n_out, n_in)."""
        rows = np.arange(self.size)
        ones = np.ones(self.size)
        return sp.csr_matrix((ones, (rows, rows + self.start)), shape=(self.size, self.n_in))

    def jtvec(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_in)
        out[self.start : self.start + self.size] = w
        return out


@dataclass(frozen=True)
class Transform:
    """Elementwise map from the inversion parameter to physical units.

    Parameters
    ----------
    kind : {"log", "linear"}
        ``log``: ``p = exp(m)`` (natural log of the property is inverted).
        ``linear``: ``p = m``.
    lower, upper : float or None
        Bounds. With both given the map is a bounded (logistic) one so that
        ``lower < p < upper`` for every ``m``:

        * ``log``: ``m = ln(p - lower) - ln(upper - p)`` (pyGIMLi's *logLU*),
          log-like where ``lower << p << upper``;
        * ``linear``: ``m = c + w/4 · logit((p - lower) / w)`` with
          ``w = upper - lower`` and ``c`` the centre of the range; unit slope at
          the centre, so it behaves as the plain linear map there.
    n : int
        Vector length.
    """

    kind: str
    n: int
    lower: float | None = None
    upper: float | None = None

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n

    @property
    def bounded(self) -> bool:
        return self.lower is not None and self.upper is not None

    def __call__(self, m: np.ndarray) -> np.ndarray:
        if not self.bounded:
            return np.exp(m) if self.kind == "log" else np.array(m, dtype=float)
        p = self.lower + (self.upper - self.lower) * expit(self._u(m))
        # expit rounds to 0 or 1 for |u| ≳ 37: keep p strictly inside the bounds
        inside = np.nextafter(self.lower, self.upper), np.nextafter(self.upper, self.lower)
        return np.clip(p, *inside)

    def derivative(self, m: np.ndarray) -> np.ndarray:
        """dp/dm, elementwise."""
        if not self.bounded:
            return np.exp(m) if self.kind == "log" else np.ones_like(m, dtype=float)
        s = expit(self._u(m))
        width = self.upper - self.lower
        slope = 1.0 if self.kind == "log" else 4.0 / width
        return width * s * (1.0 - s) * slope

    def inverse(self, p: np.ndarray) -> np.ndarray:
        """m(p): the inversion parameter of a physical value."""
        p = np.asarray(p, dtype=float)
        if not self.bounded:
            return np.log(p) if self.kind == "log" else p.copy()
        logit = np.log(p - self.lower) - np.log(self.upper - p)
        if self.kind == "log":
            return logit
        width = self.upper - self.lower
        return 0.5 * (self.lower + self.upper) + 0.25 * width * logit

    def _u(self, m: np.ndarray) -> np.ndarray:
        if self.kind == "log":
            return m
        width = self.upper - self.lower
        return (m - 0.5 * (self.lower + self.upper)) * 4.0 / width

    def jvec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.derivative(m) * v

    def matrix_at(self, m: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(sp.diags(self.derivative(m)))

    def jtvec(self, m: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.derivative(m) * w


class Transfer:
    """A fixed linear map between meshes, ``p_engine = P @ p_model``.

    Parameters
    ----------
    matrix : scipy.sparse matrix, shape (n_out, n_in)
    """

    def __init__(self, matrix: sp.spmatrix) -> None:
        self.matrix = sp.csr_matrix(matrix)
        self._matrix_t = sp.csr_matrix(self.matrix.T)
        self.n_out, self.n_in = self.matrix.shape

    @classmethod
    def permutation(cls, order: np.ndarray) -> Transfer:
        """``p_engine[i] = p_model[order[i]]``."""
        return cls.selection(order, len(order))

    @classmethod
    def selection(cls, order: np.ndarray, n_in: int) -> Transfer:
        """``p_engine[i] = p_model[order[i]]`` for an engine with ``len(order) <= n_in`` cells."""
        n = len(order)
        return cls(sp.csr_matrix((np.ones(n), (np.arange(n), order)), shape=(n, n_in)))

    def matrix_at(self, x: np.ndarray) -> sp.csr_matrix:
        return self.matrix

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.matrix @ x

    def jvec(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.matrix @ v

    def jtvec(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self._matrix_t @ w


class Chain:
    """Composition ``maps[-1] ∘ … ∘ maps[0]`` (the first map is applied first)."""

    def __init__(self, maps: Sequence[Map]) -> None:
        self.maps = list(maps)
        for a, b in zip(self.maps[:-1], self.maps[1:]):
            if a.n_out != b.n_in:
                raise ValueError(f"map sizes do not chain: {a.n_out} -> {b.n_in}")
        self.n_in = self.maps[0].n_in
        self.n_out = self.maps[-1].n_out

    def _inputs(self, x: np.ndarray) -> list[np.ndarray]:
        inputs = [x]
        for mp in self.maps[:-1]:
            inputs.append(mp(inputs[-1]))
        return inputs

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for mp in self.maps:
            x = mp(x)
        return x

    def jvec(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        for mp, xi in zip(self.maps, self._inputs(x)):
            v = mp.jvec(xi, v)
        return v

    def jtvec(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        for mp, xi in zip(reversed(self.maps), reversed(self._inputs(x))):
            w = mp.jtvec(xi, w)
        return w

    def matrix_at(self, x: np.ndarray) -> sp.csr_matrix:
        """The chain's Jacobian at ``x`` as a sparse matrix (n_out, n_in)."""
        out = None
        for mp, xi in zip(self.maps, self._inputs(x)):
            mat = mp.matrix_at(xi)
            out = mat if out is None else mat @ out
        return sp.csr_matrix(out)
