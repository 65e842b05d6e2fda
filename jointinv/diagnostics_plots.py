"""Figures of the posterior diagnostics (PNGs of ``jointinv show --plot``).

Sections of posterior std (with its ratio to the prior std), resolution and
coverage, each with the depth-of-investigation outline of the modality that
senses the property; normalized residuals per modality; the eigen-spectra;
and a cross-plot of the properties.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import combinations
from typing import Any

import numpy as np

from .plotting import RESOLVED_STD_RATIO, display_units, draw_section, new_figure
from .results import SavedResult


def diagnostics_makers(saved: SavedResult) -> dict[str, Callable[[], Any]]:
    """Every diagnostics figure of ``saved`` by the name of its PNG, made when called
    (none without diagnostics)."""
    d = saved.diagnostics
    if d is None:
        return {}
    makers: dict[str, Callable[[], Any]] = {}
    for prop in d.posterior_std:
        makers[f"posterior_std_{prop}"] = partial(posterior_std_figure, saved, prop)
        makers[f"resolution_{prop}"] = partial(resolution_figure, saved, prop)
    for name in d.coverage:
        makers[f"coverage_{name}"] = partial(coverage_figure, saved, name)
    for name in d.data_fit:
        makers[f"residuals_{name}"] = partial(residuals_figure, saved, name)
    makers["eigenvalues"] = partial(eigenvalues_figure, saved)
    if len(d.correlation_properties) > 1:
        makers["crossplot"] = partial(crossplot_figure, saved)
    return makers


# --- sections -------------------------------------------------------------------
def _grid(saved: SavedResult, values: np.ndarray) -> np.ndarray:
    return np.asarray(values).reshape(len(saved.nodes_z) - 1, len(saved.nodes_x) - 1)


def _doi_modality(saved: SavedResult, prop: str) -> str | None:
    d = saved.diagnostics
    return next((k for k, p in d.coverage_property.items() if p == prop), None)


def _section(saved: SavedResult, ax, values: np.ndarray, *, doi: str | None, **style):
    """One pcolormesh panel in the sensors' window (air cells blank, ground surface and
    sensors drawn), with a DOI outline."""
    mesh = draw_section(ax, saved, values, **style)
    if doi is not None:
        cx = 0.5 * (saved.nodes_x[:-1] + saved.nodes_x[1:])
        cz = 0.5 * (saved.nodes_z[:-1] + saved.nodes_z[1:])
        mask = _grid(saved, saved.diagnostics.doi_mask[doi]).astype(float)
        if mask.any():
            ax.contour(cx, cz, mask, levels=[0.5], colors="k", linewidths=0.8, linestyles="--")
    return mesh


def posterior_std_figure(saved: SavedResult, prop: str):
    """Posterior std of one property and its ratio to the prior std."""
    d = saved.diagnostics
    doi = _doi_modality(saved, prop)
    fig = new_figure((9, 6.5))
    axes = fig.subplots(2, 1)
    m = _section(saved, axes[0], d.posterior_std[prop], doi=doi, cmap="viridis", shading="flat")
    units = display_units(d.std_units[prop])
    fig.colorbar(m, ax=axes[0], label=f"std of {display_units(d.parameter[prop])} ({units})")
    ratio = d.posterior_std[prop] / d.prior_std[prop]
    m = _section(saved, axes[1], ratio, doi=doi, cmap="magma", vmin=0, vmax=1, shading="flat")
    fig.colorbar(m, ax=axes[1], label="posterior / prior std")
    cx = 0.5 * (saved.nodes_x[:-1] + saved.nodes_x[1:])
    cz = 0.5 * (saved.nodes_z[:-1] + saved.nodes_z[1:])
    with np.errstate(invalid="ignore"):
        axes[1].contour(cx, cz, _grid(saved, ratio), levels=[RESOLVED_STD_RATIO], colors="w",
                        linewidths=0.8)  # fmt: skip
    axes[0].set_title(f"{prop}: posterior std" + (f" (dashed: {doi} DOI)" if doi else ""))
    axes[1].set_title(
        f"white: {RESOLVED_STD_RATIO:g}, above which the model section fades a cell", fontsize=9
    )
    return fig



#: Side (cells) of the square window over which the resolution diagonal is averaged
#: for its plot: the Hutchinson estimate is unbiased but noisy cell by cell (with 20
#: probes its error is of the order of the value), and averaging 5 × 5 cells cuts that
#: noise about five-fold.
RESOLUTION_SMOOTHING = 5


def smoothed_resolution(saved: SavedResult, prop: str) -> np.ndarray:
    """diag(R) of ``prop`` averaged over ``RESOLUTION_SMOOTHING`` × ``RESOLUTION_SMOOTHING``
    cells (active cells only; NaN in the others), flat (x fastest)."""
    from scipy.ndimage import uniform_filter

    values = _grid(saved, saved.diagnostics.resolution[prop])
    weight = (saved.active & np.isfinite(values)).astype(float)
    size = RESOLUTION_SMOOTHING
    total = uniform_filter(np.where(weight > 0, values, 0.0), size, mode="constant")
    count = uniform_filter(weight, size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    return np.where(weight > 0, mean, np.nan).ravel()


def resolution_figure(saved: SavedResult, prop: str):
    """Diagonal of the model resolution matrix (locally averaged), log scale."""
    from matplotlib.colors import LogNorm

    d = saved.diagnostics
    values = np.clip(smoothed_resolution(saved, prop), 1e-4, 1.0)
    fig = new_figure((9, 3.8))
    ax = fig.add_subplot()
    doi = _doi_modality(saved, prop)
    m = _section(saved, ax, values, doi=doi, cmap="cividis", norm=LogNorm(1e-4, 1), shading="flat")
    fig.colorbar(m, ax=ax, label="diag(R)")
    n = RESOLUTION_SMOOTHING
    probes = int(d.settings.get("probes", 0))
    ax.set_title(f"{prop}: resolution ({probes} probes; mean over {n} × {n} cells)", fontsize=10)
    return fig



def coverage_figure(saved: SavedResult, name: str):
    """log10 of one modality's coverage, relative to its core maximum, with its DOI."""
    d = saved.diagnostics
    cov = d.coverage[name]
    core = cov[d.core_mask] if d.core_mask is not None else cov
    top = np.nanmax(core, initial=0.0)
    with np.errstate(invalid="ignore"):
        rel = np.log10(np.maximum(cov / max(top, np.finfo(float).tiny), 1e-6))
    fig = new_figure((9, 3.8))
    ax = fig.add_subplot()
    m = _section(saved, ax, rel, doi=name, cmap="plasma", vmin=-4, vmax=0, shading="flat")
    fig.colorbar(m, ax=ax, label="log10(relative coverage)")
    ax.set_title(f"{name}: coverage of {d.coverage_property[name]} (dashed: DOI)")
    return fig



# --- data and spectra -------------------------------------------------------------
def residuals_figure(saved: SavedResult, name: str):
    """Normalized residuals per datum and their histogram against N(0, 1)."""
    fit = saved.diagnostics.data_fit[name]
    r = fit.normalized_residual
    fig = new_figure((9, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(r, ".", ms=3)
    for level in (-3, 3):
        ax1.axhline(level, color="r", lw=0.8, ls="--")
    ax1.set_xlabel("datum")
    ax1.set_ylabel("(d − G(m)) / σ")
    ax1.set_title(f"{name}: χ² {fit.chi2:.2f}, mean {fit.mean:.2f}, std {fit.std:.2f}")
    ax2.hist(r, bins=min(40, max(len(r) // 5, 5)), density=True, alpha=0.7)
    x = np.linspace(-4, 4, 200)
    ax2.plot(x, np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
    ax2.set_xlabel("normalized residual")
    ax2.set_title(f"beyond 3σ: {100 * fit.fraction_beyond_3sigma:.1f} %")
    ax2.legend()
    return fig



def eigenvalues_figure(saved: SavedResult):
    """Eigenvalues of the prior-preconditioned data-misfit Hessians."""
    fig = new_figure((6, 4))
    ax = fig.add_subplot()
    for name, lam in saved.diagnostics.eigenvalues.items():
        lam = lam[lam > 0]
        ax.semilogy(np.arange(1, len(lam) + 1), lam, lw=2 if name == "joint" else 1, label=name)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("index")
    ax.set_ylabel("λ (data information / prior)")
    ax.legend()
    return fig



def crossplot_figure(saved: SavedResult):
    """Every pair of properties (own transform) over the core cells, with the correlation."""
    d = saved.diagnostics
    props = d.correlation_properties
    pairs = list(combinations(range(len(props)), 2))
    fig = new_figure((4 * len(pairs), 3.8))
    axes = fig.subplots(1, len(pairs), squeeze=False)
    core = d.core_mask if d.core_mask is not None else slice(None)
    values = {p: _own_transform(saved, p)[core] for p in props}
    for ax, (i, j) in zip(axes[0], pairs):
        a, b = props[i], props[j]
        ax.plot(values[a], values[b], ".", ms=2, alpha=0.5)
        ax.set_xlabel(_axis_label(saved, a))
        ax.set_ylabel(_axis_label(saved, b))
        ax.set_title(f"r = {d.correlation[i, j]:.2f}")
    return fig



def _axis_label(saved: SavedResult, prop: str) -> str:
    """``log10(resistivity (Ω·m))`` for log properties, ``velocity (m/s)`` otherwise."""
    units = display_units(saved.model_units.get(prop, ""))
    named = f"{prop} ({units})" if units else prop
    return f"log10 {named}" if saved.model_transforms.get(prop) == "log" else named


def _own_transform(saved: SavedResult, prop: str) -> np.ndarray:
    values = saved.models[prop]
    return np.log10(values) if saved.model_transforms.get(prop) == "log" else values
