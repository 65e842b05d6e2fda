"""2D gravity of the profile (infinite strike along y), via pyGIMLi.

Conventions
-----------
* Coordinates as in :mod:`jointinv.mesh`: ``x`` along the profile (m), ``z``
  **up** (m), the surface at the top of the mesh (``z = 0``).
* Data: the vertical attraction ``gz`` in **mGal** (1 mGal = 1e-5 m/s²),
  **positive downwards**, i.e. positive for excess mass below the station
  (a positive density contrast under a station gives ``gz > 0``; a station
  below a positive contrast sees ``gz < 0``).
* Model: density **contrast** in **g/cm³** (1 g/cm³ = 1000 kg/m³) per model
  cell, in the model mesh's cell order (x fastest).

Engine
------
Each model cell is a rectangle of infinite strike; its exact 2D field is the
Won & Bevis (1987) line integral (Talwani's polygon method) around its four
edges, evaluated by pyGIMLi's C++ routine ``pg.core.lineIntegralZ_WonBevis``.
The assembly reproduces the kernel branch of
:func:`pygimli.physics.gravimetry.solveGravimetry` (``dDensity=None``, 2D):
every edge of the pyGIMLi grid is integrated once per station and added to
its left cell and subtracted from its right cell, with the factor ``-2 G``
(pyGIMLi's ``GmGal`` = :data:`GRAVITATIONAL_CONSTANT` × 1e5, in mGal·m²/kg). Only the
Python-level bookkeeping is leaner (edge table and node-position references
built once, not per station), which makes the kernel several times faster
than calling ``solveGravimetry``. pyGIMLi's result is already in our
sign convention (the 2D grid's second coordinate is our ``z`` up) and in
mGal per kg/m³; it is scaled by 1000 to mGal per g/cm³.

The problem is linear, so the kernel (``n_data × n_cells``) is computed once
and forward, ``jvec`` and ``jtvec`` are matrix products.
"""

from __future__ import annotations

import logging

import numpy as np
import pygimli as pg

from ..errors import EngineError
from ..maps import Transfer
from ..mesh import ModelMesh
from ..operators import EngineClock
from .pgmesh import build_pg_grid

logger = logging.getLogger(__name__)

#: Gravitational constant used by pyGIMLi (m³ kg⁻¹ s⁻²).
GRAVITATIONAL_CONSTANT: float = pg.physics.constants.GmGal * 1e-5

#: kg/m³ per g/cm³.
_KG_M3_PER_G_CM3 = 1000.0


class GravitySimulation:
    """2D gravity (infinite strike along y) of the profile.

    Computes ``gz`` in mGal at stations from the density contrast in g/cm³
    of each model cell. ``gz`` is positive downwards: a positive contrast
    below a station gives a positive ``gz``.

    Parameters
    ----------
    mesh : ModelMesh
        The model mesh; the kernel has one column per model cell.
    stations : numpy.ndarray, shape (n, 2)
        Station ``x`` and ``z`` (m, ``z`` up). Stations are expected at or
        above the surface; one below it is accepted (the kernel stays
        finite) but logged as a warning.

    Attributes
    ----------
    n_data : int
        Number of stations.
    n_params : int
        Number of model cells.
    clock : EngineClock
        Time of the kernel build (``jacobian``) and of forward calls.
    transfer : Transfer
        Identity: the simulation works on the model cells directly.
    kernel : numpy.ndarray, shape (n_data, n_params)
        ``∂gz/∂Δρ`` in mGal per (g/cm³).
    """

    def __init__(self, mesh: ModelMesh, stations: np.ndarray) -> None:
        self.stations = _check_stations(stations)
        _warn_buried(self.stations, mesh.surface_elevation(self.stations[:, 0]))
        self.n_data = len(self.stations)
        self.n_params = mesh.n_cells
        self.clock = EngineClock()
        self.transfer = Transfer.permutation(np.arange(self.n_params))
        with self.clock("jacobian"):
            self.kernel = _model_kernel(mesh, self.stations)

    def forward(self, density_contrast: np.ndarray) -> np.ndarray:
        """Vertical attraction at the stations.

        Parameters
        ----------
        density_contrast : numpy.ndarray, shape (n_params,)
            Density contrast per model cell (g/cm³).

        Returns
        -------
        numpy.ndarray, shape (n_data,)
            ``gz`` (mGal, positive downwards).
        """
        with self.clock("forward"):
            return self.kernel @ self._check_model(density_contrast)

    def jacobian(self, density_contrast: np.ndarray) -> np.ndarray:
        """The kernel (mGal per g/cm³), shape (n_data, n_params); independent of the model."""
        return self.kernel

    def jvec(self, density_contrast: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Kernel times ``v`` (g/cm³ → mGal); independent of the model."""
        self._check_model(density_contrast)
        return self.kernel @ self._check_model(v)

    def jtvec(self, density_contrast: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Kernel transpose times ``w`` (mGal → mGal per g/cm³ sensitivities)."""
        self._check_model(density_contrast)
        w = np.asarray(w, dtype=float)
        if w.shape != (self.n_data,):
            raise ValueError(f"expected {self.n_data} data values, got shape {w.shape}")
        return self.kernel.T @ w

    def _check_model(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        if p.shape != (self.n_params,):
            raise ValueError(f"expected {self.n_params} cell values, got shape {p.shape}")
        return p


def _check_stations(stations: np.ndarray) -> np.ndarray:
    stations = np.asarray(stations, dtype=float)
    if stations.ndim != 2 or stations.shape[1] != 2 or len(stations) == 0:
        raise ValueError(f"stations must have shape (n, 2), got {stations.shape}")
    if not np.all(np.isfinite(stations)):
        raise ValueError("station coordinates must be finite")
    return stations


def _warn_buried(stations: np.ndarray, surface: np.ndarray) -> None:
    """Log stations below the ground surface (``surface``: its elevation at each station, m)."""
    below = stations[:, 1] < surface - 1e-9
    if below.any():
        i = int(np.flatnonzero(below)[0])
        logger.warning(
            "%d gravity station(s) lie below the surface, e.g. at x=%g m, z=%g m "
            "(surface at %g m)",
            int(below.sum()),
            *stations[i],
            surface[i],
        )


def _model_kernel(mesh: ModelMesh, stations: np.ndarray) -> np.ndarray:
    """Kernel in mGal per (g/cm³), columns in model-cell order."""
    grid, to_grid = build_pg_grid(mesh)
    kernel_grid = grid_kernel(grid, stations)
    if not np.all(np.isfinite(kernel_grid)):
        raise EngineError("pyGIMLi gravity kernel contains non-finite values")
    # d = K_grid p_grid = K_grid P p_model  ->  K_model = K_grid P
    kernel = np.asarray((to_grid.matrix.T @ kernel_grid.T).T)
    return kernel * _KG_M3_PER_G_CM3


def grid_kernel(grid: pg.Mesh, stations: np.ndarray) -> np.ndarray:
    """pyGIMLi's 2D gravity kernel of a grid, as ``solveGravimetry(grid, None, stations)``.

    Parameters
    ----------
    grid : pygimli.Mesh
        2D mesh, second coordinate up (m). It is translated to each station
        and back, as in ``solveGravimetry``.
    stations : numpy.ndarray, shape (n, 2)
        Station positions (m).

    Returns
    -------
    numpy.ndarray, shape (n, grid.cellCount())
        ``gz`` in mGal per (kg/m³), in pyGIMLi cell order.
    """
    grid.createNeighborInfos()
    edges, left, right = _edge_table(grid)
    # references to the node positions: they follow grid.translate()
    nodes = [node.pos() for node in grid.nodes()]
    factor = -2.0 * pg.physics.constants.GmGal
    kernel = np.zeros((len(stations), grid.cellCount()))
    for row, (x, z) in zip(kernel, stations, strict=True):
        shift = pg.RVector3(x, z, 0.0)
        grid.translate(-shift)
        try:
            dg = factor * _edge_integrals(nodes, edges)
        finally:
            grid.translate(shift)
        np.add.at(row, left[left >= 0], dg[left >= 0])
        np.subtract.at(row, right[right >= 0], dg[right >= 0])
    return kernel


def _edge_table(grid: pg.Mesh) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Node ids of each boundary and its left/right cell ids (-1 for none)."""
    edges, left, right = [], [], []
    for b in grid.boundaries():
        edges.append((b.node(0).id(), b.node(1).id()))
        left.append(b.leftCell().id() if b.leftCell() else -1)
        right.append(b.rightCell().id() if b.rightCell() else -1)
    return edges, np.array(left, dtype=int), np.array(right, dtype=int)


def _edge_integrals(nodes: list, edges: list[tuple[int, int]]) -> np.ndarray:
    """Won & Bevis line integral of every edge (node positions relative to the station)."""
    line_integral = pg.core.lineIntegralZ_WonBevis
    return np.fromiter(
        (line_integral(nodes[a], nodes[b]) for a, b in edges), dtype=float, count=len(edges)
    )
