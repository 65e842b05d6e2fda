"""The coordinates of the result file: netCDF-style dimension scales.

Since result format 1.1, each group holding cell grids or per-datum arrays holds its
own coordinates as HDF5 dimension scales, so that xarray (``engine="h5netcdf"``)
opens the group with named dimensions and coordinate values::

    xr.open_dataset("result.h5", group="models", engine="h5netcdf")

- grids (``/models``, ``/diagnostics/posterior_std``, ...): ``z`` (cell-centre
  elevation, m) and ``x`` (cell-centre position along the profile, m), dimensions
  (z, x);
- ``/data/<modality>`` and ``/diagnostics/data_fit/<modality>``: ``datum`` (the
  datum's number, 1-based in the order of the data file); ``sensors`` is (sensor,
  column) with ``sensor`` 1-based as the stored indices (a, b, m, n, shot, geophone)
  and ``column`` the texts x, z;
- ``/iterations``: ``iteration`` (already a column) is the dimension of every column;
- ``/diagnostics/correlation``: (property_row, property_column), the property names.

h5netcdf names a dimension after its scale dataset and looks for it in the group of
the variable (then its parents), so the scales are datasets of the group itself and
each dimension has one scale. Readers that go through the members of such a group
skip the coordinates with :func:`variables`. Files of format 1.0 have no such
coordinates (their grids refer to ``/mesh/cell_center_x`` and ``cell_center_z``) and
read the same.
"""

from __future__ import annotations

import h5py
import numpy as np

#: The grid coordinates (no property or modality may take their names) and their attributes.
GRID_COORDINATES = {
    "z": {"units": "m", "long_name": "elevation of the cell centre (z up)"},
    "x": {"units": "m", "long_name": "position of the cell centre along the profile"},
}


def is_coordinate(obj: object) -> bool:
    """``obj`` (from ``group.get(name)``) is a dimension scale."""
    return isinstance(obj, h5py.Dataset) and bool(h5py.h5ds.is_scale(obj.id))


def variable_names(group: h5py.Group) -> list[str]:
    """The names of the members of ``group`` that are not coordinates (a dangling soft
    link is kept: it is no coordinate, and the layout checks report it missing)."""
    return [name for name in group if not is_coordinate(group.get(name))]


def variables(group: h5py.Group) -> dict[str, h5py.Dataset | h5py.Group]:
    """The members of ``group`` without its coordinates, by name."""
    return {name: group[name] for name in variable_names(group)}


# --- writing -----------------------------------------------------------------------
def _scale(group: h5py.Group, name: str, values: np.ndarray, **attrs: str) -> h5py.Dataset:
    """The dimension scale ``name`` of ``group``, created with ``values`` if absent."""
    if name in group:
        return group[name]
    d = group.create_dataset(name, data=values)
    d.make_scale(name)
    d.attrs.update(attrs)
    return d


def attach_grid(d: h5py.Dataset) -> None:
    """Give the (n_z, n_x) cell array ``d`` the coordinates z and x (cell centres, m)
    in its own group, computed from ``/mesh``."""
    mesh = d.file["mesh"]
    nodes_x, nodes_z = mesh["nodes_x"][()], mesh["nodes_z"][()]
    group = d.parent
    z = _scale(group, "z", 0.5 * (nodes_z[:-1] + nodes_z[1:]), **GRID_COORDINATES["z"])
    x = _scale(group, "x", 0.5 * (nodes_x[:-1] + nodes_x[1:]), **GRID_COORDINATES["x"])
    d.dims[0].attach_scale(z)
    d.dims[1].attach_scale(x)


def attach_datum(d: h5py.Dataset) -> None:
    """Give the per-datum array ``d`` the coordinate ``datum`` (1-based) in its group."""
    datum = _scale(
        d.parent, "datum", np.arange(1, len(d) + 1),
        long_name="number of the datum, 1-based in the order of the data file",
    )  # fmt: skip
    d.dims[0].attach_scale(datum)


def attach_sensors(d: h5py.Dataset) -> None:
    """Give the (n, 2) sensor array ``d`` the coordinates ``sensor`` (1-based, as the
    stored indices count) and ``column`` (x, z) in its group."""
    sensor = _scale(
        d.parent, "sensor", np.arange(1, len(d) + 1),
        long_name="number of the sensor, 1-based as the indices a, b, m, n, shot, geophone",
    )  # fmt: skip
    column = _scale(d.parent, "column", np.array(["x", "z"], dtype=h5py.string_dtype()))
    d.dims[0].attach_scale(sensor)
    d.dims[1].attach_scale(column)


def attach_iterations(group: h5py.Group) -> None:
    """Make ``iteration`` of ``/iterations`` (a group of equally long columns) the
    dimension of every column, also those of its subgroups (h5netcdf finds the
    dimension in the parent group)."""
    iteration = group["iteration"]
    iteration.make_scale("iteration")

    def attach(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj != iteration:
            obj.dims[0].attach_scale(iteration)

    group.visititems(attach)


#: Dimensions of ``/diagnostics/correlation`` (rows, columns).
CORRELATION_DIMENSIONS = ("property_row", "property_column")


def attach_correlation(d: h5py.Dataset, properties: list[str]) -> None:
    """Give the (k, k) correlation matrix ``d`` the property names as row and column
    coordinates (two dimensions: xarray does not support one dimension twice)."""
    names = np.array(properties, dtype=h5py.string_dtype())
    for axis, name in enumerate(CORRELATION_DIMENSIONS):
        d.dims[axis].attach_scale(_scale(d.parent, name, names))
