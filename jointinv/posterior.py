"""The linearised Gaussian posterior: prior factor, low-rank update, probing.

At a model m the Gauss-Newton Hessian of the objective is

    H = Σ_k J_kᵀW_kᵀW_kJ_k + P,      P = β·∇²R + Σ couplings' GN Hessians,

and for Gaussian noise H is the posterior precision: information adds up.
``P`` plays the prior precision (Γ_prior⁻¹). With ``P = S Sᵀ`` and the
prior-preconditioned data-misfit Hessian ``H̃ = S⁻¹ H_d S⁻ᵀ = W Λ Wᵀ``,

    Γ_post = H⁻¹ = P⁻¹ − V D Vᵀ,     V = S⁻ᵀ W,  D = Λ / (1 + Λ),

exact when every non-zero eigenvalue is kept. ``S`` is a banded Cholesky
factor of ``P`` after a reverse Cuthill-McKee ordering (on a 2D tensor mesh
the bandwidth is about twice the number of cells along the shorter side times
the number of properties), which also gives diag(P⁻¹) exactly (Takahashi's
recurrence) without forming any dense n × n matrix.

Everything here is plain linear algebra on numpy/scipy objects; the
problem-level assembly lives in :mod:`jointinv.diagnostics`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.sparse.csgraph import reverse_cuthill_mckee
from scipy.sparse.linalg import LinearOperator

from . import interrupt

#: Relative residual of the CG solves inside the resolution probing.
PROBE_CG_TOLERANCE = 1e-8


class PriorFactor:
    """``P = S Sᵀ`` for a sparse symmetric positive definite precision ``P``.

    ``S = Πᵀ L`` where ``Π`` is a reverse Cuthill-McKee permutation and ``L``
    the banded Cholesky factor of ``Π P Πᵀ``. Cost: n·b² to factor, 2·n·b per
    solve and right-hand side, n·b² for diag(P⁻¹) (b: bandwidth). The solves
    treat L as block bidiagonal with dense b × b blocks, so that many
    right-hand sides go through matrix-matrix products.

    Parameters
    ----------
    precision : sparse matrix, shape (n, n)
        Symmetric positive definite.

    Raises
    ------
    numpy.linalg.LinAlgError
        If ``precision`` is not positive definite.
    """

    def __init__(self, precision: sp.spmatrix) -> None:
        p = sp.csr_matrix(precision)
        self.matrix = p
        self.n = p.shape[0]
        self.perm = reverse_cuthill_mckee(p, symmetric_mode=True).astype(np.intp)
        permuted = sp.coo_matrix(p[self.perm][:, self.perm])
        self.bandwidth = int(np.max(np.abs(permuted.row - permuted.col), initial=0))
        band = np.zeros((self.bandwidth + 1, self.n))
        lower = permuted.row >= permuted.col
        rows, cols = permuted.row[lower], permuted.col[lower]
        band[rows - cols, cols] = permuted.data[lower]
        self.lower = sla.cholesky_banded(band, lower=True, check_finite=False)
        self._blocks = _bidiagonal_blocks(self.lower)

    def whiten(self, x: np.ndarray) -> np.ndarray:
        """``S⁻¹ x`` for ``x`` of shape (n,) or (n, k)."""
        y = np.asarray(x, dtype=float)[self.perm]
        return _forward(self._blocks, y.reshape(self.n, -1)).reshape(y.shape)

    def color(self, y: np.ndarray) -> np.ndarray:
        """``S⁻ᵀ y`` for ``y`` of shape (n,) or (n, k)."""
        y = np.asarray(y, dtype=float)
        out = np.empty_like(y)
        out[self.perm] = _backward(self._blocks, y.reshape(self.n, -1)).reshape(y.shape)
        return out

    def solve(self, x: np.ndarray) -> np.ndarray:
        """``P⁻¹ x``."""
        return self.color(self.whiten(x))

    def inverse_diagonal(self) -> np.ndarray:
        """diag(P⁻¹), exact, by Takahashi's recurrence on the band."""
        d = np.empty(self.n)
        d[self.perm] = banded_inverse_diagonal(self.lower)
        return d


@dataclass
class _Blocks:
    """A banded lower-triangular L cut into dense blocks of size s ≥ b:
    ``diag[i]`` = L[i-th block, i-th block], ``sub[i]`` = L[i-th, (i-1)-th]."""

    starts: list[int]
    diag: list[np.ndarray]
    sub: list[np.ndarray | None]


def _bidiagonal_blocks(lower: np.ndarray, min_size: int = 16) -> _Blocks:
    b, n = lower.shape[0] - 1, lower.shape[1]
    size = max(b, min_size)
    l_csr = sp.dia_matrix((lower, -np.arange(b + 1)), shape=(n, n)).tocsr()
    starts = list(range(0, n, size))
    ends = starts[1:] + [n]
    diag = [l_csr[s:e, s:e].toarray() for s, e in zip(starts, ends)]
    sub = [None] + [l_csr[s:e, p:s].toarray() for p, s, e in zip(starts, starts[1:], ends[1:])]
    return _Blocks(starts, diag, sub)


def _forward(blocks: _Blocks, x: np.ndarray) -> np.ndarray:
    """L⁻¹ x, block forward substitution."""
    out = np.empty_like(x)
    prev = None
    for start, d, s in zip(blocks.starts, blocks.diag, blocks.sub):
        interrupt.check()
        rows = slice(start, start + d.shape[0])
        rhs = x[rows] if prev is None else x[rows] - s @ prev
        prev = out[rows] = sla.solve_triangular(d, rhs, lower=True, check_finite=False)
    return out


def _backward(blocks: _Blocks, y: np.ndarray) -> np.ndarray:
    """L⁻ᵀ y, block back substitution."""
    out = np.empty_like(y)
    nxt = None
    for i in range(len(blocks.starts) - 1, -1, -1):
        interrupt.check()
        d = blocks.diag[i]
        rows = slice(blocks.starts[i], blocks.starts[i] + d.shape[0])
        rhs = y[rows] if nxt is None else y[rows] - blocks.sub[i + 1].T @ nxt
        nxt = out[rows] = sla.solve_triangular(d, rhs, lower=True, trans="T", check_finite=False)
    return out


def banded_inverse_diagonal(lower: np.ndarray) -> np.ndarray:
    """diag(A⁻¹) from the banded Cholesky factor ``L`` of ``A = L Lᵀ``.

    Takahashi's recurrence from the last index up: ``Z = A⁻¹`` satisfies
    ``Lᵀ Z = L⁻¹`` (lower triangular), so for ``j ≥ i``

        Z_ij = (δ_ij / L_ii − Σ_{k=i+1}^{i+b} L_ki Z_kj) / L_ii,

    which needs Z only inside the band. A dense window of Z that slides up the
    diagonal holds the entries in use; it is moved once every ``b`` steps.

    Parameters
    ----------
    lower : ndarray, shape (b + 1, n)
        LAPACK lower band storage, ``lower[i - j, j] = L[i, j]``.
    """
    b, n = lower.shape[0] - 1, lower.shape[1]
    if b == 0:
        return 1.0 / lower[0] ** 2
    size = 2 * b + 1
    win = np.zeros((size, size))  # Z[base + r, base + c]
    base = max(n - size, 0)
    out = np.empty(n)
    for i in range(n - 1, -1, -1):
        interrupt.check()
        if i < base:
            shift = min(base, b)
            keep = size - shift
            win[shift:, shift:] = win[:keep, :keep].copy()
            base -= shift
        w = min(b, n - 1 - i)
        r = i - base
        lii = lower[0, i]
        col = lower[1 : w + 1, i]
        z = -(win[r + 1 : r + 1 + w, r + 1 : r + 1 + w] @ col) / lii
        win[r, r + 1 : r + 1 + w] = z
        win[r + 1 : r + 1 + w, r] = z
        win[r, r] = out[i] = 1.0 / lii**2 - (col @ z) / lii
    return out


@dataclass
class LowRankUpdate:
    """The leading eigenpairs of the prior-preconditioned data-misfit Hessian.

    Attributes
    ----------
    eigenvalues : ndarray, shape (r,)
        λ of ``H̃ = S⁻¹ H_d S⁻ᵀ``, descending (dimensionless: data information
        relative to the prior's, along each direction).
    vectors : ndarray, shape (n, r)
        ``V = S⁻ᵀ W``; ``Vᵀ P V = I`` and ``H_d V ≈ P V Λ``.
    """

    eigenvalues: np.ndarray
    vectors: np.ndarray

    @property
    def rank(self) -> int:
        return len(self.eigenvalues)

    @property
    def weights(self) -> np.ndarray:
        """``D = λ / (1 + λ)``: the share of the prior variance removed along each vector."""
        return self.eigenvalues / (1.0 + self.eigenvalues)

    def variance_reduction(self) -> np.ndarray:
        """diag(V D Vᵀ): how much the data lower the variance of each parameter."""
        return np.einsum("ij,j,ij->i", self.vectors, self.weights, self.vectors)


class StackedJacobian:
    """Several weighted Jacobians ``W_k J_k`` seen as one, stacked by rows.

    Parameters
    ----------
    jacobians : sequence of LinearOperator
        Each of shape (n_data_k, n); ``matmat`` and ``rmatmat`` are used.
    """

    def __init__(self, jacobians: Sequence[LinearOperator]) -> None:
        self.parts = list(jacobians)
        self.sizes = [j.shape[0] for j in self.parts]
        self.n_data = sum(self.sizes)
        self.n = self.parts[0].shape[1]

    def matmat(self, x: np.ndarray) -> np.ndarray:
        return np.vstack([j.matmat(x) for j in self.parts])

    def rmatmat(self, y: np.ndarray) -> np.ndarray:
        out = np.zeros((self.n, y.shape[1]))
        start = 0
        for j, size in zip(self.parts, self.sizes):
            out += j.rmatmat(y[start : start + size])
            start += size
        return out

    def hessian_mat(self, x: np.ndarray) -> np.ndarray:
        """``H_d x = Σ_k J_kᵀW_k²J_k x`` for a block ``x`` (n, k)."""
        out = np.zeros_like(x, dtype=float)
        for j in self.parts:
            out += j.rmatmat(j.matmat(x))
        return out


def low_rank_update(
    jacobian: StackedJacobian,
    prior: PriorFactor,
    *,
    rank: int,
    oversampling: int = 10,
    power_iterations: int = 1,
    rng: np.random.Generator,
) -> LowRankUpdate:
    """Randomized eigendecomposition of the prior-preconditioned data-misfit Hessian.

    ``H̃ = Fᵀ F`` with ``F = Ĵ S⁻ᵀ`` (Ĵ: the stacked weighted Jacobians), so
    the eigenpairs come from a randomized SVD of F (Halko, Martinsson & Tropp
    2011, with ``power_iterations`` subspace iterations). The sample size is
    ``min(rank + oversampling, n_data, n)``; when it reaches ``n_data`` the
    range of ``Fᵀ`` is captured whole and the decomposition is exact.

    Parameters
    ----------
    jacobian : StackedJacobian
    prior : PriorFactor
    rank : int
        Number of eigenpairs kept (at most the sample size).
    oversampling, power_iterations : int
    rng : numpy.random.Generator

    Returns
    -------
    LowRankUpdate
    """
    k = min(rank + oversampling, jacobian.n_data, prior.n)
    if k == 0:
        return LowRankUpdate(np.zeros(0), np.zeros((prior.n, 0)))
    sample = rng.standard_normal((jacobian.n_data, k))
    q = _orthonormal(prior.whiten(jacobian.rmatmat(sample)))
    for _ in range(power_iterations if k < jacobian.n_data else 0):
        interrupt.check()
        z = _orthonormal(jacobian.matmat(prior.color(q)))
        q = _orthonormal(prior.whiten(jacobian.rmatmat(z)))
    colored = prior.color(q)
    _, sigma, xt = np.linalg.svd(jacobian.matmat(colored), full_matrices=False)
    keep = min(rank, len(sigma))
    return LowRankUpdate(sigma[:keep] ** 2, colored @ xt[:keep].T)


def _orthonormal(y: np.ndarray) -> np.ndarray:
    return sla.qr(np.asfortranarray(y), mode="economic", check_finite=False)[0]


def exact_update(whitened: np.ndarray, colored: np.ndarray, *, rank: int) -> LowRankUpdate:
    """The eigendecomposition of ``H̃ = F ᵀF`` computed in data space, then truncated.

    With ``Fᵀ = S⁻¹Ĵᵀ`` given column by column (one whitening solve per
    datum), ``F Fᵀ = U Λ Uᵀ`` is a small dense eigenproblem (n_data²) and the
    eigenvectors of H̃ are ``W = Fᵀ U Λ^(-1/2)``, so ``V = S⁻ᵀW = (S⁻ᵀFᵀ) U Λ^(-1/2)``.

    Parameters
    ----------
    whitened : ndarray (n, n_data)
        ``S⁻¹ Ĵᵀ``.
    colored : ndarray (n, n_data)
        ``S⁻ᵀ S⁻¹ Ĵᵀ = P⁻¹ Ĵᵀ``.
    rank : int
        Eigenpairs kept (numerically zero eigenvalues are dropped too).
    """
    lam, u = np.linalg.eigh(whitened.T @ whitened)
    order = np.argsort(lam)[::-1]
    floor = np.finfo(float).eps * max(lam.max(initial=0.0), 0.0) * len(lam)
    order = order[lam[order] > floor][:rank]
    lam = lam[order]
    return LowRankUpdate(lam, colored @ (u[:, order] / np.sqrt(lam)))


def solves_randomized(n_data: int, *, rank: int, oversampling: int, power_iterations: int) -> int:
    """Triangular solves (per right-hand side) that :func:`low_rank_update` needs."""
    k = min(rank + oversampling, n_data)
    return 2 * k if k >= n_data else (2 + 2 * power_iterations) * k


def decompose_all(
    jacobians: dict[str, LinearOperator],
    prior: PriorFactor,
    *,
    rank: int,
    oversampling: int = 10,
    power_iterations: int = 1,
    rng: np.random.Generator,
) -> dict[str, LowRankUpdate]:
    """The update of all data together (``"joint"``) and of each modality alone.

    Two ways, whichever needs fewer triangular solves: the randomized one per
    decomposition (:func:`low_rank_update`), or the exact one
    (:func:`exact_update`) from ``S⁻¹Ĵᵀ`` and ``P⁻¹Ĵᵀ``, computed once for all
    the data (2·n_data solves) and shared by every decomposition. Both keep at
    most ``rank`` eigenpairs.
    """
    sizes = {k: j.shape[0] for k, j in jacobians.items()}
    opts = dict(rank=rank, oversampling=oversampling, power_iterations=power_iterations)
    randomized = solves_randomized(sum(sizes.values()), **opts) + sum(
        solves_randomized(s, **opts) for s in sizes.values()
    )
    if 2 * sum(sizes.values()) > randomized:
        out = {
            "joint": low_rank_update(
                StackedJacobian(list(jacobians.values())), prior, **opts, rng=rng
            )
        }
        for k, j in jacobians.items():
            out[k] = low_rank_update(StackedJacobian([j]), prior, **opts, rng=rng)
        return out
    whitened = prior.whiten(_transposed(jacobians.values()))
    colored = prior.color(whitened)
    out = {"joint": exact_update(whitened, colored, rank=rank)}
    start = 0
    for k, size in sizes.items():
        cols = slice(start, start + size)
        out[k] = exact_update(whitened[:, cols], colored[:, cols], rank=rank)
        start += size
    return out


def _transposed(jacobians) -> np.ndarray:
    """``Ĵᵀ`` as a dense (n, n_data) array, Fortran order."""
    parts = [j.rmatmat(np.eye(j.shape[0])) for j in jacobians]
    return np.asfortranarray(np.hstack(parts))


class Posterior:
    """The linearised posterior ``N(m, H⁻¹)`` with ``H⁻¹ ≈ P⁻¹ − V D Vᵀ``.

    Parameters
    ----------
    prior : PriorFactor
        Factor of the prior precision ``P``.
    jacobian : StackedJacobian
        The weighted Jacobians whose information the update holds.
    update : LowRankUpdate
    """

    def __init__(
        self, prior: PriorFactor, jacobian: StackedJacobian, update: LowRankUpdate
    ) -> None:
        self.prior = prior
        self.jacobian = jacobian
        self.update = update

    def hessian_mat(self, x: np.ndarray) -> np.ndarray:
        """The Gauss-Newton Hessian ``H x = P x + H_d x`` (matrix-free), x (n, k)."""
        return self.prior.matrix @ x + self.jacobian.hessian_mat(x)

    def covariance_mat(self, x: np.ndarray) -> np.ndarray:
        """``Γ_post x ≈ P⁻¹ x − V D Vᵀ x`` for x (n, k)."""
        v, d = self.update.vectors, self.update.weights
        return self.prior.solve(x) - v @ (d[:, None] * (v.T @ x))

    def variance(self, prior_variance: np.ndarray | None = None) -> np.ndarray:
        """diag(Γ_post) (squared parameter units)."""
        if prior_variance is None:
            prior_variance = self.prior.inverse_diagonal()
        return prior_variance - self.update.variance_reduction()

    def resolution_low_rank(self) -> np.ndarray:
        """diag(V D Vᵀ P): the resolution matrix ``R = H⁻¹ H_d`` from the update alone."""
        v, d = self.update.vectors, self.update.weights
        return np.einsum("ij,j,ij->i", v, d, np.asarray(self.prior.matrix @ v))

    def resolution_diagonal(self, *, probes: int, rng: np.random.Generator) -> np.ndarray:
        """diag(R), ``R = H⁻¹ H_d`` (the linearised model resolution matrix).

        The low-rank part ``R_r = V D Vᵀ P`` is taken exactly; the rest,
        ``R − R_r``, by Hutchinson's diagonal estimator with ``probes``
        Rademacher vectors z: ``diag(A) ≈ mean(z ⊙ A z)``. Each probe needs one
        solve with H, by CG preconditioned with the low-rank posterior
        covariance. The estimate is unbiased for the exact diagonal; with
        ``probes = 0`` it is the low-rank one.
        """
        diag = self.resolution_low_rank()
        if probes <= 0:
            return diag
        z = rng.choice([-1.0, 1.0], size=(self.prior.n, probes))
        exact = block_cg(self.hessian_mat, self.covariance_mat, self.jacobian.hessian_mat(z))
        v, d = self.update.vectors, self.update.weights
        low = v @ (d[:, None] * (v.T @ (self.prior.matrix @ z)))
        return diag + np.mean(z * (exact - low), axis=1)


def block_cg(
    apply_a: Callable[[np.ndarray], np.ndarray],
    apply_m: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    rtol: float = PROBE_CG_TOLERANCE,
    max_iterations: int = 500,
) -> np.ndarray:
    """Preconditioned CG on every column of ``b`` at once (A and M SPD).

    The columns are independent CG runs advanced together, so the products
    with A and M are matrix-matrix products; converged columns stop moving.
    """
    x = np.zeros_like(b, dtype=float)
    r = np.array(b, dtype=float)
    norm_b = np.linalg.norm(b, axis=0)
    active = norm_b > 0
    z = apply_m(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    for _ in range(max_iterations):
        interrupt.check()
        if not active.any():
            break
        ap = apply_a(p)
        alpha = np.where(active, rz / np.where(active, np.einsum("ij,ij->j", p, ap), 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        active &= np.linalg.norm(r, axis=0) > rtol * norm_b
        z = apply_m(r)
        rz_new = np.einsum("ij,ij->j", r, z)
        beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
    return x
