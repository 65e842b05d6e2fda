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
    all_centers = mesh.tensor.cell_centers
    order = match_cells(centers, all_centers, subset=n_pad is not None)
    select = Transfer.selection(order, len(all_centers)).matrix
    # inactive (air) cells carry no property: their grid cells get 0
    return grid, Transfer(select[:, mesh.active])


def build_pg_topo_mesh(
    mesh: ModelMesh,
    *,
    max_cell_area: float,
    margin_x: float,
    bottom: float,
    quality: float = 33.0,
) -> tuple[pg.Mesh, Transfer]:
    """A triangle mesh below the ground surface of ``mesh``, for the engines.

    The surface is the model mesh's surface polyline (every sensor is one of
    its vertices, hence a node of this mesh), continued horizontally for
    ``margin_x`` beyond the core on either side. Triangles in the core are at
    most ``max_cell_area``; outside they grow freely (pyGIMLi/Triangle
    quality ``quality``). Surface boundaries get marker -1 (free surface),
    the others -2 (mixed conditions), as pyGIMLi's ERT expects; every cell
    gets marker 2 (one parameter per cell).

    Parameters
    ----------
    mesh : ModelMesh
        A model mesh with topography.
    max_cell_area : float
        Largest triangle in the core region (m²).
    margin_x : float
        Horizontal extent of the mesh beyond the core, each side (m).
    bottom : float
        Elevation of the bottom of the mesh (m).

    Returns
    -------
    tri : pygimli.Mesh
    transfer : Transfer
        Each triangle takes the property of the active model cell that contains
        its centroid (of the nearest active cell when the centroid lies in an
        air cell or outside the model mesh).
    """
    spec = mesh.spec
    surf = mesh.surface
    x0, x1 = spec.x_min - margin_x, spec.x_max + margin_x
    left = [(x0, float(mesh.surface_elevation(x0)))] if x0 < surf[0, 0] else []
    right = [(x1, float(mesh.surface_elevation(x1)))] if x1 > surf[-1, 0] else []
    inside = surf[(surf[:, 0] >= x0) & (surf[:, 0] <= x1)]
    top = left + [tuple(p) for p in inside] + right
    world = pg.meshtools.createPolygon(
        top + [(top[-1][0], bottom), (top[0][0], bottom)],
        isClosed=True,
        marker=1,
        markerPosition=[top[0][0] + 1e-3 * margin_x, bottom + 1e-3 * margin_x],
    )
    core_bottom = mesh._core_bottom
    box = [
        (spec.x_min, float(mesh.surface_elevation(spec.x_min))),
        (spec.x_min, core_bottom),
        (spec.x_max, core_bottom),
        (spec.x_max, float(mesh.surface_elevation(spec.x_max))),
    ]
    plc = world + pg.meshtools.createPolygon(box, isClosed=False)
    plc.addRegionMarker([0.5 * (spec.x_min + spec.x_max), core_bottom + 1e-3], 2, max_cell_area)
    _refine_below_sensors(plc, inside, depth=0.25 * min(spec.dx, spec.dz))
    with quiet_pygimli():
        tri = pg.meshtools.createMesh(plc, quality=quality)
    _mark_boundaries(tri, mesh)
    tri.setCellMarkers(np.full(tri.cellCount(), 2))
    centroids = np.array(tri.cellCenters())[:, :2]
    return tri, Transfer.selection(containing_active_cell(mesh, centroids), mesh.n_cells)


def topo_mesh_options(mesh: ModelMesh, *, world: bool) -> dict:
    """Triangle-mesh extent for an engine on a topography mesh.

    ``world``: a far boundary (ERT: 5 profile lengths aside and below, so the
    mixed boundary conditions hold); else a margin of two cells (traveltimes).
    Core triangles are at most half a model cell.
    """
    s = mesh.spec
    length = s.x_max - s.x_min
    if world:
        margin, bottom = 5.0 * length, mesh._core_bottom - 5.0 * length
    else:
        margin, bottom = 2.0 * s.dx, mesh._core_bottom - 2.0 * s.dz
    return {"max_cell_area": 0.5 * s.dx * s.dz, "margin_x": margin, "bottom": bottom}


def _refine_below_sensors(plc: pg.Mesh, surface: np.ndarray, depth: float) -> None:
    """Nodes just below every surface vertex and half-way between them (m).

    As pyGIMLi's own ERT meshes do: small triangles at the electrodes keep
    the near-field potential accurate on slopes.
    """
    mids = 0.5 * (surface[1:] + surface[:-1])
    for x, z in np.r_[surface, mids]:
        plc.createNode([float(x), float(z) - depth])


def _mark_boundaries(tri: pg.Mesh, mesh: ModelMesh) -> None:
    """Outer edges on the ground surface: -1; other outer edges: -2; inner: 0."""
    tri.createNeighborInfos()
    for b in tri.boundaries():
        if b.leftCell() is not None and b.rightCell() is not None:
            b.setMarker(0)
            continue
        c = b.center()
        on_surface = abs(c[1] - float(mesh.surface_elevation(c[0]))) < 1e-6 * (1 + abs(c[1]))
        b.setMarker(-1 if on_surface else -2)


def containing_active_cell(mesh: ModelMesh, points: np.ndarray) -> np.ndarray:
    """Index (into the active cells) of the cell containing each point (x, z).

    Points in an air cell, or outside the mesh, get the nearest active cell.
    """
    nx, nz = mesh.shape
    ix = np.clip(np.searchsorted(mesh.nodes_x, points[:, 0]) - 1, 0, nx - 1)
    iz = np.clip(np.searchsorted(mesh.nodes_z, points[:, 1]) - 1, 0, nz - 1)
    full = iz * nx + ix
    active_index = np.cumsum(mesh.active) - 1
    inside = (
        (points[:, 0] >= mesh.nodes_x[0])
        & (points[:, 0] <= mesh.nodes_x[-1])
        & (points[:, 1] >= mesh.nodes_z[0])
        & mesh.active[full]
    )
    out = np.where(inside, active_index[full], -1)
    if not inside.all():
        _, nearest = cKDTree(mesh.cell_centers).query(points[~inside])
        out[~inside] = nearest
    return out


def snap_to_surface(mesh: ModelMesh, sensors: np.ndarray, tolerance: float) -> np.ndarray:
    """Move each sensor onto the nearest vertex of the surface polyline.

    Raises
    ------
    ValueError
        If a sensor is more than ``tolerance`` (m) from every vertex.
    """
    sensors = np.asarray(sensors, dtype=float)
    dist, idx = cKDTree(mesh.surface).query(sensors)
    if dist.max() > tolerance:
        i = int(dist.argmax())
        raise ValueError(
            f"sensor {i + 1} at (x={sensors[i, 0]:g} m, z={sensors[i, 1]:g} m) is "
            f"{dist[i]:.3g} m from the ground surface's nearest vertex (tolerance {tolerance:g} m)"
        )
    return mesh.surface[idx]


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
