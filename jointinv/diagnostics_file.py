"""The ``/diagnostics`` part of a result file (see :mod:`jointinv.diagnostics`).

Layout; every per-cell array has shape (n_z, n_x) with the cell centres z and x
(m) as dimension scales in its group, like ``/models``; per-datum arrays have the
dimension ``datum`` (see :mod:`jointinv.coordinates`)::

    /diagnostics                       attrs: rank, oversampling, power_iterations, probes,
                                       doi_threshold, beta, seconds, prior, std_transform
    /diagnostics/posterior_std/<prop>  posterior std, property's own transform; attrs units,
                                       parameter ("log10(resistivity)" or the property name)
    /diagnostics/prior_std/<prop>      the same for the prior (regularization + couplings)
    /diagnostics/posterior_std_alone/<modality>/<prop>   posterior std with that modality alone
    /diagnostics/resolution/<prop>     diagonal of the model resolution matrix (dimensionless)
    /diagnostics/information/<modality>/<prop>  share of the information per cell, in [0, 1]
    /diagnostics/coverage/<modality>   cumulative sensitivity (1/m² per parameter unit);
                                       attrs property, units
    /diagnostics/doi_mask/<modality>   depth-of-investigation mask (bool); attrs threshold
    /diagnostics/eigenvalues/joint     eigenvalues of the prior-preconditioned data-misfit
    /diagnostics/eigenvalues/<modality>  Hessian, descending (dimensionless)
    /diagnostics/data_fit/<modality>   residual (data units), normalized_residual; attrs chi2,
                                       mean, std, fraction_beyond_3sigma, n_data, units
    /diagnostics/correlation           Pearson correlation of the properties (own transform)
                                       over the core cells; attrs properties; dimensions
                                       property_row, property_column (the names)

Other entries under ``/diagnostics`` (e.g. ``cross_gradient``) belong to the
run and are left alone when the diagnostics are rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .coordinates import (
    CORRELATION_DIMENSIONS,
    attach_correlation,
    attach_datum,
    attach_grid,
    variables,
)

if TYPE_CHECKING:
    from .diagnostics import Diagnostics

#: The entries under /diagnostics that the posterior diagnostics own.
ENTRIES = (
    "posterior_std",
    "prior_std",
    "posterior_std_alone",
    "resolution",
    "information",
    "coverage",
    "doi_mask",
    "eigenvalues",
    "data_fit",
    "correlation",
)

PRIOR_TEXT = (
    "beta * Hessian of the regularization (final beta) + Gauss-Newton Hessians of the "
    "coupling terms at the final model"
)
STD_TEXT = "log10 of the property for log transforms, the property itself for linear ones"
DEFINITIONS = {
    "posterior_std": "sqrt(diag(H^-1)), H = sum_k J_k^T W_k^2 J_k + P (linearised posterior)",
    "prior_std": "sqrt(diag(P^-1)), P = " + PRIOR_TEXT,
    "posterior_std_alone": "sqrt(diag((J_k^T W_k^2 J_k + P)^-1)): one modality's data and P",
    "resolution": "diag(R), R = H^-1 sum_k J_k^T W_k^2 J_k; low-rank part + Hutchinson probes",
    "information": "g_k / sum_j g_j, g_k = 1/var_k - 1/var_prior: precision modality k adds",
    "coverage": "||(W_k J_k)[:, c]||_2 / area_c",
    "doi_mask": "per column, down to the deepest cell with coverage >= threshold * max(core)",
    "eigenvalues": "of S^-1 (J^T W^2 J) S^-T with P = S S^T, descending",
}


@dataclass
class SavedDataFit:
    chi2: float
    mean: float
    std: float
    fraction_beyond_3sigma: float
    residual: np.ndarray
    normalized_residual: np.ndarray
    units: str


@dataclass
class SavedDiagnostics:
    """``/diagnostics`` read back; per-cell arrays are flat (x fastest), NaN (False for
    ``doi_mask``) in inactive (air) cells; ``core_mask`` holds the active core cells."""

    settings: dict[str, Any]
    posterior_std: dict[str, np.ndarray]
    prior_std: dict[str, np.ndarray]
    std_units: dict[str, str]
    parameter: dict[str, str]
    posterior_std_alone: dict[str, dict[str, np.ndarray]]
    resolution: dict[str, np.ndarray]
    information: dict[str, dict[str, np.ndarray]]
    coverage: dict[str, np.ndarray]
    coverage_property: dict[str, str]
    doi_mask: dict[str, np.ndarray]
    eigenvalues: dict[str, np.ndarray]
    data_fit: dict[str, SavedDataFit]
    correlation: np.ndarray
    correlation_properties: list[str] = field(default_factory=list)
    core_mask: np.ndarray | None = None


# --- writing -------------------------------------------------------------------
def cells_on_grid(mesh: h5py.Group, values: np.ndarray) -> np.ndarray:
    """Per-cell values as the (n_z, n_x) grid of ``mesh`` (a ``/mesh`` group).

    ``values`` holds one value per cell or one per active cell (x fastest);
    inactive cells of ``/mesh/active`` become NaN (False for boolean masks).
    """
    shape = (len(mesh["nodes_z"]) - 1, len(mesh["nodes_x"]) - 1)
    values = np.asarray(values).ravel()
    is_mask = values.dtype == bool
    if not is_mask:
        values = values.astype(float)
    active = mesh["active"][()] if "active" in mesh else np.ones(shape, dtype=bool)
    grid = np.full(shape, False if is_mask else np.nan, dtype=values.dtype)
    if values.size == active.size:
        values = values.reshape(shape)[active]
    grid[active] = values  # row-major: the active cells in x-fastest order
    return grid


def _cells(group: h5py.Group, name: str, values: np.ndarray, mesh: h5py.Group) -> h5py.Dataset:
    d = group.create_dataset(name, data=cells_on_grid(mesh, values))
    attach_grid(d)
    return d


def _per_property(
    f: h5py.File,
    entry: str,
    values: dict[str, np.ndarray],
    attrs: dict[str, dict[str, str]] | None = None,
) -> None:
    """One dataset per property; ``attrs[key][prop]`` become attributes."""
    g = f.require_group("diagnostics").create_group(entry)
    g.attrs["definition"] = DEFINITIONS[entry]
    for prop, v in values.items():
        d = _cells(g, prop, v, f["mesh"])
        for key, per_prop in (attrs or {}).items():
            d.attrs[key] = per_prop[prop]


def _nested(f: h5py.File, entry: str, values: dict[str, dict[str, np.ndarray]]) -> None:
    g = f.require_group("diagnostics").create_group(entry)
    g.attrs["definition"] = DEFINITIONS[entry]
    for modality, per_prop in values.items():
        sub = g.create_group(modality)
        for prop, v in per_prop.items():
            _cells(sub, prop, v, f["mesh"])


def fill_diagnostics(f: h5py.File, diagnostics: Diagnostics) -> None:
    """Write ``diagnostics`` under ``/diagnostics`` (``/mesh`` must exist)."""
    d = diagnostics
    g = f.require_group("diagnostics")
    for key, value in d.settings.items():
        g.attrs[key] = value
    g.attrs["seconds"] = d.seconds
    g.attrs["prior"] = PRIOR_TEXT
    g.attrs["std_transform"] = STD_TEXT
    std_attrs = {"units": d.std_units, "parameter": d.parameter}
    _per_property(f, "posterior_std", d.posterior_std, std_attrs)
    _per_property(f, "prior_std", d.prior_std, std_attrs)
    _nested(f, "posterior_std_alone", d.single_std)
    _per_property(f, "resolution", d.resolution)
    _nested(f, "information", d.information)
    _fill_coverage(f, d)
    eig = g.create_group("eigenvalues")
    eig.attrs["definition"] = DEFINITIONS["eigenvalues"]
    for name, values in d.eigenvalues.items():
        eig[name] = values
    _fill_data_fit(f, d)
    c = g.create_dataset("correlation", data=d.correlation)
    c.attrs["properties"] = list(d.properties)
    c.attrs["region"] = "core cells"
    attach_correlation(c, list(d.properties))


def _fill_coverage(f: h5py.File, d: Diagnostics) -> None:
    g = f["diagnostics"]
    cov = g.create_group("coverage")
    cov.attrs["definition"] = DEFINITIONS["coverage"]
    doi = g.create_group("doi_mask")
    doi.attrs["definition"] = DEFINITIONS["doi_mask"]
    for name, values in d.coverage.items():
        c = _cells(cov, name, values, f["mesh"])
        c.attrs["property"] = d.sensed_property[name]
        c.attrs["units"] = "1/m^2 per parameter unit"
        m = _cells(doi, name, d.doi_mask[name], f["mesh"])
        m.attrs["threshold"] = d.settings.get("doi_threshold", np.nan)


def _fill_data_fit(f: h5py.File, d: Diagnostics) -> None:
    g = f["diagnostics"].create_group("data_fit")
    for name, fit in d.data_fit.items():
        sub = g.create_group(name)
        sub["residual"] = fit.residual
        sub["normalized_residual"] = fit.normalized_residual
        sub.attrs["chi2"] = fit.chi2
        sub.attrs["mean"] = fit.mean
        sub.attrs["std"] = fit.std
        sub.attrs["fraction_beyond_3sigma"] = fit.fraction_beyond_3sigma
        sub.attrs["n_data"] = len(fit.residual)
        sub.attrs["units"] = fit.units
        attach_datum(sub["residual"])
        attach_datum(sub["normalized_residual"])


def remove_diagnostics(f: h5py.File) -> None:
    """Delete the posterior diagnostics (not other entries under /diagnostics)."""
    if "diagnostics" not in f:
        return
    g = f["diagnostics"]
    for entry in (*ENTRIES, *CORRELATION_DIMENSIONS):
        if entry in g:
            del g[entry]
    for key in list(g.attrs):
        del g.attrs[key]


# --- reading -------------------------------------------------------------------
def has_diagnostics(f: h5py.File) -> bool:
    return "diagnostics/posterior_std" in f


def _flat(group: h5py.Group, active: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every dataset of ``group`` flattened; with ``active`` (flat bool), float copies
    with NaN in the inactive cells."""
    stored = variables(group)
    if active is None or active.all():
        return {k: d[()].ravel() for k, d in stored.items()}
    return {k: np.where(active, d[()].astype(float).ravel(), np.nan) for k, d in stored.items()}


def _active(f: h5py.File) -> np.ndarray | None:
    """``/mesh/active`` flattened (x fastest), or None for files without it."""
    return f["mesh/active"][()].ravel().astype(bool) if "mesh/active" in f else None


def read_diagnostics(f: h5py.File) -> SavedDiagnostics | None:
    """``/diagnostics`` of an open result file, or None if it has none."""
    if not has_diagnostics(f):
        return None
    g = f["diagnostics"]
    std = g["posterior_std"]
    act = _active(f)
    core = f["mesh/core_mask"][()].ravel().astype(bool)
    return SavedDiagnostics(
        settings=dict(g.attrs),
        posterior_std=_flat(std, act),
        prior_std=_flat(g["prior_std"], act),
        std_units={k: str(d.attrs["units"]) for k, d in variables(std).items()},
        parameter={k: str(d.attrs["parameter"]) for k, d in variables(std).items()},
        posterior_std_alone={k: _flat(s, act) for k, s in g["posterior_std_alone"].items()},
        resolution=_flat(g["resolution"], act),
        information={k: _flat(s, act) for k, s in g["information"].items()},
        coverage=_flat(g["coverage"], act),
        coverage_property={
            k: str(d.attrs["property"]) for k, d in variables(g["coverage"]).items()
        },
        doi_mask={
            k: v.astype(bool) & (True if act is None else act)
            for k, v in _flat(g["doi_mask"]).items()
        },
        eigenvalues=dict(sorted(_flat(g["eigenvalues"]).items(), key=lambda kv: kv[0] != "joint")),
        data_fit={
            k: SavedDataFit(
                chi2=float(s.attrs["chi2"]),
                mean=float(s.attrs["mean"]),
                std=float(s.attrs["std"]),
                fraction_beyond_3sigma=float(s.attrs["fraction_beyond_3sigma"]),
                residual=s["residual"][()],
                normalized_residual=s["normalized_residual"][()],
                units=str(s.attrs["units"]),
            )
            for k, s in g["data_fit"].items()
        },
        correlation=g["correlation"][()],
        correlation_properties=[str(p) for p in g["correlation"].attrs["properties"]],
        core_mask=core if act is None else core & act,
    )
