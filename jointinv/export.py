"""Export a result to ParaView (VTK XML ``.vtu``), to CSV (``jointinv export``) and
to xarray (:func:`to_xarray`).

The ``.vtu`` holds the active cells (below the ground surface), the CSV the active
cells of the core region (every active cell with ``padding``), in the result's cell
order (x fastest, from the bottom row up). Coordinates are in metres: x along the
profile and z the elevation; in the ``.vtu`` the profile lies in the VTK x-z plane
(VTK y = 0), so ParaView shows it as a vertical section. Every property is one cell
array in physical units named after the property; when the result has posterior
diagnostics, ``<property>_posterior_std`` (in the property's own transform, e.g.
log10(ohm*m)) and each modality's depth-of-investigation mask (``doi_<modality>``)
are added to the ``.vtu``; the CSV adds per property the posterior/prior std ratio
and whether the cell lies within the depth of investigation (the rule of the plots:
:func:`jointinv.plotting.unresolved_cells`). Files are written atomically
(temporary file in the same folder, then rename).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

import numpy as np

from .coordinates import GRID_COORDINATES
from .outputs import write_text_atomic
from .plotting import RESOLVED_STD_RATIO, std_ratio, unresolved_cells
from .results import SavedResult, load_result

if TYPE_CHECKING:
    import xarray

#: What the depth of a cell is.
DEPTH = "depth of the cell centre below the ground surface (positive down)"

#: VTK cell type of a quadrilateral (points counter-clockwise).
VTK_QUAD = 9
#: VTK cell type of a vertex (one point).
VTK_VERTEX = 1
#: VTK cell type of a polyline.
VTK_POLY_LINE = 4


def _load(result: Any) -> SavedResult:
    """A result read back from a :class:`SavedResult`, a path, or a
    :class:`~jointinv.runner.RunResult` that wrote its file."""
    if isinstance(result, SavedResult):
        return result
    if isinstance(result, (str, Path)):
        return load_result(result)
    output = getattr(result, "output", None)
    if output is None:
        raise ValueError(
            f"{type(result).__name__}: give a result file, a SavedResult or the RunResult of "
            "a run that wrote its result (write=True)"
        )
    return load_result(output)


# --- what is exported --------------------------------------------------------------
def active_cells(saved: SavedResult) -> np.ndarray:
    """Flat indices (x fastest) of the active cells, in the exported order."""
    return np.flatnonzero(saved.active.ravel())


def core_cells(saved: SavedResult) -> np.ndarray:
    """Flat indices (x fastest) of the active cells of the core region."""
    return np.flatnonzero(saved.core.ravel())


def cell_centre_grid(saved: SavedResult) -> tuple[np.ndarray, np.ndarray]:
    """x and z (m, z elevation) of every cell centre, each of shape (n_z, n_x)."""
    cx = 0.5 * (saved.nodes_x[:-1] + saved.nodes_x[1:])
    cz = 0.5 * (saved.nodes_z[:-1] + saved.nodes_z[1:])
    return np.meshgrid(cx, cz)


def cell_depths(saved: SavedResult) -> np.ndarray:
    """(n_z, n_x) depth of every cell centre below the ground surface (m, positive
    downwards; negative in the air): the surface's elevation at the centre's x less z."""
    x, z = cell_centre_grid(saved)
    return np.interp(x, saved.surface[:, 0], saved.surface[:, 1]) - z


def cell_centres(saved: SavedResult, keep: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) x, z (m, z elevation) of the centres of the cells ``keep`` (flat indices;
    default the active cells)."""
    keep = active_cells(saved) if keep is None else keep
    x, z = cell_centre_grid(saved)
    return np.column_stack([x.ravel()[keep], z.ravel()[keep]])


def cell_arrays(
    saved: SavedResult, keep: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray, str]]:
    """The exported arrays of the cells ``keep`` (flat indices; default the active
    cells): ``name -> (values, units)``.

    Every property (physical units), then ``<property>_posterior_std`` for each
    property with a posterior std (its own transform, e.g. ``log10(ohm*m)``).
    """
    keep = active_cells(saved) if keep is None else keep
    arrays = {
        name: (np.asarray(values, dtype=float)[keep], saved.model_units.get(name, ""))
        for name, values in saved.models.items()
    }
    d = saved.diagnostics
    if d is not None:
        for prop, std in d.posterior_std.items():
            arrays[f"{prop}_posterior_std"] = (
                np.asarray(std, dtype=float)[keep],
                d.std_units[prop],
            )
    return arrays


def _doi_arrays(saved: SavedResult) -> dict[str, np.ndarray]:
    d = saved.diagnostics
    if d is None:
        return {}
    keep = active_cells(saved)
    return {
        f"doi_{name}": np.asarray(mask, dtype=np.uint8)[keep] for name, mask in d.doi_mask.items()
    }


# --- CSV ---------------------------------------------------------------------------
def doi_columns(saved: SavedResult, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Per property with posterior diagnostics, for the cells ``keep`` (flat indices):
    ``<property>_std_ratio`` (posterior std / prior std) and ``<property>_in_doi`` (1
    where the ratio is at most :data:`~jointinv.plotting.RESOLVED_STD_RATIO`: the cells
    the sections draw at full strength, else 0)."""
    columns: dict[str, np.ndarray] = {}
    for name in saved.models:
        ratio = std_ratio(saved, name)
        if ratio is None:
            continue
        columns[f"{name}_std_ratio"] = ratio[keep]
        columns[f"{name}_in_doi"] = (~unresolved_cells(saved, name)[keep]).astype(np.uint8)
    return columns


def export_csv(
    saved_or_path: SavedResult | str | Path, out: str | Path, *, padding: bool = False
) -> Path:
    """Write the cells of the core region of a result as CSV: one row per cell.

    Parameters
    ----------
    saved_or_path : SavedResult or path
        A result read back, or the path of a result file.
    out : path
        The CSV file to write (atomically).
    padding : bool
        Every active cell, the padding too, with a column ``core`` (1 in the core
        region, else 0). Default: the active cells of the core region.

    Returns
    -------
    Path
        ``out``. The header is ``x_m,z_m,depth_m[,core],<property>[<units>],...,
        <property>_posterior_std[<units>],...,<property>_std_ratio,<property>_in_doi,...``:
        x, z (elevation) of the cell centres and their depth below the ground surface
        in m; the std and depth-of-investigation columns when the result has
        posterior diagnostics (see :func:`doi_columns`; a cell is in the DOI when its
        posterior std is at most ``RESOLVED_STD_RATIO`` × its prior std).
    """
    saved = _load(saved_or_path)
    keep = active_cells(saved) if padding else core_cells(saved)
    columns: dict[str, np.ndarray] = {}
    columns["x_m"], columns["z_m"] = cell_centres(saved, keep).T
    columns["depth_m"] = cell_depths(saved).ravel()[keep]
    if padding:
        columns["core"] = saved.core.ravel()[keep].astype(np.uint8)
    for name, (values, units) in cell_arrays(saved, keep).items():
        columns[f"{name}[{units}]"] = values
    columns.update(doi_columns(saved, keep))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    text = [_texts(values) for values in columns.values()]
    writer.writerows(zip(*text))
    return write_text_atomic(Path(out), buf.getvalue())


def _texts(values: np.ndarray) -> list[str]:
    """Numbers as CSV fields: floats exactly (``repr``), integers and flags as integers."""
    if values.dtype.kind == "f":
        return [repr(float(v)) for v in values]
    return [str(int(v)) for v in values]


# --- xarray ------------------------------------------------------------------------
def to_xarray(result: Any) -> xarray.Dataset:
    """The models of a result as an :class:`xarray.Dataset` on the cell grid.

    Parameters
    ----------
    result : path, SavedResult or RunResult
        A result file, a result read back (:func:`jointinv.read_result`) or what
        :func:`jointinv.run` returned (when it wrote its result file).

    Returns
    -------
    xarray.Dataset
        Dimensions (z, x): the cell centres (m; z elevation, up). Coordinates also
        ``depth`` (m below the ground surface), ``active`` (below the surface) and
        ``core`` (the core region, not the padding). Variables: every property in
        physical units (NaN in the air; attrs units, transform); with posterior
        diagnostics ``<property>_posterior_std`` (attrs units, parameter),
        ``<property>_std_ratio`` (posterior/prior std), ``<property>_in_doi``
        (ratio at most ``RESOLVED_STD_RATIO``, as the sections show) and
        ``doi_<modality>`` (each modality's coverage mask).
    """
    import xarray as xr

    saved = _load(result)
    shape, dims = saved.shape, ("z", "x")
    x, z = cell_centre_grid(saved)
    coords = {
        "z": ("z", z[:, 0], dict(GRID_COORDINATES["z"])),
        "x": ("x", x[0], dict(GRID_COORDINATES["x"])),
        "depth": (dims, cell_depths(saved), {"units": "m", "long_name": DEPTH}),
        "active": (dims, saved.active, {"long_name": "cell below the ground surface"}),
        "core": (dims, saved.core, {"long_name": "active cell of the core region (no padding)"}),
    }
    variables: dict[str, Any] = {}
    for name, values in saved.models.items():
        attrs = {
            "units": saved.model_units.get(name, ""),
            "transform": saved.model_transforms.get(name, ""),
        }
        variables[name] = (dims, np.reshape(values, shape), attrs)
    d = saved.diagnostics
    if d is not None:
        for name, std in d.posterior_std.items():
            attrs = {"units": d.std_units[name], "parameter": d.parameter[name]}
            variables[f"{name}_posterior_std"] = (dims, np.reshape(std, shape), attrs)
        for name in saved.models:
            ratio = std_ratio(saved, name)
            if ratio is not None:
                in_doi = saved.active.ravel() & ~unresolved_cells(saved, name)
                variables[f"{name}_std_ratio"] = (dims, ratio.reshape(shape), {"units": "1"})
                variables[f"{name}_in_doi"] = (
                    dims, in_doi.reshape(shape),
                    {"definition": f"posterior std <= {RESOLVED_STD_RATIO:g} x prior std"},
                )  # fmt: skip
        for name, mask in d.doi_mask.items():
            variables[f"doi_{name}"] = (dims, np.reshape(mask, shape), {"modality": name})
    attrs = {
        "format_version": str(saved.meta.get("format_version", "")),
        "convention": "x along the profile (m), z elevation (m, up); NaN in the air",
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


# --- VTK XML -----------------------------------------------------------------------
def _numbers(values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    if flat.dtype.kind == "f":
        return " ".join(repr(float(v)) for v in flat)
    return " ".join(str(int(v)) for v in flat)


def _data_array(name: str, values: np.ndarray, vtk_type: str, components: int = 1) -> str:
    extra = f' NumberOfComponents="{components}"' if components > 1 else ""
    return (
        f'        <DataArray type="{vtk_type}" Name={quoteattr(name)}{extra} format="ascii">\n'
        f"          {_numbers(values)}\n"
        "        </DataArray>\n"
    )


def _xyz(xz: np.ndarray) -> np.ndarray:
    """Profile (x, z) points as VTK (x, 0, z)."""
    return np.column_stack([xz[:, 0], np.zeros(len(xz)), xz[:, 1]])


def _quads(saved: SavedResult) -> tuple[np.ndarray, np.ndarray]:
    """Points (n, 2: x, z) used by the active cells and each cell's 4 point indices,
    counter-clockwise from the lower left."""
    nz, nx = saved.shape
    keep = active_cells(saved)
    iz, ix = np.divmod(keep, nx)
    lower, upper = iz * (nx + 1) + ix, (iz + 1) * (nx + 1) + ix  # node indices, x fastest
    corners = np.column_stack([lower, lower + 1, upper + 1, upper])
    used, connectivity = np.unique(corners, return_inverse=True)
    k, i = np.divmod(used, nx + 1)
    points = np.column_stack([saved.nodes_x[i], saved.nodes_z[k]])
    return points, connectivity.reshape(-1, 4)


def export_vtu(saved_or_path: SavedResult | str | Path, out: str | Path) -> Path:
    """Write the active cells of a result as a VTK XML UnstructuredGrid (ParaView).

    Parameters
    ----------
    saved_or_path : SavedResult or path
        A result read back, or the path of a result file.
    out : path
        The ``.vtu`` file to write (atomically).

    Returns
    -------
    Path
        ``out``. Cells are quadrilaterals (VTK_QUAD) in the VTK x-z plane (x along the
        profile, z elevation, m; y = 0), one per active cell, x fastest. Cell data:
        every property (physical units), ``<property>_posterior_std`` and
        ``doi_<modality>`` when the result has posterior diagnostics.
    """
    saved = _load(saved_or_path)
    points, quads = _quads(saved)
    arrays = cell_arrays(saved)
    parts = [
        '<?xml version="1.0"?>\n',
        '<VTKFile type="UnstructuredGrid" version="1.0" byte_order="LittleEndian" '
        'header_type="UInt64">\n',
        "  <!-- jointinv result: x along the profile (m), z elevation (m), y = 0. Units: "
        + "; ".join(f"{name} [{units}]" for name, (_, units) in arrays.items()).replace("--", "-")
        + " -->\n",
        "  <UnstructuredGrid>\n",
        f'    <Piece NumberOfPoints="{len(points)}" NumberOfCells="{len(quads)}">\n',
        "      <Points>\n",
        _data_array("points", _xyz(points), "Float64", 3),
        "      </Points>\n",
        "      <Cells>\n",
        _data_array("connectivity", quads, "Int64"),
        _data_array("offsets", 4 * np.arange(1, len(quads) + 1), "Int64"),
        _data_array("types", np.full(len(quads), VTK_QUAD), "UInt8"),
        "      </Cells>\n",
        "      <CellData>\n",
        *(_data_array(name, values, "Float64") for name, (values, _) in arrays.items()),
        *(_data_array(name, mask, "UInt8") for name, mask in _doi_arrays(saved).items()),
        "      </CellData>\n",
        "    </Piece>\n",
        "  </UnstructuredGrid>\n",
        "</VTKFile>\n",
    ]
    return write_text_atomic(Path(out), "".join(parts))


def export_sensors_vtu(saved_or_path: SavedResult | str | Path, out: str | Path) -> Path:
    """Write the sensors of every modality (VTK_VERTEX cells, cell array ``modality``:
    the index of the modality in the result, names in a comment) and the ground
    surface (one VTK_POLY_LINE, ``modality`` -1) as a VTK XML UnstructuredGrid, in the
    same coordinates as :func:`export_vtu`."""
    saved = _load(saved_or_path)
    sensors = [np.asarray(d.sensors, dtype=float).reshape(-1, 2) for d in saved.data.values()]
    n_sensors = sum(len(s) for s in sensors)
    points = np.vstack([*sensors, saved.surface])
    n_surface = len(saved.surface)
    connectivity = np.arange(len(points))
    offsets = np.r_[np.arange(1, n_sensors + 1), n_sensors + n_surface]
    types = np.r_[np.full(n_sensors, VTK_VERTEX), VTK_POLY_LINE]
    modality = np.r_[np.repeat(np.arange(len(sensors)), [len(s) for s in sensors]), -1]
    names = ", ".join(f"{i}: {name}" for i, name in enumerate(saved.data))
    parts = [
        '<?xml version="1.0"?>\n',
        '<VTKFile type="UnstructuredGrid" version="1.0" byte_order="LittleEndian" '
        'header_type="UInt64">\n',
        f"  <!-- jointinv sensors; modality {names.replace('--', '-')}; -1: ground surface -->\n",
        "  <UnstructuredGrid>\n",
        f'    <Piece NumberOfPoints="{len(points)}" NumberOfCells="{len(types)}">\n',
        "      <Points>\n",
        _data_array("points", _xyz(points), "Float64", 3),
        "      </Points>\n",
        "      <Cells>\n",
        _data_array("connectivity", connectivity, "Int64"),
        _data_array("offsets", offsets, "Int64"),
        _data_array("types", types, "UInt8"),
        "      </Cells>\n",
        "      <CellData>\n",
        _data_array("modality", modality, "Int32"),
        "      </CellData>\n",
        "    </Piece>\n",
        "  </UnstructuredGrid>\n",
        "</VTKFile>\n",
    ]
    return write_text_atomic(Path(out), "".join(parts))
