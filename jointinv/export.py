"""Export a result to ParaView (VTK XML ``.vtu``) and to CSV (``jointinv export``).

Only the active cells (below the ground surface) are written, in the result's cell
order (x fastest, from the bottom row up). Coordinates are in metres: x along the
profile and z the elevation; in the ``.vtu`` the profile lies in the VTK x-z plane
(VTK y = 0), so ParaView shows it as a vertical section. Every property is one cell
array in physical units named after the property; when the result has posterior
diagnostics, ``<property>_posterior_std`` (in the property's own transform, e.g.
log10(ohm*m)) and each modality's depth-of-investigation mask (``doi_<modality>``)
are added. Files are written atomically (temporary file in the same folder, then
rename).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from .outputs import write_text_atomic
from .results import SavedResult, load_result

#: VTK cell type of a quadrilateral (points counter-clockwise).
VTK_QUAD = 9
#: VTK cell type of a vertex (one point).
VTK_VERTEX = 1
#: VTK cell type of a polyline.
VTK_POLY_LINE = 4


def _load(saved_or_path: SavedResult | str | Path) -> SavedResult:
    if isinstance(saved_or_path, SavedResult):
        return saved_or_path
    return load_result(saved_or_path)


# --- what is exported --------------------------------------------------------------
def active_cells(saved: SavedResult) -> np.ndarray:
    """Flat indices (x fastest) of the active cells, in the exported order."""
    return np.flatnonzero(saved.active.ravel())


def cell_centres(saved: SavedResult) -> np.ndarray:
    """(n_active, 2) x, z (m, z elevation) of the centres of the active cells."""
    cx = 0.5 * (saved.nodes_x[:-1] + saved.nodes_x[1:])
    cz = 0.5 * (saved.nodes_z[:-1] + saved.nodes_z[1:])
    x, z = np.meshgrid(cx, cz)
    keep = active_cells(saved)
    return np.column_stack([x.ravel()[keep], z.ravel()[keep]])


def cell_arrays(saved: SavedResult) -> dict[str, tuple[np.ndarray, str]]:
    """The exported arrays of the active cells: ``name -> (values, units)``.

    Every property (physical units), then ``<property>_posterior_std`` for each
    property with a posterior std (its own transform, e.g. ``log10(ohm*m)``).
    """
    keep = active_cells(saved)
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
def export_csv(saved_or_path: SavedResult | str | Path, out: str | Path) -> Path:
    """Write the active cells of a result as CSV: one row per cell.

    Parameters
    ----------
    saved_or_path : SavedResult or path
        A result read back, or the path of a result file.
    out : path
        The CSV file to write (atomically).

    Returns
    -------
    Path
        ``out``. The header is ``x_m,z_m,<property>[<units>],...,
        <property>_posterior_std[<units>],...``; x and z (elevation) are the cell
        centres in m.
    """
    saved = _load(saved_or_path)
    arrays = cell_arrays(saved)
    xz = cell_centres(saved)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["x_m", "z_m", *(f"{name}[{units}]" for name, (_, units) in arrays.items())])
    columns = np.column_stack([xz, *(values for values, _ in arrays.values())])
    for row in columns:
        writer.writerow([repr(float(v)) for v in row])
    return write_text_atomic(Path(out), buf.getvalue())


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
