"""The model mesh as a pyGIMLi grid, with a checked cell correspondence."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pygimli as pg
from pygimli.core import logger as _pg_logger
from scipy.spatial import cKDTree

from ..maps import Transfer
from ..mesh import ModelMesh

# On import pyGIMLi adds a handler of its own to the *root* logger, so every log
# record of the host (the CLI's progress lines) would be printed twice.
logging.getLogger().removeHandler(_pg_logger.streamHandler)


@contextmanager
def quiet_pygimli() -> Iterator[None]:
    """Raise pyGIMLi's logger to WARNING for the duration of an engine call or set-up."""
    logger = logging.getLogger("pyGIMLi")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def build_pg_grid(mesh: ModelMesh, *, n_pad: int | None = None) -> tuple[pg.Mesh, Transfer]:
    """Build a pyGIMLi grid from the nodes of the model mesh.

    The top boundary (``z = 0``) gets marker -1 (Neumann, free surface), the
    others -2 (mixed boundary conditions), as pyGIMLi's ERT expects. Every
    cell gets marker 2 (one parameter region).

    Parameters
    ----------
    mesh : ModelMesh
    n_pad : int, optional
        Keep only this many padding cells left, right and below the core
        (engines that need no far boundary, e.g. traveltimes). Default: all.

    Returns
    -------
    grid : pygimli.Mesh
    transfer : Transfer
        Maps a property on model cells to pyGIMLi cells (a permutation, or a
        selection when padding is trimmed). The correspondence is found by
        matching cell centres, not assumed.
    """
    nodes_x, nodes_z = _trimmed_nodes(mesh, n_pad)
    grid = pg.createGrid(x=nodes_x, y=nodes_z, worldBoundaryMarker=True)
    grid.setCellMarkers(np.full(grid.cellCount(), 2))
    centers = np.array(grid.cellCenters())[:, :2]
    order = match_cells(centers, mesh.cell_centers, subset=n_pad is not None)
    return grid, Transfer.selection(order, mesh.n_cells)


def _trimmed_nodes(mesh: ModelMesh, n_pad: int | None) -> tuple[np.ndarray, np.ndarray]:
    nodes_x, nodes_z = mesh.nodes_x, mesh.nodes_z
    if n_pad is None or mesh.spec is None:
        return nodes_x, nodes_z
    keep_x = mesh.spec.n_pad_x - min(n_pad, mesh.spec.n_pad_x)
    keep_z = mesh.spec.n_pad_z - min(n_pad, mesh.spec.n_pad_z)
    return nodes_x[keep_x : len(nodes_x) - keep_x], nodes_z[keep_z:]


def match_cells(
    engine_centers: np.ndarray, model_centers: np.ndarray, *, subset: bool = False
) -> np.ndarray:
    """Index ``order`` with ``engine_centers[i] == model_centers[order[i]]``.

    Parameters
    ----------
    subset : bool
        Allow the engine to have fewer cells than the model (each engine
        cell must still match one model cell, no two the same).

    Raises
    ------
    ValueError
        When the two sets of centres do not coincide (within 1e-6 of the
        smallest cell size).
    """
    same = engine_centers.shape == model_centers.shape
    if not same and not (subset and len(engine_centers) < len(model_centers)):
        raise ValueError("engine and model meshes have different cell counts")
    # nearest model centre of each engine centre (a lexsort on (z, x) would scramble a
    # row whose z values differ by round-off)
    _, order = cKDTree(model_centers).query(engine_centers)
    gap = np.abs(engine_centers - model_centers[order]).max()
    scale = np.abs(np.diff(np.unique(model_centers[:, 0]))).min()
    if gap > 1e-6 * scale or len(np.unique(order)) != len(order):
        raise ValueError(f"engine cells do not match model cells (gap {gap:g} m)")
    return order
