"""The shared 2D model mesh.

Coordinates: ``x`` runs along the profile (m), ``z`` points **up** (m). Without
topography the ground surface is ``z = 0`` and the subsurface has ``z < 0``.
With topography ``z`` is the elevation (absolute elevations such as 540 m
work), the ground surface is a polyline through the sensors, and cells whose
centre lies above it are *inactive*: they are left out of the model vector,
the regularization and the couplings.

The mesh is a discretize :class:`~discretize.TensorMesh`: a core region of
uniform cells and padding cells whose size grows geometrically towards the
left, right and bottom. There is no padding above the surface. On a flat
surface every electrode and geophone must be a node (the ERT and traveltime
engines work on these nodes): when one is off the uniform grid, the core is
divided at the sensors instead, each interval into equal cells as close to the
cell size as its length allows (:attr:`MeshSpec.nodes_at_x`). Cells are
ordered with ``x`` fastest (discretize's convention); every property of the
joint model lives on the active cells, in that order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property

import discretize
import numpy as np
import scipy.sparse as sp

from .errors import UserInputError

#: Default limit on the number of cells of the model mesh (core and padding, active or
#: not), checked from the config before anything is allocated.
MAX_CELLS = 2_000_000
#: Environment variable that overrides :data:`MAX_CELLS` (a positive integer).
MAX_CELLS_ENV = "JOINTINV_MAX_CELLS"
#: Positions closer than this (m) to a node, or to each other, share that node.
NODE_TOLERANCE = 1e-3


def max_cells() -> int:
    """The cell limit: ``$JOINTINV_MAX_CELLS`` when set, else :data:`MAX_CELLS`."""
    text = os.environ.get(MAX_CELLS_ENV, "").strip()
    if not text:
        return MAX_CELLS
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise UserInputError(f"{MAX_CELLS_ENV}={text!r}: must be a positive integer (cells)")
    return value


class MeshTooLarge(ValueError):
    """The mesh of a spec would have more cells than :func:`max_cells` allows.

    ``field`` is the config field to change: ``mesh.padding`` when the padding cells
    outnumber the core cells, else ``mesh.cell_size``.
    """

    def __init__(self, spec: MeshSpec, relief: float | None, limit: int) -> None:
        core_x, core_z = spec.core_shape(relief)
        n_cells = spec.n_cells(relief)
        self.n_cells = n_cells
        self.field = "mesh.padding" if n_cells > 2 * core_x * core_z else "mesh.cell_size"
        over = "" if relief is None else f" under a surface relief of {relief:g} m"
        super().__init__(
            f"the mesh would have {_count(n_cells)} cells (core {_count(core_x)} x "
            f"{_count(core_z)} cells of {spec.dx:g} x {spec.dz:g} m{over}; padding "
            f"{spec.n_pad_x:,} cells left and right, {spec.n_pad_z:,} below), more than the "
            f"limit of {limit:,} ({MAX_CELLS_ENV} raises it); use larger mesh.cell_size, a "
            f"smaller mesh.core or fewer mesh.padding cells"
        )


def _count(n: float) -> str:
    """A cell count for a message: 1,234,567 (or 1.2e+30 when absurd)."""
    return f"{n:,.0f}" if n < 1e15 else f"{n:.3g}"


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
    nodes_at_x, nodes_at_z : tuple of float
        Positions that must be nodes of a flat mesh's core: the electrodes' and
        geophones' x (m) and z (m, up, surface at 0). When one is off the uniform
        grid (by more than :data:`NODE_TOLERANCE`), that axis of the core runs
        exactly from ``x_min`` to ``x_max`` (0 to ``-depth``) with a node at every
        one of them, each interval divided into ``round(length / dx)`` (at least
        one) equal cells. Positions outside the core are ignored.
    """

    x_min: float
    x_max: float
    depth: float
    dx: float
    dz: float
    n_pad_x: int = 8
    n_pad_z: int = 8
    pad_factor: float = 1.4
    nodes_at_x: tuple[float, ...] = ()
    nodes_at_z: tuple[float, ...] = ()

    def segments(self, relief: float | None = None) -> tuple[Segments, Segments]:
        """The core's intervals along x (m from ``x_min``) and z (m below the top).
        With topography (``relief``: the surface's relief, m) z is uniform down to
        ``depth`` below the lowest point of the surface."""
        x = _segments(self.x_max - self.x_min, self.dx, np.subtract(self.nodes_at_x, self.x_min))
        if relief is None:
            return x, _segments(self.depth, self.dz, np.negative(self.nodes_at_z))
        with np.errstate(over="ignore"):
            n_z = float(np.ceil((relief + self.depth) / self.dz - 1e-9))
        return x, Segments(np.array([n_z * self.dz]), np.array([n_z]), np.array([self.dz]))

    def core_shape(self, relief: float | None = None) -> tuple[float, float]:
        """Core cells along x and z; ``relief`` (m): the surface's relief with
        topography (the core reaches ``depth`` below its lowest point), None when
        flat. Floats, so that an absurd spec gives inf rather than an overflow."""
        x, z = self.segments(relief)
        return float(x.counts.sum()), float(z.counts.sum())

    def n_cells(self, relief: float | None = None) -> float:
        """Cells of the mesh, core and padding (active or not), without allocating it."""
        core_x, core_z = self.core_shape(relief)
        pad_x, pad_z = (float(n) if n < 1e300 else np.inf for n in (self.n_pad_x, self.n_pad_z))
        return (core_x + 2.0 * pad_x) * (core_z + pad_z)

    def check_size(self, relief: float | None = None) -> None:
        """Raise :class:`MeshTooLarge` when the mesh would exceed :func:`max_cells`."""
        limit = max_cells()
        if not self.n_cells(relief) <= limit:  # also catches inf and nan
            raise MeshTooLarge(self, relief, limit)


@dataclass(frozen=True)
class Segments:
    """One core axis as intervals of equal cells (m from the axis start)."""

    ends: np.ndarray  # where each interval ends (m)
    counts: np.ndarray  # cells per interval (float: inf for an absurd spec)
    widths: np.ndarray  # cell width in each interval (m)

    def cell_widths(self) -> np.ndarray:
        """Every cell's width (m), from the start; allocates them (check the size first)."""
        return np.repeat(self.widths, self.counts.astype(int))


def _segments(length: float, h: float, anchors: np.ndarray) -> Segments:
    """The intervals of one core axis of ``length`` (m) and cell size ``h`` (m).

    Uniform (one interval of ``round(length / h)`` cells of ``h``) unless an anchor
    (m from the start; those outside ``(0, length]`` are ignored) is more than
    :data:`NODE_TOLERANCE` off that grid: then the intervals end at every anchor and at
    ``length``, each with ``round(its length / h)`` equal cells, at least one."""
    with np.errstate(over="ignore", invalid="ignore"):
        n = float(np.round(length / h))
        a = np.sort(np.asarray(anchors, dtype=float))
        a = a[(a > NODE_TOLERANCE) & (a <= length + NODE_TOLERANCE)]
        a = np.where(a >= length - NODE_TOLERANCE, length, a)
        a = a[np.r_[True, np.diff(a) > NODE_TOLERANCE]] if a.size else a
        off_grid = np.abs(a - np.round(a / h) * h) > NODE_TOLERANCE
    if not off_grid.any():
        return Segments(np.array([n * h]), np.array([n]), np.array([h]))
    ends = np.r_[a[a < length], length]
    counts = np.maximum(1.0, np.round(np.diff(ends, prepend=0.0) / h))
    return Segments(ends, counts, np.diff(ends, prepend=0.0) / counts)


def _padded_widths(h: float, n_pad: int, factor: float) -> np.ndarray:
    return h * factor ** np.arange(1, n_pad + 1)


class ModelMesh:
    """The 2D tensor mesh that carries every property of the joint model.

    Parameters
    ----------
    spec : MeshSpec
        Core extent, cell sizes and padding. With topography ``spec.depth``
        is measured below the *lowest* point of the surface.
    surface : ndarray, shape (n, 2), optional
        Ground surface polyline ``x, z`` (m, z = elevation), increasing in
        ``x``; constant beyond its ends. None: flat surface at ``z = 0``.

    Attributes
    ----------
    tensor : discretize.TensorMesh
        All cells, active or not.
    active : ndarray of bool, shape (tensor.n_cells,)
        True for cells whose centre lies below the surface (all True when flat).
    """

    def __init__(self, spec: MeshSpec, surface: np.ndarray | None = None) -> None:
        self.spec = spec
        self.surface = None if surface is None else _checked_surface(surface)
        top, relief = 0.0, None
        if self.surface is not None:
            top = float(self.surface[:, 1].max())
            relief = top - float(self.surface[:, 1].min())
        spec.check_size(relief)  # before allocating anything
        seg_x, seg_z = spec.segments(relief)
        core_x, core_z = seg_x.cell_widths(), seg_z.cell_widths()  # z: top down
        pad_x = _padded_widths(spec.dx, spec.n_pad_x, spec.pad_factor)
        pad_z = _padded_widths(spec.dz, spec.n_pad_z, spec.pad_factor)
        hx = np.r_[pad_x[::-1], core_x, pad_x]
        hz = np.r_[pad_z[::-1], core_z[::-1]]
        origin = [spec.x_min - pad_x.sum(), top - hz.sum()]
        self.tensor = discretize.TensorMesh([hx, hz], origin=origin)
        self.n_core_x = len(core_x)
        self.n_core_z = len(core_z)
        self._core_bottom = top - seg_z.ends[-1]
        centres = self.tensor.cell_centers
        self.active = centres[:, 1] < self.surface_elevation(centres[:, 0])

    @classmethod
    def from_nodes(
        cls, nodes_x: np.ndarray, nodes_z: np.ndarray, active: np.ndarray | None = None
    ) -> ModelMesh:
        """Rebuild a mesh from its node coordinates (and active cells) as stored in a result."""
        self = cls.__new__(cls)
        nodes_x = np.asarray(nodes_x, dtype=float)
        nodes_z = np.asarray(nodes_z, dtype=float)
        self.tensor = discretize.TensorMesh(
            [np.diff(nodes_x), np.diff(nodes_z)], origin=[nodes_x[0], nodes_z[0]]
        )
        self.spec = None
        self.surface = None
        self.n_core_x = None
        self.n_core_z = None
        n = self.tensor.n_cells
        self.active = np.ones(n, bool) if active is None else np.asarray(active, bool).ravel()
        return self

    # --- geometry -----------------------------------------------------------
    @property
    def has_topography(self) -> bool:
        return self.surface is not None

    def surface_elevation(self, x: np.ndarray) -> np.ndarray:
        """Elevation of the ground surface (m) at ``x`` (m); 0 without topography."""
        x = np.asarray(x, dtype=float)
        if self.surface is None:
            return np.zeros_like(x)
        return np.interp(x, self.surface[:, 0], self.surface[:, 1])

    @property
    def nodes_x(self) -> np.ndarray:
        """Node x coordinates (m), increasing (rounded to 1 nm)."""
        return np.round(self.tensor.nodes_x, 9)

    @property
    def nodes_z(self) -> np.ndarray:
        """Node z coordinates (m, up), increasing; the last one is the top of the mesh."""
        return np.round(self.tensor.nodes_y, 9)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of cells along x and z (active or not)."""
        return (len(self.nodes_x) - 1, len(self.nodes_z) - 1)

    @property
    def n_cells(self) -> int:
        """Number of active cells: the length of one property in the model vector."""
        return int(np.count_nonzero(self.active))

    @property
    def cell_centers(self) -> np.ndarray:
        """Centres of the active cells, shape (n_cells, 2), columns x and z (m)."""
        return self.tensor.cell_centers[self.active]

    @property
    def cell_areas(self) -> np.ndarray:
        """Areas of the active cells (m²)."""
        return self.tensor.cell_volumes[self.active]

    @cached_property
    def depth_below_surface(self) -> np.ndarray:
        """Depth of each active cell centre below the ground surface (m, positive)."""
        x, z = self.cell_centers.T
        return self.surface_elevation(x) - z

    @property
    def core_cell_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Widths (m, left to right) and heights (m, bottom up) of the core cells."""
        hx, hz = self.tensor.h
        pad_x, pad_z = self.spec.n_pad_x, self.spec.n_pad_z
        return hx[pad_x : pad_x + self.n_core_x], hz[pad_z : pad_z + self.n_core_z]

    @cached_property
    def core_mask(self) -> np.ndarray:
        """True for active cells inside the core region (uniform cells)."""
        x, z = self.cell_centers.T
        if self.spec is None:
            return np.ones(self.n_cells, dtype=bool)
        s = self.spec
        return (x > s.x_min) & (x < s.x_max) & (z > self._core_bottom)

    def full(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Values on active cells spread onto every tensor cell (``fill`` in the air)."""
        values = np.asarray(values)
        dtype = bool if values.dtype == bool else np.result_type(values, float)
        out = np.full(self.tensor.n_cells, fill, dtype=dtype)
        out[self.active] = values
        return out

    # --- difference operators ----------------------------------------------
    @cached_property
    def gradient_x(self) -> sp.csr_matrix:
        """Differences between x-neighbours divided by centre distance (1/m).

        One row per vertical face between two active cells; rows are scaled
        by the square root of the face-centred area so that ``‖Dx m‖²``
        approximates ``∫(∂x m)² dA`` over the ground.
        """
        full = _face_difference(self.tensor.h[0], self.tensor.h[1], axis=0)
        return self._restrict_faces(full)

    @cached_property
    def gradient_z(self) -> sp.csr_matrix:
        """As :attr:`gradient_x`, along z."""
        full = _face_difference(self.tensor.h[1], self.tensor.h[0], axis=1)
        return self._restrict_faces(full)

    def _restrict_faces(self, full: sp.csr_matrix) -> sp.csr_matrix:
        if self.active.all():
            return full
        both = (abs(full) > 0).astype(int) @ self.active.astype(int) == 2
        return sp.csr_matrix(full[both][:, self.active])

    @cached_property
    def cell_gradient(self) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Gradient at active cell centres (1/m), unweighted.

        Returns ``(Gx, Gz)``, each (n_cells, n_cells): central differences,
        one-sided where a neighbour is missing or inactive, zero where both
        are. Used by the cross-gradient coupling.
        """
        hx, hz = self.tensor.h
        grid = self.active.reshape(len(hz), len(hx))
        gx = _centre_gradient(hx, grid)
        gz = _centre_gradient(hz, grid.T, transposed=True)
        keep = self.active
        return sp.csr_matrix(gx[keep][:, keep]), sp.csr_matrix(gz[keep][:, keep])


def _checked_surface(surface: np.ndarray) -> np.ndarray:
    surface = np.asarray(surface, dtype=float)
    if surface.ndim != 2 or surface.shape[1] != 2 or len(surface) < 2:
        raise ValueError(f"surface must have shape (n>=2, 2), got {surface.shape}")
    if not np.all(np.isfinite(surface)) or np.any(np.diff(surface[:, 0]) <= 0):
        raise ValueError("surface x must be finite and strictly increasing")
    return surface


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


def _centre_gradient(h: np.ndarray, active: np.ndarray, transposed: bool = False) -> sp.csr_matrix:
    """Derivative along the last axis of ``active`` (rows, n) at cell centres.

    ``h`` are the cell sizes along that axis. Each cell differences its two
    active neighbours (central), or itself and its one active neighbour
    (one-sided); the row is empty when it has none. Cells are numbered
    x-fastest on the full grid (``transposed``: ``active`` is (nx, nz)).
    """
    centres = np.r_[0.0, np.cumsum(0.5 * (h[:-1] + h[1:]))]
    rows_n, n = active.shape
    i = np.arange(n)[None, :].repeat(rows_n, axis=0)
    r = np.arange(rows_n)[:, None].repeat(n, axis=1)
    left_ok = np.zeros_like(active)
    left_ok[:, 1:] = active[:, :-1]
    right_ok = np.zeros_like(active)
    right_ok[:, :-1] = active[:, 1:]
    lo = np.where(left_ok, i - 1, i)
    hi = np.where(right_ok, i + 1, i)
    use = active & (hi != lo)
    d = centres[hi[use]] - centres[lo[use]]

    def flat(row: np.ndarray, col: np.ndarray) -> np.ndarray:
        return col * rows_n + row if transposed else row * n + col

    rr, ii = r[use], i[use]
    row_idx = np.r_[flat(rr, ii), flat(rr, ii)]
    col_idx = np.r_[flat(rr, hi[use]), flat(rr, lo[use])]
    vals = np.r_[1.0 / d, -1.0 / d]
    size = rows_n * n
    return sp.csr_matrix((vals, (row_idx, col_idx)), shape=(size, size))
