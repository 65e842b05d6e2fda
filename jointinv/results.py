"""The HDF5 result file: one versioned file per run, written atomically.

Layout (``format_version`` 1.0)::

    /meta            attributes: versions, config text, command line, times, seed, stop reason
    /mesh            nodes_x, nodes_z (m), cell_center_x, cell_center_z, core_mask
    /models/<prop>   final model in physical units, shape (n_z, n_x); attrs units, transform
    /data/<name>/    observed, predicted, std, normalized_residual, sensors; attrs chi2, kind, units
    /iterations/     one entry per iteration: beta, phi, step_length, cg_iterations,
                     phi_d/<name>, chi2/<name>, phi_m, coupling/<term>, seconds/<kind>
    /diagnostics/    posterior diagnostics (posterior_std, resolution, information, coverage,
                     eigenvalues, data_fit, ...): see :mod:`jointinv.diagnostics_file`

Models are stored as 2D arrays (z, x) with ``/mesh/cell_center_z`` and
``/mesh/cell_center_x`` attached as dimension scales, so xarray (h5netcdf)
and ParaView readers find the coordinates. z is up, the surface at 0.
"""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import FORMAT_VERSION
from .diagnostics_file import SavedDiagnostics, read_diagnostics


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

    # the field above shadows the builtin inside this class body
    @builtins.property
    def normalized_residual(self) -> np.ndarray:
        return (self.observed - self.predicted) / self.std


@dataclass
class SavedResult:
    """A result file read back."""

    meta: dict[str, Any]
    nodes_x: np.ndarray
    nodes_z: np.ndarray
    models: dict[str, np.ndarray]
    model_units: dict[str, str]
    model_transforms: dict[str, str]
    data: dict[str, SavedData]
    iterations: dict[str, Any]
    diagnostics: SavedDiagnostics | None = None


def write_atomic(path: Path, fill: Any) -> None:
    """Write an HDF5 file through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rewrite_atomic(path: Path, modify: Any) -> None:
    """Change an HDF5 file atomically: copy it to a temporary file in the same
    folder, ``modify`` the copy (open read-write), then rename it over the original.
    The original is untouched if anything fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        with h5py.File(tmp, "r+") as f:
            modify(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fill_mesh(
    f: h5py.File, nodes_x: np.ndarray, nodes_z: np.ndarray, core_mask: np.ndarray
) -> None:
    g = f.create_group("mesh")
    g.attrs["kind"] = "tensor2d"
    g.attrs["convention"] = "x along the profile (m), z up (m), surface at z = 0; cells x-fastest"
    g["nodes_x"] = nodes_x
    g["nodes_z"] = nodes_z
    cx = g.create_dataset("cell_center_x", data=0.5 * (nodes_x[:-1] + nodes_x[1:]))
    cz = g.create_dataset("cell_center_z", data=0.5 * (nodes_z[:-1] + nodes_z[1:]))
    cx.make_scale("x")
    cz.make_scale("z")
    g["core_mask"] = core_mask.reshape(len(nodes_z) - 1, len(nodes_x) - 1)


def fill_model(f: h5py.File, name: str, values: np.ndarray, *, units: str, transform: str) -> None:
    mesh = f["mesh"]
    shape = (len(mesh["nodes_z"]) - 1, len(mesh["nodes_x"]) - 1)
    d = f.require_group("models").create_dataset(name, data=np.asarray(values).reshape(shape))
    d.attrs["units"] = units
    d.attrs["transform"] = transform
    d.dims[0].attach_scale(mesh["cell_center_z"])
    d.dims[1].attach_scale(mesh["cell_center_x"])


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


def fill_iterations(f: h5py.File, columns: dict[str, np.ndarray]) -> None:
    g = f.create_group("iterations")
    for key, values in columns.items():
        g[key] = np.asarray(values)


def fill_meta(f: h5py.File, meta: dict[str, Any]) -> None:
    g = f.create_group("meta")
    g.attrs["format_version"] = FORMAT_VERSION
    for key, value in meta.items():
        g.attrs[key] = value


def read_result(path: str | Path) -> SavedResult:
    """Read a result file written by :func:`jointinv.run`."""
    with h5py.File(path, "r") as f:
        meta = dict(f["meta"].attrs)
        models = {k: d[()].ravel() for k, d in f["models"].items()}
        units = {k: str(d.attrs["units"]) for k, d in f["models"].items()}
        transforms = {k: str(d.attrs["transform"]) for k, d in f["models"].items()}
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
            nodes_x=f["mesh/nodes_x"][()],
            nodes_z=f["mesh/nodes_z"][()],
            models=models,
            model_units=units,
            model_transforms=transforms,
            data=data,
            iterations=iterations,
            diagnostics=read_diagnostics(f),
        )
