"""The shared 2D model mesh.

Coordinates: ``x`` runs along the profile (m), ``z`` points **up** (m) with the
ground surface at ``z = 0``; the subsurface has ``z < 0``. The mesh is a
discretize :class:`~discretize.TensorMesh`: a core region of uniform cells and
padding cells whose size grows geometrically towards the left, right and
bottom. There is no padding above the surface. Cells are ordered with ``x``
fastest (discretize's convention), and every property of the joint model
lives on these cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import discretize
import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class MeshSpec:
    """Geometry of the model mesh (all lengths in m).

    Parameters
    ----------
    x_min, x_max : float
        Extent of the core region along the profile.
    depth : float
        Depth of the core region below the surface (positive).
    dx, dz : float
        Core cell width and height.
    n_pad_x, n_pad_z : int
        Number of padding cells on the left/right and at the bottom.
    pad_factor : float
        Growth factor of consecutive padding cells.
    """

    x_min: float
    x_max: float
    depth: float
    dx: float
    dz: float
    n_pad_x: int = 8
    n_pad_z: int = 8
    pad_factor: float = 1.4


def _padded_widths(h: float, n_pad: int, factor: float) -> np.ndarray:
    return h * factor ** np.arange(1, n_pad + 1)


class ModelMesh:
    """The 2D tensor mesh that carries every property of the joint model.

    Parameters
    ----------
    spec : MeshSpec
        Core extent, cell sizes and padding.
    """

    def __init__(self, spec: MeshSpec) -> None:
        self.spec = spec
        n_core_x = int(round((spec.x_max - spec.x_min) / spec.dx))
        n_core_z = int(round(spec.depth / spec.dz))
        pad_x = _padded_widths(spec.dx, spec.n_pad_x, spec.pad_factor)
        pad_z = _padded_widths(spec.dz, spec.n_pad_z, spec.pad_factor)
        hx = np.r_[pad_x[::-1], np.full(n_core_x, spec.dx), pad_x]
        hz = np.r_[pad_z[::-1], np.full(n_core_z, spec.dz)]
        origin = [spec.x_min - pad_x.sum(), -hz.sum()]
        self.tensor = discretize.TensorMesh([hx, hz], origin=origin)
        self.n_core_x = n_core_x
        self.n_core_z = n_core_z

    @classmethod
    def from_nodes(cls, nodes_x: np.ndarray, nodes_z: np.ndarray) -> ModelMesh:
        """Rebuild a mesh from its node coordinates (as stored in a result)."""
        self = cls.__new__(cls)
        nodes_x = np.asarray(nodes_x, dtype=float)
        nodes_z = np.asarray(nodes_z, dtype=float)
        self.tensor = discretize.TensorMesh(
            [np.diff(nodes_x), np.diff(nodes_z)], origin=[nodes_x[0], nodes_z[0]]
        )
        self.spec = None
        self.n_core_x = None
        self.n_core_z = None
        return self

    # --- geometry -----------------------------------------------------------
    @property
    def nodes_x(self) -> np.ndarray:
        """Node x coordinates (m), increasing (rounded to 1 nm)."""
        return np.round(self.tensor.nodes_x, 9)

    @property
    def nodes_z(self) -> np.ndarray:
        """Node z coordinates (m, up), increasing; the last one is the surface."""
        return np.round(self.tensor.nodes_y, 9)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of cells along x and z."""
        return (len(self.nodes_x) - 1, len(self.nodes_z) - 1)

    @property
    def n_cells(self) -> int:
        return self.tensor.n_cells

    @property
    def cell_centers(self) -> np.ndarray:
        """Cell centres, shape (n_cells, 2), columns x and z (m)."""
        return self.tensor.cell_centers

    @property
    def cell_areas(self) -> np.ndarray:
        """Cell areas (m²)."""
        return self.tensor.cell_volumes

    @cached_property
    def core_mask(self) -> np.ndarray:
        """True for cells inside the core region (uniform cells)."""
        x, z = self.cell_centers.T
        if self.spec is None:
            return np.ones(self.n_cells, dtype=bool)
        s = self.spec
        return (x > s.x_min) & (x < s.x_max) & (z > -s.depth)

    # --- difference operators ----------------------------------------------
    @cached_property
    def gradient_x(self) -> sp.csr_matrix:
        """Differences between x-neighbours divided by centre distance (1/m).

        One row per interior vertical face; rows are scaled by the square root
        of the face-centred area so that ``‖Dx m‖²`` approximates ``∫(∂x m)² dA``.
        """
        return _face_difference(self.tensor.h[0], self.tensor.h[1], axis=0)

    @cached_property
    def gradient_z(self) -> sp.csr_matrix:
        """As :attr:`gradient_x`, along z."""
        return _face_difference(self.tensor.h[1], self.tensor.h[0], axis=1)

    @cached_property
    def cell_gradient(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Central-difference gradient at cell centres (1/m), unweighted.

        Returns ``(Gx, Gz)``, each (n_cells, n_cells); one-sided at the edges.
        Used by the cross-gradient coupling.
        """
        hx, hz = self.tensor.h
        gx1 = _centre_gradient_1d(hx)
        gz1 = _centre_gradient_1d(hz)
        ix = sp.identity(len(hx), format="csr")
        iz = sp.identity(len(hz), format="csr")
        gx = sp.kron(iz, gx1, format="csr")
        gz = sp.kron(gz1, ix, format="csr")
        return gx, gz


def _face_difference(h_along: np.ndarray, h_across: np.ndarray, axis: int) -> sp.csr_matrix:
    n = len(h_along)
    dist = 0.5 * (h_along[:-1] + h_along[1:])
    d1 = sp.diags([-1.0 / dist, 1.0 / dist], [0, 1], shape=(n - 1, n))
    # area that each difference represents: distance × cell height across
    if axis == 0:
        op = sp.kron(sp.identity(len(h_across)), d1)
        area = np.outer(h_across, dist).ravel()
    else:
        op = sp.kron(d1, sp.identity(len(h_across)))
        area = np.outer(dist, h_across).ravel()
    return sp.csr_matrix(sp.diags(np.sqrt(area)) @ op)


def _centre_gradient_1d(h: np.ndarray) -> sp.csr_matrix:
    centres = np.r_[0.0, np.cumsum(0.5 * (h[:-1] + h[1:]))]
    n = len(h)
    rows, cols, vals = [], [], []
    for i in range(n):
        lo, hi = max(i - 1, 0), min(i + 1, n - 1)
        d = centres[hi] - centres[lo]
        rows += [i, i]
        cols += [hi, lo]
        vals += [1.0 / d, -1.0 / d]
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
