"""The forward-operator protocol and its composition with a model map.

A *simulation* is one engine's forward operator on its own cells and in
physical units (for example apparent resistivity data from resistivity on a
pyGIMLi grid). A :class:`ForwardOperator` composes it with the map from the
joint model vector, so that every modality offers the same protocol to the
objective::

    forward(m), jvec(m, v), jtvec(m, w), n_data, n_params

No engine (pyGIMLi, SimPEG) type crosses this boundary: inputs and outputs are
numpy arrays.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from . import interrupt
from .maps import Map


class EngineClock:
    """Wall time spent inside engine calls, by kind (``forward``, ``jacobian``).

    Every engine call is a safe point to stop at after SIGINT or SIGTERM
    (:func:`jointinv.interrupt.check` before and after it).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"forward": 0.0, "jacobian": 0.0}
        self.calls: dict[str, int] = {"forward": 0, "jacobian": 0}

    @contextmanager
    def __call__(self, kind: str) -> Iterator[None]:
        interrupt.check()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] = self.seconds.get(kind, 0.0) + time.perf_counter() - start
            self.calls[kind] = self.calls.get(kind, 0) + 1
        interrupt.check()


@runtime_checkable
class Simulation(Protocol):
    """An engine's forward operator in physical units on the engine's cells.

    Implementations must be deterministic and must never return a Jacobian
    product for a model other than the one passed in (engines that cache
    state are guarded inside the implementation).
    """

    n_data: int
    n_params: int
    clock: EngineClock

    def forward(self, p: np.ndarray) -> np.ndarray: ...

    def jvec(self, p: np.ndarray, v: np.ndarray) -> np.ndarray: ...

    def jtvec(self, p: np.ndarray, w: np.ndarray) -> np.ndarray: ...


class ForwardOperator:
    """``G(m) = S(map(m))``: a simulation seen from the joint model vector.

    Parameters
    ----------
    simulation : Simulation
        The engine's operator.
    model_map : Map
        From the joint model vector to the simulation's input.
    """

    def __init__(self, simulation: Simulation, model_map: Map) -> None:
        if model_map.n_out != simulation.n_params:
            raise ValueError(
                f"map gives {model_map.n_out} values, simulation takes {simulation.n_params}"
            )
        self.simulation = simulation
        self.map = model_map

    @property
    def n_data(self) -> int:
        return self.simulation.n_data

    @property
    def n_params(self) -> int:
        return self.map.n_in

    def forward(self, m: np.ndarray) -> np.ndarray:
        return self.simulation.forward(self.map(m))

    def jvec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.simulation.jvec(self.map(m), self.map.jvec(m, v))

    def jtvec(self, m: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.map.jtvec(m, self.simulation.jtvec(self.map(m), w))

    @property
    def has_jacobian(self) -> bool:
        """True when the engine offers its Jacobian as a matrix."""
        return hasattr(self.simulation, "jacobian")

    def jacobian(self, m: np.ndarray) -> np.ndarray | sp.csr_matrix:
        """dG/dm as a matrix (n_data, n_params): engine Jacobian times the map's.

        Only for simulations with a ``jacobian(p)`` method (all of jointinv's
        engines); dense when the engine's is dense.
        """
        j_sim = self.simulation.jacobian(self.map(m))
        j_map = self.map.matrix_at(m)
        if sp.issparse(j_sim):
            return sp.csr_matrix(j_sim @ j_map)
        return np.asarray((j_map.T @ np.asarray(j_sim).T).T)
