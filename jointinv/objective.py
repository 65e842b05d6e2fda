"""The objective function, a sum of named terms.

    Φ(m) = Σ_k ½‖W_k(d_k − G_k(m))‖² + β·R(m) + Σ γ_ij·C(m_i, m_j)

Each term offers ``value(m)``, ``gradient(m)`` and ``hessian_vec(m, v)`` (the
Gauss-Newton Hessian times ``v``). Logs and the HDF5 result name every term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .maps import Transform
from .mesh import ModelMesh
from .petrophysics import Relation


class Term(Protocol):
    name: str

    def value(self, m: np.ndarray) -> float: ...

    def gradient(self, m: np.ndarray) -> np.ndarray: ...

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray: ...


class Operator(Protocol):
    n_data: int
    n_params: int

    def forward(self, m: np.ndarray) -> np.ndarray: ...

    def jvec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray: ...

    def jtvec(self, m: np.ndarray, w: np.ndarray) -> np.ndarray: ...


class DataMisfit:
    """½‖(d − G(m)) / σ‖² for one modality.

    The predicted data of the last two models are kept, so the response of an
    accepted line-search step is not computed again for the next gradient.

    Parameters
    ----------
    name : str
        Modality name.
    operator : Operator
        G, from the joint model vector to the data.
    observed, std : arrays
        Observed data and their standard deviations (data units).
    chi2_target : float
        The χ² this modality should reach.
    """

    def __init__(
        self,
        name: str,
        operator: Operator,
        observed: np.ndarray,
        std: np.ndarray,
        *,
        chi2_target: float = 1.0,
    ) -> None:
        self.name = name
        self.operator = operator
        self.observed = np.asarray(observed, dtype=float)
        self.std = np.asarray(std, dtype=float)
        self.chi2_target = chi2_target
        #: balancing weight w_k (the term is w_k·½‖r‖²; χ² does not include it)
        self.weight = 1.0
        self._cache: dict[bytes, np.ndarray] = {}
        self._jacobian: tuple[bytes, _Linearization] | None = None

    @property
    def n_data(self) -> int:
        return len(self.observed)

    def predicted(self, m: np.ndarray) -> np.ndarray:
        key = m.tobytes()
        if key not in self._cache:
            if len(self._cache) >= 2:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self.operator.forward(m)
        return self._cache[key]

    def normalized_residual(self, m: np.ndarray) -> np.ndarray:
        """(d − G(m)) / σ."""
        return (self.observed - self.predicted(m)) / self.std

    def misfit(self, m: np.ndarray) -> float:
        """φ_d = ½‖(d − G(m))/σ‖², without the balancing weight."""
        r = self.normalized_residual(m)
        return 0.5 * float(r @ r)

    def value(self, m: np.ndarray) -> float:
        return self.weight * self.misfit(m)

    def chi2(self, m: np.ndarray) -> float:
        """χ² = 2φ_d / N."""
        return 2.0 * self.misfit(m) / self.n_data

    def _weighted_jacobian(self, m: np.ndarray) -> _Linearization | None:
        """W J as a matrix, kept for the last model (None if the operator has none)."""
        if not getattr(self.operator, "has_jacobian", False):
            return None
        key = m.tobytes()
        if self._jacobian is None or self._jacobian[0] != key:
            jac = self.operator.jacobian(m)
            w = 1.0 / self.std
            wj = sp.diags(w) @ jac if sp.issparse(jac) else jac * w[:, None]
            self._jacobian = (key, _Linearization(wj))
        return self._jacobian[1]

    def gradient(self, m: np.ndarray) -> np.ndarray:
        wj = self._weighted_jacobian(m)
        if wj is None:
            g = -self.operator.jtvec(m, self.normalized_residual(m) / self.std)
        else:
            g = -wj.rmatvec(self.normalized_residual(m))
        return self.weight * g

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        wj = self._weighted_jacobian(m)
        if wj is None:
            h = self.operator.jtvec(m, self.operator.jvec(m, v) / self.std**2)
        else:
            h = wj.rmatvec(wj.matvec(v))
        return self.weight * h

    def hessian_diagonal(self, m: np.ndarray) -> np.ndarray | None:
        """diag(JᵀW²J), or None when the operator offers no Jacobian matrix."""
        wj = self._weighted_jacobian(m)
        return None if wj is None else self.weight * wj.column_norms_squared()

    def weighted_jacobian(self, m: np.ndarray) -> LinearOperator:
        """W J at ``m`` (W = diag(1/σ)) as a LinearOperator (n_data, n_params).

        Without the balancing weight. Built on the engine's Jacobian matrix when
        there is one (kept for the last model), else from ``jvec``/``jtvec``.
        """
        shape = (self.n_data, len(m))
        wj = self._weighted_jacobian(m)
        if wj is None:
            op = self.operator
            return LinearOperator(
                shape,
                matvec=lambda v: op.jvec(m, np.ravel(v)) / self.std,
                rmatvec=lambda w: op.jtvec(m, np.ravel(w) / self.std),
                dtype=float,
            )
        return LinearOperator(
            shape,
            matvec=wj.matvec,
            rmatvec=wj.rmatvec,
            matmat=wj.matmat,
            rmatmat=wj.rmatmat,
            dtype=float,
        )


class _Linearization:
    """A data-weighted Jacobian W J, stored by its non-zero columns only.

    A modality senses one property, so most columns of its Jacobian with
    respect to the joint model are zero; dropping them makes the many
    products inside CG cheaper.
    """

    def __init__(self, wj: np.ndarray | sp.spmatrix) -> None:
        self.n_params = wj.shape[1]
        if sp.issparse(wj):
            wj = sp.csc_matrix(wj)
            self.columns = np.flatnonzero(np.diff(wj.indptr))
        else:
            self.columns = np.flatnonzero(np.any(wj != 0, axis=0))
        self.matrix = wj[:, self.columns]
        if sp.issparse(self.matrix):
            self.matrix = sp.csr_matrix(self.matrix)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self.matrix @ v[self.columns]

    def rmatvec(self, w: np.ndarray) -> np.ndarray:
        out = np.zeros(self.n_params)
        out[self.columns] = self.matrix.T @ w
        return out

    def matmat(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(self.matrix @ v[self.columns])

    def rmatmat(self, w: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n_params, w.shape[1]))
        out[self.columns] = self.matrix.T @ w
        return out

    def column_norms_squared(self) -> np.ndarray:
        out = np.zeros(self.n_params)
        if sp.issparse(self.matrix):
            out[self.columns] = np.asarray(self.matrix.multiply(self.matrix).sum(axis=0)).ravel()
        else:
            out[self.columns] = np.einsum("ij,ij->j", self.matrix, self.matrix)
        return out


@dataclass(frozen=True)
class Block:
    """Where one property sits in the joint model vector."""

    name: str
    start: int
    size: int

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.size)


class Regularization:
    """R(m) = Σ_p w_p (α_s‖m_p − m_ref,p‖²_A + α_x‖∂x m_p‖²_A + α_z‖∂z m_p‖²_A).

    Norms are area-weighted (``‖f‖²_A ≈ ∫ f² dA``), so the weights do not
    change with the mesh. ``m`` is the inversion parameter (e.g. ln ρ), not
    the physical value. The β factor is applied by :class:`Objective`.
    """

    name = "regularization"

    def __init__(
        self,
        mesh: ModelMesh,
        blocks: list[Block],
        reference: np.ndarray,
        *,
        alpha_s: float,
        alpha_x: float,
        alpha_z: float,
        property_weights: dict[str, float] | None = None,
    ) -> None:
        weights = property_weights or {}
        n = sum(b.size for b in blocks)
        self.reference = np.asarray(reference, dtype=float)
        one = (
            alpha_s * sp.diags(mesh.cell_areas)
            + alpha_x * (mesh.gradient_x.T @ mesh.gradient_x)
            + alpha_z * (mesh.gradient_z.T @ mesh.gradient_z)
        )
        diag = [weights.get(b.name, 1.0) * one for b in blocks]
        self.matrix = sp.csr_matrix(sp.block_diag(diag))
        assert self.matrix.shape == (n, n)

    def value(self, m: np.ndarray) -> float:
        dm = m - self.reference
        return float(dm @ (self.matrix @ dm))

    def gradient(self, m: np.ndarray) -> np.ndarray:
        return 2.0 * (self.matrix @ (m - self.reference))

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return 2.0 * (self.matrix @ v)

    def hessian_diagonal(self) -> np.ndarray:
        return 2.0 * self.matrix.diagonal()

    def hessian_matrix(self) -> sp.csr_matrix:
        """∇²R = 2·matrix (sparse, without β)."""
        return sp.csr_matrix(2.0 * self.matrix)


class CrossGradient:
    """γ Σ_cells A_c τ_c², τ = ∂x m_a ∂z m_b − ∂z m_a ∂x m_b (cross-gradient).

    τ is zero where the gradients of the two properties are parallel, so the
    term favours common structure without a relation between the values. The
    gradients are central differences at cell centres (1/m) of the inversion
    parameters. The Hessian product is the Gauss-Newton one, ``2γ Jτᵀ A Jτ``.

    With ``normalized=True`` the gradients are first scaled by their magnitude,
    ``τ_n = τ / (|∇m_a|_ε |∇m_b|_ε)`` with ``|g|_ε = sqrt(|g|² + ε²)``, so τ_n is
    the sine of the angle between the gradients and does not grow with the
    contrast; ε (parameter units per m) keeps it finite where a property is flat.
    """

    def __init__(
        self,
        name: str,
        mesh: ModelMesh,
        a: Block,
        b: Block,
        *,
        weight: float,
        normalized: bool = False,
        epsilon: float = 1e-3,
        core: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.a = a
        self.b = b
        self.weight = weight
        self.normalized = normalized
        self.epsilon = epsilon
        self.areas = mesh.cell_areas
        self.gx, self.gz = mesh.cell_gradient
        #: cells over which :meth:`mean_squared_gradients` averages (default: all)
        self.core = np.ones(len(self.areas), bool) if core is None else np.asarray(core, bool)
        self._last_jac: tuple[bytes, sp.csr_matrix, sp.csr_matrix] | None = None

    def _gradients(self, m: np.ndarray) -> tuple[np.ndarray, ...]:
        ma, mb = m[self.a.slice], m[self.b.slice]
        return self.gx @ ma, self.gz @ ma, self.gx @ mb, self.gz @ mb

    def mean_squared_gradients(
        self, m: np.ndarray, quantile: float | None = None
    ) -> tuple[float, float]:
        """Scale of |∇m_a|² and |∇m_b|² over the core cells (parameter units² / m²):
        the area-weighted mean, or the given quantile (0-1). The scale of the
        automatic weight."""
        ax, az, bx, bz = self._gradients(m)
        area = self.areas[self.core]
        ga2, gb2 = (ax**2 + az**2)[self.core], (bx**2 + bz**2)[self.core]
        if quantile is not None:
            return float(np.quantile(ga2, quantile)), float(np.quantile(gb2, quantile))
        total = float(area.sum())
        return float(area @ ga2) / total, float(area @ gb2) / total

    def tau(self, m: np.ndarray) -> np.ndarray:
        """The cross-gradient at each cell (parameter units² / m², or unitless if normalized)."""
        ax, az, bx, bz = self._gradients(m)
        t = ax * bz - az * bx
        if not self.normalized:
            return t
        na, nb = self._norms(ax, az, bx, bz)
        return t / (na * nb)

    def _norms(self, ax, az, bx, bz) -> tuple[np.ndarray, np.ndarray]:
        eps2 = self.epsilon**2
        return np.sqrt(ax**2 + az**2 + eps2), np.sqrt(bx**2 + bz**2 + eps2)

    def _partials(self, m: np.ndarray) -> tuple[np.ndarray, ...]:
        """∂τ/∂(ax, az, bx, bz) at each cell."""
        ax, az, bx, bz = self._gradients(m)
        if not self.normalized:
            return bz, -bx, -az, ax
        na, nb = self._norms(ax, az, bx, bz)
        t = (ax * bz - az * bx) / (na * nb)
        inv = 1.0 / (na * nb)
        return (
            bz * inv - t * ax / na**2,
            -bx * inv - t * az / na**2,
            -az * inv - t * bx / nb**2,
            ax * inv - t * bz / nb**2,
        )

    def value(self, m: np.ndarray) -> float:
        t = self.tau(m)
        return self.weight * float(self.areas @ t**2)

    def _jac(self, m: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """dτ/dm_a and dτ/dm_b, kept for the last model."""
        key = m.tobytes()
        if self._last_jac is None or self._last_jac[0] != key:
            d_ax, d_az, d_bx, d_bz = self._partials(m)
            ja = sp.csr_matrix(sp.diags(d_ax) @ self.gx + sp.diags(d_az) @ self.gz)
            jb = sp.csr_matrix(sp.diags(d_bx) @ self.gx + sp.diags(d_bz) @ self.gz)
            self._last_jac = (key, ja, jb)
        return self._last_jac[1], self._last_jac[2]

    def hessian_diagonal(self, m: np.ndarray) -> np.ndarray:
        """Diagonal of the Gauss-Newton Hessian 2γ JτᵀAJτ."""
        ja, jb = self._jac(m)
        out = np.zeros_like(m, dtype=float)
        for block, j in ((self.a, ja), (self.b, jb)):
            out[block.slice] = 2.0 * self.weight * (self.areas @ j.multiply(j))
        return out

    def gradient(self, m: np.ndarray) -> np.ndarray:
        ja, jb = self._jac(m)
        r = 2.0 * self.weight * self.areas * self.tau(m)
        g = np.zeros_like(m, dtype=float)
        g[self.a.slice] = ja.T @ r
        g[self.b.slice] = jb.T @ r
        return g

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        ja, jb = self._jac(m)
        jv = ja @ v[self.a.slice] + jb @ v[self.b.slice]
        r = 2.0 * self.weight * self.areas * jv
        out = np.zeros_like(m, dtype=float)
        out[self.a.slice] = ja.T @ r
        out[self.b.slice] = jb.T @ r
        return out

    def hessian_matrix(self, m: np.ndarray) -> sp.csr_matrix:
        """The Gauss-Newton Hessian 2γ JτᵀAJτ as a sparse matrix (len(m), len(m))."""
        ja, jb = self._jac(m)
        j = _embed_columns(len(m), [(self.a, ja), (self.b, jb)])
        return sp.csr_matrix(j.T @ sp.diags(2.0 * self.weight * self.areas) @ j)


class PetrophysicalCoupling:
    """λ/2 Σ_c w_c g_c², g = t(p_b) − t(f(p_a)): a soft rock-physics link.

    ``p = T(m)`` are the physical properties of blocks a and b, ``f`` a relation
    of :mod:`jointinv.petrophysics` and ``t`` the natural log when property b is
    inverted in log (so g is a relative misfit) or the identity. ``w_c`` holds
    per-cell weights and is zero outside the region where the relation applies.
    The Hessian product is the Gauss-Newton one, ``λ Jgᵀ W Jg``.
    """

    def __init__(
        self,
        name: str,
        a: Block,
        b: Block,
        *,
        transform_a: Transform,
        transform_b: Transform,
        relation: Relation,
        weight: float,
        cell_weights: np.ndarray,
    ) -> None:
        self.name = name
        self.a, self.b = a, b
        self.transform_a, self.transform_b = transform_a, transform_b
        self.relation = relation
        self.weight = weight
        self.cell_weights = np.asarray(cell_weights, dtype=float)
        self.log_b = transform_b.kind == "log"

    def _t(self, p: np.ndarray) -> np.ndarray:
        return np.log(p) if self.log_b else p

    def _dt(self, p: np.ndarray) -> np.ndarray:
        return 1.0 / p if self.log_b else np.ones_like(p)

    def residual(self, m: np.ndarray) -> np.ndarray:
        """g per cell (in t units of property b)."""
        pa = self.transform_a(m[self.a.slice])
        pb = self.transform_b(m[self.b.slice])
        return self._t(pb) - self._t(self.relation.value(pa))

    def _partials(self, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """dg/dm_a and dg/dm_b, elementwise."""
        ma, mb = m[self.a.slice], m[self.b.slice]
        pa, pb = self.transform_a(ma), self.transform_b(mb)
        f = self.relation.value(pa)
        da = -self._dt(f) * self.relation.derivative(pa) * self.transform_a.derivative(ma)
        db = self._dt(pb) * self.transform_b.derivative(mb)
        return da, db

    def value(self, m: np.ndarray) -> float:
        g = self.residual(m)
        return 0.5 * self.weight * float(self.cell_weights @ g**2)

    def gradient(self, m: np.ndarray) -> np.ndarray:
        da, db = self._partials(m)
        r = self.weight * self.cell_weights * self.residual(m)
        out = np.zeros_like(m, dtype=float)
        out[self.a.slice] = da * r
        out[self.b.slice] = db * r
        return out

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        da, db = self._partials(m)
        jv = self.weight * self.cell_weights * (da * v[self.a.slice] + db * v[self.b.slice])
        out = np.zeros_like(m, dtype=float)
        out[self.a.slice] = da * jv
        out[self.b.slice] = db * jv
        return out

    def hessian_diagonal(self, m: np.ndarray) -> np.ndarray:
        da, db = self._partials(m)
        out = np.zeros_like(m, dtype=float)
        out[self.a.slice] = self.weight * self.cell_weights * da**2
        out[self.b.slice] = self.weight * self.cell_weights * db**2
        return out

    def hessian_matrix(self, m: np.ndarray) -> sp.csr_matrix:
        """The Gauss-Newton Hessian λ JgᵀWJg as a sparse matrix (len(m), len(m))."""
        da, db = self._partials(m)
        j = _embed_columns(len(m), [(self.a, sp.diags(da)), (self.b, sp.diags(db))])
        return sp.csr_matrix(j.T @ sp.diags(self.weight * self.cell_weights) @ j)


def _embed_columns(n: int, parts: list[tuple[Block, sp.spmatrix]]) -> sp.csr_matrix:
    """Place per-block matrices (same rows) at their blocks' columns of an n-column matrix."""
    coo = [(block, sp.coo_matrix(mat)) for block, mat in parts]
    rows = np.concatenate([c.row for _, c in coo])
    cols = np.concatenate([c.col + block.start for block, c in coo])
    data = np.concatenate([c.data for _, c in coo])
    return sp.csr_matrix((data, (rows, cols)), shape=(coo[0][1].shape[0], n))


class Objective:
    """Φ(m) = Σ misfits + β·R + Σ couplings.

    Parameters
    ----------
    misfits : list of DataMisfit
    regularization : Regularization
    couplings : list of coupling terms (each already weighted by γ)
    beta : float
    """

    def __init__(
        self,
        misfits: list[DataMisfit],
        regularization: Regularization,
        couplings: list[Term],
        *,
        beta: float = 1.0,
    ) -> None:
        self.misfits = misfits
        self.regularization = regularization
        self.couplings = couplings
        self.beta = beta

    def terms(self, m: np.ndarray) -> dict[str, float]:
        """Value of every term by name (regularization without β)."""
        values = {t.name: t.value(m) for t in self.misfits}
        values[self.regularization.name] = self.regularization.value(m)
        values.update({t.name: t.value(m) for t in self.couplings})
        return values

    def value(self, m: np.ndarray) -> float:
        return self.total(self.terms(m))

    def total(self, terms: dict[str, float]) -> float:
        """Φ from the values returned by :meth:`terms`."""
        reg = self.regularization.name
        return sum(v for k, v in terms.items() if k != reg) + self.beta * terms[reg]

    def data_value(self, m: np.ndarray) -> float:
        return sum(t.value(m) for t in self.misfits)

    def gradient(self, m: np.ndarray) -> np.ndarray:
        g = self.beta * self.regularization.gradient(m)
        for t in [*self.misfits, *self.couplings]:
            g = g + t.gradient(m)
        return g

    def hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        h = self.beta * self.regularization.hessian_vec(m, v)
        for t in [*self.misfits, *self.couplings]:
            h = h + t.hessian_vec(m, v)
        return h

    def hessian_diagonal(self, m: np.ndarray) -> np.ndarray:
        """Diagonal of the GN Hessian (for preconditioning); terms without an
        explicit Jacobian contribute nothing."""
        d = self.beta * self.regularization.hessian_diagonal()
        for t in [*self.misfits, *self.couplings]:
            dt = t.hessian_diagonal(m) if hasattr(t, "hessian_diagonal") else None
            if dt is not None:
                d = d + dt
        return d

    def data_hessian_vec(self, m: np.ndarray, v: np.ndarray) -> np.ndarray:
        return sum(t.hessian_vec(m, v) for t in self.misfits)
