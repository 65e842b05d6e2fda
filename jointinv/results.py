"""The HDF5 result file: one versioned file per run, written atomically.

Layout (``format_version`` 1.1)::

    /meta            attributes: versions, config text, command line, times, seed, stop reason
    /mesh            nodes_x, nodes_z (m), cell_center_x, cell_center_z, core_mask,
                     active (bool (n_z, n_x): cells below the ground surface),
                     surface ((n, 2) x, z: the ground-surface polyline, m)
    /models/<prop>   final model in physical units, shape (n_z, n_x), NaN in inactive (air)
                     cells; attrs units, transform; /models/z and /models/x: cell-centre
                     coordinates (m)
    /data/<name>/    observed, predicted, std, normalized_residual, sensors ((n, 2) x, z, m);
                     attrs chi2, chi2_target, kind, units; the indices of each datum
                     into sensors, 1-based as in the data file: ERT a, b, m, n (0: a remote
                     electrode), traveltime shot, geophone (gravity: sensors are the stations)
    /iterations/     one entry per iteration: beta, phi, step_length, cg_iterations,
                     phi_d/<name>, chi2/<name>, phi_m, coupling/<term>, seconds/<kind>
    /diagnostics/    posterior diagnostics (posterior_std, resolution, information, coverage,
                     eigenvalues, data_fit, ...): see :mod:`jointinv.diagnostics_file`

Models are stored as 2D arrays (z, x). Every group of grids or per-datum arrays holds
its own coordinates as dimension scales (z, x; datum, sensor, column; iteration), so
``xr.open_dataset(path, group="models", engine="h5netcdf")`` opens it with named
dimensions and coordinate values (see :mod:`jointinv.coordinates`; readers skip the
coordinates with :func:`jointinv.coordinates.variables`). Files of format 1.0 refer
to ``/mesh/cell_center_z`` and ``cell_center_x`` instead and read the same. z is
elevation (m, up); for a flat survey the surface is at z = 0. Files without
``/mesh/active`` or ``/mesh/surface`` (written before topography) read as all cells
active and a flat surface at the top node.
"""

from __future__ import annotations

import builtins
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import FORMAT_VERSION
from .coordinates import attach_datum, attach_grid, attach_iterations, attach_sensors, variables
from .diagnostics_file import SavedDiagnostics, cells_on_grid, read_diagnostics
from .outputs import atomic_path
from .resultfile import open_result


@dataclass
class SavedData:
    observed: np.ndarray
    predicted: np.ndarray
    std: np.ndarray
    sensors: np.ndarray
    kind: str
    units: str
    chi2: float
    property: str = ""
    #: per datum, 1-based rows of ``sensors`` as in the data file (ERT ``a b m n``,
    #: 0 = remote; traveltime ``shot geophone``); empty for gravity and for files
    #: written before they were stored
    indices: dict[str, np.ndarray] = field(default_factory=dict)
    #: the modality's χ² target; None for files written before it was stored
    chi2_target: float | None = None

    # the field above shadows the builtin inside this class body
    @builtins.property
    def normalized_residual(self) -> np.ndarray:
        return (self.observed - self.predicted) / self.std


@dataclass
class SavedResult:
    """A result file read back.

    ``models`` hold one value per cell (x fastest), NaN in inactive (air) cells.
    ``active`` is the (n_z, n_x) mask of the cells below the ground surface and
    ``surface`` the (n, 2) ground-surface polyline (x, z in m, z elevation); when not
    given they default to every cell active and a flat surface at the top node.
    ``core`` is the (n_z, n_x) mask of the active cells of the core region (not the
    padding); every active cell when not given.
    """

    meta: dict[str, Any]
    nodes_x: np.ndarray
    nodes_z: np.ndarray
    models: dict[str, np.ndarray]
    model_units: dict[str, str]
    model_transforms: dict[str, str]
    data: dict[str, SavedData]
    iterations: dict[str, Any]
    diagnostics: SavedDiagnostics | None = None
    active: np.ndarray = field(default=None)  # type: ignore[assignment]
    surface: np.ndarray = field(default=None)  # type: ignore[assignment]
    core: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.active = mesh_active(self.nodes_x, self.nodes_z, self.active)
        self.surface = mesh_surface(self.nodes_x, self.nodes_z, self.surface)
        core = self.active if self.core is None else np.asarray(self.core, dtype=bool)
        self.core = self.active & core.reshape(self.active.shape)

    @builtins.property
    def shape(self) -> tuple[int, int]:
        """(n_z, n_x): the shape of the cell arrays."""
        return len(self.nodes_z) - 1, len(self.nodes_x) - 1

    @builtins.property
    def model_grids(self) -> dict[str, np.ndarray]:
        """Every model as an (n_z, n_x) array (z from the bottom up, physical units),
        NaN in inactive (air) cells: ``/models/<property>`` of the file."""
        return {name: values.reshape(self.shape) for name, values in self.models.items()}

    def plot(self, which: str | None = None, *, doi_mask: bool = True) -> Any:
        """Matplotlib figures of this result, those ``jointinv show --plot`` writes:
        every figure by name (a dict), or the one ``which`` names (a property, a
        modality, or a PNG name such as ``convergence``); see
        :func:`jointinv.plotting.figures`. No pyplot: the backend is left alone."""
        from .plotting import figures

        return figures(self, which, doi_mask=doi_mask)


def mesh_active(
    nodes_x: np.ndarray, nodes_z: np.ndarray, active: np.ndarray | None = None
) -> np.ndarray:
    """The (n_z, n_x) bool mask of active cells; every cell when ``active`` is None."""
    shape = (len(nodes_z) - 1, len(nodes_x) - 1)
    if active is None:
        return np.ones(shape, dtype=bool)
    return np.asarray(active, dtype=bool).reshape(shape)


def mesh_surface(
    nodes_x: np.ndarray, nodes_z: np.ndarray, surface: np.ndarray | None = None
) -> np.ndarray:
    """The (n, 2) ground-surface polyline (x, z in m); a flat line at the top node
    spanning the mesh when ``surface`` is None."""
    if surface is None:
        top = float(nodes_z[-1])
        return np.array([[float(nodes_x[0]), top], [float(nodes_x[-1]), top]])
    surface = np.asarray(surface, dtype=float)
    if surface.ndim != 2 or surface.shape[1] != 2 or len(surface) < 2:
        raise ValueError(f"surface must have shape (n >= 2, 2), not {surface.shape}")
    return surface


def write_atomic(path: Path, fill: Any) -> None:
    """Write an HDF5 file through a temporary file in the same folder, then rename
    (see :func:`jointinv.outputs.atomic_path`)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        fill(f)


def rewrite_atomic(path: Path, modify: Any) -> None:
    """Change an HDF5 file atomically: copy it to a temporary file in the same
    folder, ``modify`` the copy (open read-write), then rename it over the original.
    The original is untouched if anything fails; the copy keeps its permissions."""
    path = Path(path)
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        with h5py.File(tmp, "r+") as f:
            modify(f)


def fill_mesh(
    f: h5py.File,
    nodes_x: np.ndarray,
    nodes_z: np.ndarray,
    core_mask: np.ndarray,
    *,
    active: np.ndarray | None = None,
    surface: np.ndarray | None = None,
) -> None:
    """Write ``/mesh``.

    Parameters
    ----------
    nodes_x, nodes_z : ndarray
        Node coordinates (m), increasing; z is elevation (up).
    core_mask : ndarray of bool
        Core-region cells, one per cell (x fastest) or shape (n_z, n_x).
    active : ndarray of bool, optional
        Cells below the ground surface, shape (n_z, n_x) or flat; default every cell.
    surface : ndarray, optional
        Ground-surface polyline, shape (n, 2): x, z (m, elevation); default a flat
        line at ``nodes_z[-1]`` spanning ``nodes_x``.
    """
    g = f.create_group("mesh")
    g.attrs["kind"] = "tensor2d"
    g.attrs["convention"] = (
        "x along the profile (m), z up: z is elevation (m, up); cells x-fastest; "
        "active: cells below the ground surface; surface: ground-surface polyline (x, z)"
    )
    g["nodes_x"] = nodes_x
    g["nodes_z"] = nodes_z
    cx = g.create_dataset("cell_center_x", data=0.5 * (nodes_x[:-1] + nodes_x[1:]))
    cz = g.create_dataset("cell_center_z", data=0.5 * (nodes_z[:-1] + nodes_z[1:]))
    cx.make_scale("x")
    cz.make_scale("z")
    g["core_mask"] = core_mask.reshape(len(nodes_z) - 1, len(nodes_x) - 1)
    act = g.create_dataset("active", data=mesh_active(nodes_x, nodes_z, active))
    act.attrs["definition"] = "True for cells below the ground surface"
    act.dims[0].attach_scale(cz)
    act.dims[1].attach_scale(cx)
    surf = g.create_dataset("surface", data=mesh_surface(nodes_x, nodes_z, surface))
    surf.attrs["columns"] = ["x", "z"]
    surf.attrs["units"] = "m"


def fill_model(f: h5py.File, name: str, values: np.ndarray, *, units: str, transform: str) -> None:
    """Write ``models/<name>`` below ``f`` (the file, or a group such as
    ``/separate/<modality>``), shape (n_z, n_x), NaN in the inactive cells of
    ``/mesh/active``. ``values`` holds one value per cell or per active cell (x fastest)."""
    mesh = f.file["mesh"]
    grid = cells_on_grid(mesh, np.asarray(values, dtype=float))
    d = f.require_group("models").create_dataset(name, data=grid)
    d.attrs["units"] = units
    d.attrs["transform"] = transform
    attach_grid(d)


def fill_data(f: h5py.File, name: str, saved: SavedData) -> None:
    g = f.require_group("data").create_group(name)
    g["observed"] = saved.observed
    g["predicted"] = saved.predicted
    g["std"] = saved.std
    g["normalized_residual"] = saved.normalized_residual
    g["sensors"] = saved.sensors
    g.attrs["chi2"] = saved.chi2
    g.attrs["kind"] = saved.kind
    g.attrs["units"] = saved.units
    g.attrs["property"] = saved.property
    g["sensors"].attrs["columns"] = ["x", "z"]
    g["sensors"].attrs["units"] = "m"
    for key, values in saved.indices.items():
        d = g.create_dataset(key, data=np.asarray(values, dtype=np.int64))
        d.attrs["indexes"] = "rows of sensors, 1-based as in the data file; 0: remote"
    for key in ("observed", "predicted", "std", "normalized_residual", *saved.indices):
        attach_datum(g[key])
    attach_sensors(g["sensors"])
    if saved.chi2_target is not None:
        g.attrs["chi2_target"] = saved.chi2_target


#: The index datasets of ``/data/<name>`` (see :class:`SavedData`).
INDEX_NAMES = ("a", "b", "m", "n", "shot", "geophone")


def fill_iterations(f: h5py.File, columns: dict[str, np.ndarray]) -> None:
    g = f.create_group("iterations")
    for key, values in columns.items():
        g[key] = np.asarray(values)
    attach_iterations(g)


def fill_meta(f: h5py.File, meta: dict[str, Any]) -> None:
    g = f.create_group("meta")
    g.attrs["format_version"] = FORMAT_VERSION
    for key, value in meta.items():
        g.attrs[key] = value


def read_result(path: str | Path) -> SavedResult:
    """Read a result file written by :func:`jointinv.run`.

    Raises
    ------
    UserInputError
        One line naming the file (and the HDF5 path): no such file, not a result, a
        malformed entry, or a file that would make jointinv read other files
        (external storage, external links, virtual datasets); see
        :func:`jointinv.resultfile.open_result`.
    """
    with open_result(path) as f:
        return result_from_file(f)


def result_from_file(f: h5py.File) -> SavedResult:
    """A result from an open HDF5 file of the result layout (:func:`read_result` checks
    a file with :func:`~jointinv.resultfile.open_result` first)."""
    meta = dict(f["meta"].attrs)
    nodes_x, nodes_z = f["mesh/nodes_x"][()], f["mesh/nodes_z"][()]
    mesh = f["mesh"]
    active = mesh_active(nodes_x, nodes_z, mesh["active"][()] if "active" in mesh else None)
    surface = mesh["surface"][()] if "surface" in mesh else None
    core = mesh["core_mask"][()] if "core_mask" in mesh else None
    stored = variables(f["models"])
    models = {k: _masked(d[()], active) for k, d in stored.items()}
    units = {k: str(d.attrs["units"]) for k, d in stored.items()}
    transforms = {k: str(d.attrs["transform"]) for k, d in stored.items()}
    data = {
        k: SavedData(
            observed=g["observed"][()],
            predicted=g["predicted"][()],
            std=g["std"][()],
            sensors=g["sensors"][()],
            kind=str(g.attrs["kind"]),
            units=str(g.attrs["units"]),
            chi2=float(g.attrs["chi2"]),
            property=str(g.attrs.get("property", "")),
            indices={i: g[i][()] for i in INDEX_NAMES if i in g},
            chi2_target=float(g.attrs["chi2_target"]) if "chi2_target" in g.attrs else None,
        )
        for k, g in f["data"].items()
    }
    iterations: dict[str, Any] = {}
    f["iterations"].visititems(
        lambda key, obj: (
            iterations.__setitem__(key, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    )
    return SavedResult(
        meta=meta,
        nodes_x=nodes_x,
        nodes_z=nodes_z,
        models=models,
        model_units=units,
        model_transforms=transforms,
        data=data,
        iterations=iterations,
        diagnostics=read_diagnostics(f),
        active=active,
        surface=surface,
        core=core,
    )


def _masked(values: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Flat (x fastest) float copy of a cell array with NaN in inactive cells."""
    flat = np.asarray(values, dtype=float).ravel()
    if not active.all():
        flat = np.where(active.ravel(), flat, np.nan)
    return flat


def load_result(path: str | Path) -> SavedResult:
    """:func:`read_result` (kept for the callers that used it for its one-line
    :class:`~jointinv.errors.UserInputError`, which :func:`read_result` now gives)."""
    return read_result(path)
