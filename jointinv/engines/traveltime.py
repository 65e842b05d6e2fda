"""First-arrival traveltimes with pyGIMLi's shortest-path (Dijkstra) engine.

The simulation works on the pyGIMLi grid built from the model mesh
(:func:`~jointinv.engines.pgmesh.build_pg_grid`); its property is the seismic
velocity (m/s) in pyGIMLi cell order. Inside, the engine sees slowness: the
physics is :func:`_traveltimes` / the engine's path-length Jacobian (linear
in slowness along fixed ray paths), and the only place the chain rule to
velocity is written is :meth:`TraveltimeSimulation._velocity_jacobian`.

Dijkstra times are the minimum over graph paths of sums ``length × slowness``
and are therefore piecewise linear in slowness: the Jacobian (ray-path length
per cell, m) is exact wherever the fastest path is unique, and
``t = J s`` holds exactly.

The pyGIMLi engine decides which of the two cells along a cell edge carries
the edge's length by comparing slownesses with an *absolute* tolerance of
1e-4 (s/m), which is coarse for slownesses of 1e-4 … 1e-3 s/m. The engine is
therefore fed slowness in µs/m (:data:`_SLOWNESS_SCALE`); times come back in
µs and are rescaled. Path lengths do not depend on the unit.
"""

from __future__ import annotations

import logging

import numpy as np
import pygimli as pg
import scipy.sparse as sp
from pygimli.physics.traveltime import TravelTimeDijkstraModelling
from pygimli.utils import sparseMatrix2coo

from ..errors import EngineError
from ..maps import Transfer
from ..mesh import ModelMesh
from ..operators import EngineClock
from .pgmesh import (
    build_pg_grid,
    build_pg_topo_mesh,
    match_cells,
    quiet_pygimli,
    snap_to_surface,
    topo_mesh_options,
)

log = logging.getLogger(__name__)

#: Default number of secondary nodes per cell edge. Measured on 1 m cells:
#: two-layer head waves within 0.44 % for v2/v1 = 1.25…20 and 3…8 m thick top
#: layers (3 nodes: 0.56 % at v2/v1 = 7.5); oblique rays in a homogeneous
#: medium within 0.49 % (3 nodes: 0.75 %). Cost grows about as n².
DEFAULT_SECONDARY_NODES = 4

#: Padding cells kept around the core for the Dijkstra graph: first arrivals
#: between surface sensors do not travel through the far padding, and the
#: graph (cost ∝ nodes) shrinks by about half. Cells left out have no
#: sensitivity.
ENGINE_PADDING_CELLS = 2

#: Engine slowness unit: 1e6 → µs/m (see the module docstring).
_SLOWNESS_SCALE = 1e6

#: Largest allowed distance (m) between a sensor and the nearest mesh node.
_NODE_TOLERANCE = 1e-3


def velocity_to_slowness(velocity: np.ndarray) -> np.ndarray:
    """Slowness (s/m) of a velocity (m/s)."""
    return 1.0 / velocity


def slowness_derivative(velocity: np.ndarray) -> np.ndarray:
    """d(slowness)/d(velocity) = -1/v² (s²/m²), elementwise."""
    return -1.0 / velocity**2


def _traveltimes(fop: TravelTimeDijkstraModelling, slowness: np.ndarray) -> np.ndarray:
    """Dijkstra first-arrival times (s) for slowness (s/m) in engine parameter order."""
    scaled = pg.Vector(np.ascontiguousarray(slowness * _SLOWNESS_SCALE))
    return np.array(fop.response(scaled)) / _SLOWNESS_SCALE


def _path_lengths(fop: TravelTimeDijkstraModelling, slowness: np.ndarray) -> sp.csr_matrix:
    """Ray-path length (m) per datum and engine parameter: dt/ds, shape (n_data, n_params).

    ``createJacobian`` rebuilds the graph from the slowness it is given, so it
    does not depend on an earlier ``response`` call (checked in the tests).
    """
    scaled = pg.Vector(np.ascontiguousarray(slowness * _SLOWNESS_SCALE))
    fop.createJacobian(scaled)
    jac = fop.jacobian()
    return sparseMatrix2coo(jac).tocsr()


def _data_container(
    sensors: np.ndarray, shot: np.ndarray, geophone: np.ndarray
) -> pg.DataContainer:
    """A pyGIMLi DataContainer with sensor positions (x, z) and 's'/'g' indices."""
    data = pg.DataContainer()
    data.registerSensorIndex("s")
    data.registerSensorIndex("g")
    for x, z in sensors:
        data.createSensor([float(x), float(z)])
    data.resize(len(shot))
    data.set("s", pg.Vector(shot.astype(float)))
    data.set("g", pg.Vector(geophone.astype(float)))
    return data


def _check_on_nodes(mesh: ModelMesh, sensors: np.ndarray) -> None:
    """Raise :class:`EngineError` if a sensor is more than 1 mm from a mesh node."""
    for i, (x, z) in enumerate(sensors):
        dx = np.abs(mesh.nodes_x - x).min()
        dz = np.abs(mesh.nodes_z - z).min()
        gap = float(np.hypot(dx, dz))
        if gap > _NODE_TOLERANCE:
            raise EngineError(
                f"traveltime sensor {i} at (x={x:g} m, z={z:g} m) is {gap:.3g} m from the "
                "nearest mesh node; Dijkstra paths start and end at nodes"
            )


def _snapped_to_surface(mesh: ModelMesh, sensors: np.ndarray, tolerance: float) -> np.ndarray:
    try:
        return snap_to_surface(mesh, sensors, tolerance)
    except ValueError as err:
        raise EngineError(f"traveltime {err}") from err


def _parameter_permutation(fop: TravelTimeDijkstraModelling, grid: pg.Mesh) -> sp.csr_matrix:
    """Matrix ``P`` with ``s_engine = P @ s_grid``, from the engine's forward mesh.

    The engine maps its parameter vector to cells through the cell markers of
    its forward mesh (``slowPerCell[c] = s[c.marker()]``); the Jacobian's
    columns use the same markers. The correspondence with the grid's cells is
    found by matching the cell centres, not assumed.
    """
    fwd = fop.mesh()
    markers = np.array(fwd.cellMarkers(), dtype=int)
    n = grid.cellCount()
    if fwd.cellCount() != n or sorted(markers) != list(range(n)):
        raise EngineError(
            f"traveltime engine parametrisation is not one parameter per cell "
            f"({fwd.cellCount()} cells, {len(np.unique(markers))} parameters, grid {n} cells)"
        )
    param_centres = np.empty((n, 2))
    param_centres[markers] = np.array(fwd.cellCenters())[:, :2]
    try:
        order = match_cells(param_centres, np.array(grid.cellCenters())[:, :2])
    except ValueError as err:
        raise EngineError(f"traveltime engine cells do not match the grid: {err}") from err
    return Transfer.permutation(order).matrix


class TraveltimeSimulation:
    """pyGIMLi first-arrival traveltime (TravelTimeDijkstraModelling) on the model mesh's grid.

    Parameters
    ----------
    mesh : ModelMesh
        The model mesh; the engine uses the pyGIMLi grid built from its nodes.
    sensors : ndarray, shape (n_sensors, 2)
        Sensor positions ``x, z`` (m, z up). Flat mesh: every sensor must lie
        on a mesh node (within 1 mm). Topography: each is moved onto the
        nearest vertex of the ground surface (within ``sensor_tolerance``),
        and the engine works on a triangle mesh below that surface.
    shot, geophone : ndarray of int, shape (n_data,)
        0-based sensor indices of source and receiver of each datum.
    secondary_nodes : int
        Secondary nodes added on each cell edge (more nodes: more ray
        directions, more accurate times, slower).

    Attributes
    ----------
    n_data, n_params : int
        Number of traveltimes and of grid cells.
    clock : EngineClock
        Time spent in engine calls.
    transfer : Transfer
        Model cells → pyGIMLi cell order (the order of ``velocity``).

    Raises
    ------
    EngineError
        If a sensor is off the mesh nodes or the engine's parametrisation does
        not match the grid.
    """

    def __init__(
        self,
        mesh: ModelMesh,
        sensors: np.ndarray,
        shot: np.ndarray,
        geophone: np.ndarray,
        *,
        secondary_nodes: int = DEFAULT_SECONDARY_NODES,
        sensor_tolerance: float = _NODE_TOLERANCE,
    ) -> None:
        sensors, shot, geophone = _validated(sensors, shot, geophone)
        self.clock = EngineClock()
        self.secondary_nodes = int(secondary_nodes)
        if mesh.has_topography:
            sensors = _snapped_to_surface(mesh, sensors, sensor_tolerance)
            options = topo_mesh_options(mesh, world=False)
            self._grid, self.transfer = build_pg_topo_mesh(mesh, **options)
        else:
            _check_on_nodes(mesh, sensors)
            self._grid, self.transfer = build_pg_grid(mesh, n_pad=ENGINE_PADDING_CELLS)
        self.sensors = sensors
        self.n_data = len(shot)
        self.n_params = self._grid.cellCount()
        with quiet_pygimli():
            self._fop = TravelTimeDijkstraModelling(secNodes=self.secondary_nodes)
            self._fop.setData(_data_container(sensors, shot, geophone))
            self._fop.setMesh(self._grid)
            self._to_engine = _parameter_permutation(self._fop, self._grid)
        self._to_engine_t = sp.csr_matrix(self._to_engine.T)
        self._last: tuple[bytes, np.ndarray, sp.csr_matrix] | None = None
        log.debug(
            "traveltime simulation: %d data, %d cells, %d secondary nodes",
            self.n_data,
            self.n_params,
            self.secondary_nodes,
        )

    # --- protocol -----------------------------------------------------------
    def forward(self, velocity: np.ndarray) -> np.ndarray:
        """First-arrival traveltimes.

        One engine call gives the ray paths of the model; the times are
        ``t = L s`` along them (exact for Dijkstra times, see the module
        docstring), and the Jacobian of the same model comes for free.

        Parameters
        ----------
        velocity : ndarray, shape (n_params,)
            Velocity (m/s) per cell, pyGIMLi cell order.

        Returns
        -------
        ndarray, shape (n_data,)
            Traveltimes (s).
        """
        return self._linearization(velocity)[0].copy()

    def jacobian(self, velocity: np.ndarray) -> sp.csr_matrix:
        """dt/dvelocity (s²/m²), shape (n_data, n_params); cached per model."""
        return self._linearization(velocity)[1]

    def jvec(self, velocity: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``dt/dvelocity @ v`` (s per unit of ``v``), ``v`` in m/s on the cells."""
        return self.jacobian(velocity) @ np.asarray(v, dtype=float)

    def jtvec(self, velocity: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``(dt/dvelocity)ᵀ @ w``, one value per cell (pyGIMLi cell order)."""
        return self.jacobian(velocity).T @ np.asarray(w, dtype=float)

    # --- internals ------------------------------------------------------------
    def _linearization(self, velocity: np.ndarray) -> tuple[np.ndarray, sp.csr_matrix]:
        """Times (s) and dt/dv = dt/ds · diag(ds/dv) from one engine call; cached."""
        velocity = self._checked(velocity)
        key = velocity.tobytes()
        if self._last is None or self._last[0] != key:
            slowness_grid = velocity_to_slowness(velocity)
            with self.clock("forward"), quiet_pygimli():
                lengths = _path_lengths(self._fop, self._to_engine @ slowness_grid)
            dt_ds = sp.csr_matrix(lengths @ self._to_engine)
            times = dt_ds @ slowness_grid
            if not np.all(np.isfinite(times)):
                raise EngineError("traveltime engine returned non-finite times")
            jac = sp.csr_matrix(dt_ds @ sp.diags(slowness_derivative(velocity)))
            self._last = (key, times, jac)
        return self._last[1], self._last[2]

    def _checked(self, velocity: np.ndarray) -> np.ndarray:
        velocity = np.ascontiguousarray(velocity, dtype=float)
        if velocity.shape != (self.n_params,):
            raise ValueError(f"velocity has shape {velocity.shape}, expected ({self.n_params},)")
        if not np.all(np.isfinite(velocity) & (velocity > 0)):
            raise ValueError("velocity must be finite and positive")
        return velocity


def _validated(
    sensors: np.ndarray, shot: np.ndarray, geophone: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and index ranges; return float sensors and int indices."""
    sensors = np.asarray(sensors, dtype=float)
    shot = np.asarray(shot)
    geophone = np.asarray(geophone)
    if sensors.ndim != 2 or sensors.shape[1] != 2:
        raise ValueError(f"sensors must have shape (n, 2), got {sensors.shape}")
    if shot.shape != geophone.shape or shot.ndim != 1 or len(shot) == 0:
        raise ValueError("shot and geophone must be non-empty 1D arrays of equal length")
    for name, idx in (("shot", shot), ("geophone", geophone)):
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{name} indices must be integers")
        if idx.min() < 0 or idx.max() >= len(sensors):
            raise ValueError(f"{name} index out of range 0..{len(sensors) - 1}")
    return sensors, shot.astype(int), geophone.astype(int)
