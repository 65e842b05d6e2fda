"""pyGIMLi 2.5D ERT forward operator on the model mesh.

The simulation is split into two parts that are composed by the chain rule:

* the physics ``F``: resistivity (Ohm·m, pyGIMLi cell order) -> apparent
  resistivity ``rho_a`` (Ohm·m), computed by pyGIMLi's ``ERTModelling``;
* the observation ``H``: ``d = ln(rho_a)``.

So ``d = H(F(rho))`` and ``dd/drho = diag(1 / rho_a) @ dF/drho``.

Apparent resistivities use analytic half-space geometric factors (mirror
sources about the surface ``z = 0``), so a homogeneous earth gives
``rho_a = rho`` up to the discretisation error of the engine.

Two traps of pyGIMLi 1.6.1 are guarded here:

1. ``createJacobian`` returns all zeros unless the thread count is set on the
   forward operator's core (``fop._core.setThreadCount``);
2. ``createJacobian`` reuses the potentials of the *last* ``response`` call,
   whatever model that was. The model of the last response is tracked and the
   response is recomputed before the Jacobian when it differs.

Accuracy note: with singularity removal (the default) the forward response is
accurate (≈0.3 % on a 1 m grid), but pyGIMLi's Jacobian is then computed from
the total potentials and is *not* the exact derivative of that response (tens
of percent off in cells next to the electrodes). Without singularity removal
the Jacobian is the exact derivative of the (much less accurate) response.
"""

from __future__ import annotations

import logging

import numpy as np
import pygimli as pg
from pygimli.physics.ert import ERTModelling

from ..errors import EngineError
from ..maps import Transfer
from ..mesh import ModelMesh
from ..operators import EngineClock
from .pgmesh import (
    build_pg_grid,
    build_pg_topo_mesh,
    quiet_pygimli,
    snap_to_surface,
    topo_mesh_options,
)

log = logging.getLogger(__name__)

#: Largest distance (m) between an electrode and the nearest mesh node.
NODE_TOLERANCE = 1e-3


class ErtSimulation:
    """pyGIMLi 2.5D ERT (ERTModelling) on the model mesh's pyGIMLi grid.

    Parameters
    ----------
    mesh : ModelMesh
        The model mesh; its pyGIMLi grid is built with :func:`build_pg_grid`.
    electrodes : ndarray, shape (n_electrodes, 2)
        Electrode positions ``x, z`` (m, ``z`` up, surface at 0). Each must sit
        on a mesh node (within 1 mm); it is snapped onto that node.
    abmn : ndarray of int, shape (n_data, 4)
        0-based electrode indices of A, B, M, N; ``-1`` marks a remote
        electrode (pole) for B or N.
    singularity_removal : bool, optional
        Use pyGIMLi's singularity-removal solver (recommended: about 0.3 %
        error on a 1 m grid against about 10-20 % without it).
    threads : int, optional
        Threads of the pyGIMLi core solver.

    Attributes
    ----------
    n_data : int
        Number of four-point measurements.
    n_params : int
        Number of engine cells (pyGIMLi order; ``transfer`` maps model cells onto them).
    clock : EngineClock
        Wall time spent in the engine.
    transfer : Transfer
        Maps a property on model cells to pyGIMLi cell order (the order every
        method of this class expects).
    electrodes : ndarray, shape (n_electrodes, 2)
        Electrode positions after snapping onto mesh nodes (m).
    abmn : ndarray of int, shape (n_data, 4)
    geometric_factors : ndarray, shape (n_data,)
        Analytic half-space geometric factors ``k`` (m), ``rho_a = k U / I``.

    Raises
    ------
    EngineError
        If an electrode is more than 1 mm from the nearest mesh node, or if
        pyGIMLi does not map the model vector onto the grid cells one to one.
    ValueError
        For malformed ``electrodes`` or ``abmn``.
    """

    def __init__(
        self,
        mesh: ModelMesh,
        electrodes: np.ndarray,
        abmn: np.ndarray,
        *,
        singularity_removal: bool = True,
        threads: int = 1,
        geometric_factors: np.ndarray | None = None,
        sensor_tolerance: float = NODE_TOLERANCE,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if mesh.has_topography:
            self.electrodes = _snapped_to_surface(mesh, electrodes, sensor_tolerance)
            grid, transfer = build_pg_topo_mesh(mesh, **topo_mesh_options(mesh, world=True))
        else:
            self.electrodes = snap_to_nodes(mesh, electrodes)
            grid, transfer = build_pg_grid(mesh)
        self.abmn = _as_abmn(abmn, len(self.electrodes))
        self.geometric_factors = self._geometric_factors(mesh, geometric_factors)
        self.transfer: Transfer = transfer
        self.n_data = len(self.abmn)
        self.n_params = grid.cellCount()
        self.clock = EngineClock()
        data = _data_container(self.electrodes, self.abmn, self.geometric_factors)
        self._fop = _forward_operator(grid, data, singularity_removal, threads)
        self._response_key: bytes | None = None  # model of the last engine response
        self._rhoa: np.ndarray | None = None
        self._jacobian_key: bytes | None = None
        self._jacobian: np.ndarray | None = None  # d ln(rho_a) / d rho

    def _geometric_factors(self, mesh: ModelMesh, given: np.ndarray | None) -> np.ndarray:
        """The data's own ``k`` when given (it cancels in ln ρa misfits), else analytic."""
        if given is not None:
            k = np.asarray(given, dtype=float)
            if k.shape != (len(self.abmn),) or not np.all(np.isfinite(k)) or np.any(k == 0):
                raise ValueError("geometric_factors must be finite, non-zero, one per datum")
            return k
        if mesh.has_topography:
            raise ValueError("with topography the geometric factors must be given (numerical k)")
        return geometric_factors(self.electrodes, self.abmn)

    # --- physics F: resistivity -> apparent resistivity --------------------
    def apparent_resistivity(self, resistivity: np.ndarray) -> np.ndarray:
        """Apparent resistivity of every datum.

        Parameters
        ----------
        resistivity : ndarray, shape (n_params,)
            Cell resistivity (Ohm·m) in pyGIMLi cell order.

        Returns
        -------
        ndarray, shape (n_data,)
            Apparent resistivity ``rho_a`` (Ohm·m).
        """
        rho = self._check_model(resistivity)
        key = rho.tobytes()
        if key != self._response_key:
            self._rhoa = self._engine_response(rho)
            self._response_key = key
        return self._rhoa.copy()

    def _engine_response(self, rho: np.ndarray) -> np.ndarray:
        with self.clock("forward"):
            rhoa = np.array(self._fop.response(pg.Vector(rho)), dtype=float)
        if rhoa.shape != (self.n_data,) or not np.all(np.isfinite(rhoa)):
            raise EngineError("pyGIMLi ERT response is not finite or has the wrong size")
        return rhoa

    def _physics_jacobian(self, rho: np.ndarray) -> np.ndarray:
        """``d rho_a / d rho`` (dimensionless), dense (n_data, n_params)."""
        if rho.tobytes() != self._response_key:
            # createJacobian reuses the potentials of the last response call
            self.apparent_resistivity(rho)
        with self.clock("jacobian"):
            self._fop.createJacobian(pg.Vector(rho))
            jac = np.array(self._fop.jacobian(), dtype=float)
        if jac.shape != (self.n_data, self.n_params):
            raise EngineError(f"pyGIMLi ERT Jacobian has shape {jac.shape}")
        if not np.all(np.isfinite(jac)) or not np.any(jac):
            raise EngineError("pyGIMLi ERT Jacobian is all zeros or not finite")
        return jac

    # --- observation H and the composition ---------------------------------
    def forward(self, resistivity: np.ndarray) -> np.ndarray:
        """Data ``ln(rho_a)`` (rho_a in Ohm·m).

        Parameters
        ----------
        resistivity : ndarray, shape (n_params,)
            Cell resistivity (Ohm·m) in pyGIMLi cell order.

        Returns
        -------
        ndarray, shape (n_data,)
        """
        return log_observation(self.apparent_resistivity(resistivity))

    def jacobian(self, resistivity: np.ndarray) -> np.ndarray:
        """Dense ``d ln(rho_a) / d rho`` (1/(Ohm·m)), shape (n_data, n_params).

        Cached for the last model; the returned array is read-only.
        """
        rho = self._check_model(resistivity)
        key = rho.tobytes()
        if key != self._jacobian_key:
            physics = self._physics_jacobian(rho)
            rhoa = self.apparent_resistivity(rho)
            self._jacobian = log_observation_derivative(rhoa)[:, None] * physics
            self._jacobian.setflags(write=False)
            self._jacobian_key = key
        return self._jacobian

    def jvec(self, resistivity: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``J @ v`` with ``J = d ln(rho_a) / d rho``.

        Parameters
        ----------
        resistivity : ndarray, shape (n_params,)
            Cell resistivity (Ohm·m), pyGIMLi cell order.
        v : ndarray, shape (n_params,)
            Resistivity perturbation (Ohm·m).

        Returns
        -------
        ndarray, shape (n_data,)
        """
        return self.jacobian(resistivity) @ np.asarray(v, dtype=float)

    def jtvec(self, resistivity: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``J.T @ w`` with ``J = d ln(rho_a) / d rho``.

        Parameters
        ----------
        resistivity : ndarray, shape (n_params,)
            Cell resistivity (Ohm·m), pyGIMLi cell order.
        w : ndarray, shape (n_data,)
            Data-space vector.

        Returns
        -------
        ndarray, shape (n_params,)
            In 1/(Ohm·m) per unit of ``w``.
        """
        return self.jacobian(resistivity).T @ np.asarray(w, dtype=float)

    def _check_model(self, resistivity: np.ndarray) -> np.ndarray:
        rho = np.ascontiguousarray(resistivity, dtype=float)
        if rho.shape != (self.n_params,):
            raise ValueError(f"resistivity has shape {rho.shape}, expected ({self.n_params},)")
        if not np.all(np.isfinite(rho)) or np.any(rho <= 0):
            raise ValueError("resistivity must be finite and positive")
        return rho


# --- observation -------------------------------------------------------------
def log_observation(rhoa: np.ndarray) -> np.ndarray:
    """``ln(rho_a)``; raises EngineError for non-positive apparent resistivity."""
    if np.any(rhoa <= 0):
        raise EngineError(
            f"{np.sum(rhoa <= 0)} non-positive apparent resistivities: ln(rho_a) undefined"
        )
    return np.log(rhoa)


def log_observation_derivative(rhoa: np.ndarray) -> np.ndarray:
    """``d ln(rho_a) / d rho_a = 1 / rho_a`` (1/(Ohm·m))."""
    return 1.0 / rhoa


# --- geometry ----------------------------------------------------------------
def snap_to_nodes(mesh: ModelMesh, electrodes: np.ndarray) -> np.ndarray:
    """Move electrodes onto their nearest mesh node.

    Parameters
    ----------
    mesh : ModelMesh
    electrodes : ndarray, shape (n, 2)
        ``x, z`` (m, z up).

    Returns
    -------
    ndarray, shape (n, 2)
        Node coordinates (m).

    Raises
    ------
    EngineError
        If an electrode is farther than :data:`NODE_TOLERANCE` from any node.
    """
    elec = np.asarray(electrodes, dtype=float)
    if elec.ndim != 2 or elec.shape[1] != 2 or len(elec) < 2:
        raise ValueError(f"electrodes must have shape (n>=2, 2), got {elec.shape}")
    ix = np.abs(elec[:, :1] - mesh.nodes_x[None, :]).argmin(axis=1)
    iz = np.abs(elec[:, 1:] - mesh.nodes_z[None, :]).argmin(axis=1)
    snapped = np.column_stack([mesh.nodes_x[ix], mesh.nodes_z[iz]])
    gap = np.hypot(*(snapped - elec).T)
    if gap.max() > NODE_TOLERANCE:
        i = int(gap.argmax())
        raise EngineError(
            f"electrode {i} at (x={elec[i, 0]:g} m, z={elec[i, 1]:g} m) is {gap[i]:.3g} m "
            f"from the nearest mesh node; electrodes must lie on mesh nodes "
            f"(tolerance {NODE_TOLERANCE * 1e3:g} mm)"
        )
    return snapped


def _snapped_to_surface(mesh: ModelMesh, electrodes: np.ndarray, tolerance: float) -> np.ndarray:
    try:
        return snap_to_surface(mesh, electrodes, tolerance)
    except ValueError as err:
        raise EngineError(f"ERT {err}") from err


def _as_abmn(abmn: np.ndarray, n_electrodes: int) -> np.ndarray:
    arr = np.asarray(abmn)
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
        raise ValueError(f"abmn must have shape (n>0, 4), got {arr.shape}")
    if not np.all(arr == np.round(arr)):
        raise ValueError("abmn must hold integer electrode indices")
    arr = arr.astype(int)
    if arr.min() < -1 or arr.max() >= n_electrodes:
        raise ValueError(f"abmn indices must be in [-1, {n_electrodes - 1}]")
    if np.any(arr[:, [0, 2]] < 0):
        raise ValueError("A and M must be real electrodes; only B and N may be -1")
    return arr


def geometric_factors(electrodes: np.ndarray, abmn: np.ndarray) -> np.ndarray:
    """Analytic geometric factors for a half-space with surface ``z = 0``.

    The potential of a unit current at ``s`` in a half-space of unit
    resistivity is ``(1/r + 1/r') / (4 pi)``, ``r'`` the distance to the image
    of ``s`` mirrored about the surface (``1 / (2 pi r)`` at the surface).

    Parameters
    ----------
    electrodes : ndarray, shape (n, 2)
        ``x, z`` (m, z up, ``z <= 0``).
    abmn : ndarray of int, shape (n_data, 4)
        ``-1`` marks a remote electrode.

    Returns
    -------
    ndarray, shape (n_data,)
        ``k`` (m) such that ``rho_a = k U / I``.
    """
    a, b, m, n = abmn.T
    g = _unit_potential(electrodes, a, m) - _unit_potential(electrodes, a, n)
    g -= _unit_potential(electrodes, b, m) - _unit_potential(electrodes, b, n)
    if np.any(np.abs(g) < 1e-12) or not np.all(np.isfinite(g)):
        raise ValueError("a configuration has an infinite geometric factor (or repeats electrodes)")
    return 1.0 / g


def _unit_potential(elec: np.ndarray, src: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """Half-space potential (V) at ``rec`` of 1 A at ``src`` for 1 Ohm·m; 0 for poles."""
    remote = (src < 0) | (rec < 0)
    ps, pr = elec[np.where(remote, 0, src)], elec[np.where(remote, 0, rec)]
    dx = ps[:, 0] - pr[:, 0]
    with np.errstate(divide="ignore"):
        direct = 1.0 / np.hypot(dx, ps[:, 1] - pr[:, 1])
        image = 1.0 / np.hypot(dx, ps[:, 1] + pr[:, 1])
    return np.where(remote, 0.0, (direct + image) / (4.0 * np.pi))


# --- pyGIMLi setup -------------------------------------------------------------


def _data_container(electrodes: np.ndarray, abmn: np.ndarray, k: np.ndarray) -> pg.DataContainerERT:
    data = pg.DataContainerERT()
    for x, z in electrodes:
        data.createSensor(pg.Pos(float(x), float(z)))
    for i, (a, b, m, n) in enumerate(abmn):
        data.createFourPointData(i, int(a), int(b), int(m), int(n))
    data.set("k", pg.Vector(k))
    return data


def _forward_operator(
    grid: pg.Mesh, data: pg.DataContainerERT, singularity_removal: bool, threads: int
) -> ERTModelling:
    """ERTModelling on ``grid`` itself (no refinement), one parameter per cell."""
    fop = ERTModelling(sr=singularity_removal, verbose=False)
    fop.setVerbose(False)
    fop._refineH2 = False  # solve on our grid, not on a hidden refined copy
    with quiet_pygimli():
        fop.setData(data)
        fop.setMesh(grid)
        fwd_mesh = fop.mesh()  # builds the forward mesh now, quietly
        para = fop.paraDomain
    fop._core.setThreadCount(threads)  # without this the Jacobian is all zeros
    _check_cell_mapping(grid, fwd_mesh, para)
    log.debug("ERT forward operator: %d cells, %d data", grid.cellCount(), data.size())
    return fop


def _check_cell_mapping(grid: pg.Mesh, fwd_mesh: pg.Mesh, para: pg.Mesh) -> None:
    """Model entry ``i`` must be grid cell ``i`` in both forward and parameter mesh."""
    n = grid.cellCount()
    centres = np.array(grid.cellCenters())
    same = (
        fwd_mesh.cellCount() == n
        and para.cellCount() == n
        and np.array_equal(np.array(fwd_mesh.cellMarkers()), np.arange(n))
        and np.array_equal(np.array(para.cellMarkers()), np.arange(n))
        and np.allclose(np.array(fwd_mesh.cellCenters()), centres, rtol=0, atol=1e-9)
        and np.allclose(np.array(para.cellCenters()), centres, rtol=0, atol=1e-9)
    )
    if not same:
        raise EngineError("pyGIMLi does not map the ERT model vector one to one onto grid cells")
    markers = {b.marker() for b in fwd_mesh.boundaries()}
    if not {-1, -2} <= markers:
        raise EngineError("pyGIMLi forward mesh lost its surface/mixed boundary markers")


__all__ = ["ErtSimulation", "geometric_factors", "log_observation", "snap_to_nodes"]
