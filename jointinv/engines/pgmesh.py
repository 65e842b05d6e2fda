"""The model mesh as a pyGIMLi grid, with a checked cell correspondence."""

from __future__ import annotations

import numpy as np
import pygimli as pg
from scipy.spatial import cKDTree

from ..maps import Transfer
from ..mesh import ModelMesh


def build_pg_grid(mesh: ModelMesh) -> tuple["pg.Mesh", Transfer]:
    """Build a pyGIMLi grid from the nodes of the model mesh.

    The top boundary (``z = 0``) gets marker -1 (Neumann, free surface), the
    others -2 (mixed boundary conditions), as pyGIMLi's ERT expects. Every
    cell gets marker 2 (one parameter region).

    Returns
    -------
    grid : pygimli.Mesh
    transfer : Transfer
        Maps a property on model cells to pyGIMLi cell order. The
        correspondence is found by matching cell centres, not assumed.
    """
    grid = pg.createGrid(x=mesh.nodes_x, y=mesh.nodes_z, worldBoundaryMarker=True)
    grid.setCellMarkers(np.full(grid.cellCount(), 2))
    order = match_cells(np.array(grid.cellCenters())[:, :2], mesh.cell_centers)
    return grid, Transfer.permutation(order)


def match_cells(engine_centers: np.ndarray, model_centers: np.ndarray) -> np.ndarray:
    """Index ``order`` with ``engine_centers[i] == model_centers[order[i]]``.

    Raises
    ------
    ValueError
        When the two sets of centres do not coincide (within 1e-6 of the
        smallest cell size).
    """
    if engine_centers.shape != model_centers.shape:
        raise ValueError("engine and model meshes have different cell counts")
    # nearest model centre of each engine centre (a lexsort on (z, x) would scramble a
    # row whose z values differ by round-off)
    _, order = cKDTree(model_centers).query(engine_centers)
    gap = np.abs(engine_centers - model_centers[order]).max()
    scale = np.abs(np.diff(np.unique(model_centers[:, 0]))).min()
    if gap > 1e-6 * scale or len(np.unique(order)) != len(order):
        raise ValueError(f"engine cells do not match model cells (gap {gap:g} m)")
    return order
