"""Rock-physics relations between properties.

Each relation maps one property to another, elementwise, with its value, its
derivative and its range of validity. They are used two ways:

* hard coupling: a property is *derived* from another (for example resistivity
  from a shared porosity) through :class:`RelationMap`, a map in the model
  chain, so ``G_k(m) = H_k(F_k(P_k(φ)))`` and the chain rule stays in
  :class:`jointinv.maps.Chain`;
* soft coupling: :class:`jointinv.objective.PetrophysicalCoupling` penalises
  the misfit of the relation between two inverted properties.

Units: porosity and saturation are fractions (0–1), resistivity Ω·m, velocity
m/s, density and density contrast g/cm³.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp


class Relation(Protocol):
    """``y = f(x)``, elementwise."""

    input_units: str
    output_units: str
    valid_input: tuple[float, float]

    def value(self, x: np.ndarray) -> np.ndarray: ...

    def derivative(self, x: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Archie:
    """Archie's law: bulk resistivity from porosity.

    ``ρ = a · ρ_w · φ^(−m) · S^(−n)`` with ρ_w the pore-fluid resistivity (Ω·m),
    φ porosity and S water saturation (fractions), tortuosity factor ``a``,
    cementation exponent ``m`` and saturation exponent ``n``. Valid for clean
    (clay-free) rocks, 0 < φ < 1.
    """

    fluid_resistivity: float = 20.0
    a: float = 1.0
    m: float = 2.0
    n: float = 2.0
    saturation: float = 1.0
    input_units = "fraction"
    output_units = "ohm*m"
    valid_input = (0.0, 1.0)

    def value(self, porosity: np.ndarray) -> np.ndarray:
        factor = self.a * self.fluid_resistivity * self.saturation ** (-self.n)
        return factor * np.asarray(porosity, dtype=float) ** (-self.m)

    def derivative(self, porosity: np.ndarray) -> np.ndarray:
        """dρ/dφ (Ω·m per unit porosity)."""
        porosity = np.asarray(porosity, dtype=float)
        return -self.m * self.value(porosity) / porosity


@dataclass(frozen=True)
class Wyllie:
    """Wyllie's time average: P velocity (m/s) from porosity.

    ``1/v = φ/v_f + (1 − φ)/v_m`` with matrix and fluid velocities (m/s).
    Valid for consolidated, fluid-saturated rocks, 0 ≤ φ ≤ 1.
    """

    v_matrix: float = 5500.0
    v_fluid: float = 1500.0
    input_units = "fraction"
    output_units = "m/s"
    valid_input = (0.0, 1.0)

    def slowness(self, porosity: np.ndarray) -> np.ndarray:
        """Slowness (s/m)."""
        porosity = np.asarray(porosity, dtype=float)
        return porosity / self.v_fluid + (1.0 - porosity) / self.v_matrix

    def value(self, porosity: np.ndarray) -> np.ndarray:
        return 1.0 / self.slowness(porosity)

    def derivative(self, porosity: np.ndarray) -> np.ndarray:
        """dv/dφ (m/s per unit porosity)."""
        v = self.value(porosity)
        return -(v**2) * (1.0 / self.v_fluid - 1.0 / self.v_matrix)


@dataclass(frozen=True)
class Gardner:
    """Gardner's relation: bulk density (g/cm³) from P velocity (m/s).

    ``ρ_b = a · v^b`` (classic a = 0.31, b = 0.25 for v in m/s); optionally as a
    contrast ``ρ_b − reference``. Valid for sedimentary rocks, about 1500–6000 m/s.
    """

    a: float = 0.31
    b: float = 0.25
    reference: float = 0.0
    input_units = "m/s"
    output_units = "g/cm^3"
    valid_input = (0.0, np.inf)

    def value(self, velocity: np.ndarray) -> np.ndarray:
        return self.a * np.asarray(velocity, dtype=float) ** self.b - self.reference

    def derivative(self, velocity: np.ndarray) -> np.ndarray:
        velocity = np.asarray(velocity, dtype=float)
        return self.a * self.b * velocity ** (self.b - 1.0)


@dataclass(frozen=True)
class DensityMixing:
    """Bulk density from porosity: ``ρ_b = φ ρ_f + (1 − φ) ρ_m`` (g/cm³).

    With ``reference`` set, the output is the density contrast ``ρ_b − reference``
    (what gravity senses). Valid for 0 ≤ φ ≤ 1.
    """

    rho_matrix: float = 2.65
    rho_fluid: float = 1.0
    reference: float = 0.0
    input_units = "fraction"
    output_units = "g/cm^3"
    valid_input = (0.0, 1.0)

    def value(self, porosity: np.ndarray) -> np.ndarray:
        porosity = np.asarray(porosity, dtype=float)
        bulk = porosity * self.rho_fluid + (1.0 - porosity) * self.rho_matrix
        return bulk - self.reference

    def derivative(self, porosity: np.ndarray) -> np.ndarray:
        return np.full_like(np.asarray(porosity, dtype=float), self.rho_fluid - self.rho_matrix)


@dataclass(frozen=True)
class LinearTransformed:
    """A straight line between transformed properties: ``t_y(y) = a + b · t_x(x)``.

    ``t`` is ``log10`` or the identity (``input_log``/``output_log``), e.g.
    ``log10 ρ = a + b · log10 v``, the simplest empirical link.
    """

    a: float = 0.0
    b: float = 1.0
    input_log: bool = True
    output_log: bool = True
    input_units = "any"
    output_units = "any"

    @property
    def valid_input(self) -> tuple[float, float]:
        return (0.0, np.inf) if self.input_log else (-np.inf, np.inf)

    def value(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        t = self.a + self.b * (np.log10(x) if self.input_log else x)
        return 10.0**t if self.output_log else t

    def derivative(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        dt_dx = 1.0 / (x * np.log(10.0)) if self.input_log else np.ones_like(x)
        dy_dt = self.value(x) * np.log(10.0) if self.output_log else 1.0
        return self.b * dt_dx * dy_dt


RELATIONS: dict[str, type] = {
    "archie": Archie,
    "wyllie": Wyllie,
    "gardner": Gardner,
    "density_mixing": DensityMixing,
    "linear": LinearTransformed,
}


def check_input_range(relation: Relation, x: np.ndarray) -> None:
    """Raise ValueError when ``x`` leaves the relation's range of validity."""
    lo, hi = relation.valid_input
    bad = ~((x > lo) & (x < hi))
    if np.any(bad):
        raise ValueError(
            f"{type(relation).__name__} is valid for inputs in ({lo:g}, {hi:g}); "
            f"got {x[bad][0]:g}"
        )


class RelationMap:
    """A relation as a map of the model chain (hard coupling), elementwise on n cells."""

    def __init__(self, relation: Relation, n: int) -> None:
        self.relation = relation
        self.n_in = n
        self.n_out = n

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.relation.value(x)

    def jvec(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.relation.derivative(x) * v

    def jtvec(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.relation.derivative(x) * w

    def matrix_at(self, x: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix(sp.diags(self.relation.derivative(x)))
