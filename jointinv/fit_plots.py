"""Observed against predicted data, one PNG per modality (``fit_<modality>.png``).

- ERT: pseudosections of the observed and predicted apparent resistivity and of the
  normalized misfit (d_obs − d_pred)/σ (of ln ρa), each datum a cell at its
  pseudosection position (:func:`pseudosection_positions`).
- Traveltime: first arrivals against geophone x, observed (markers) and predicted
  (lines), one colour per shot; below, the normalized misfit.
- Gravity: gz along the stations, observed with ±σ bars and predicted; below, the
  normalized misfit.

They need the indices of every datum into the sensors (``/data/<modality>/a, b, m, n``
or ``shot, geophone``); results written before these were stored get one logged line
instead of the ERT and traveltime plots.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .plotting import display_units, new_figure, plain_log_ticks, save
from .results import SavedData, SavedResult

log = logging.getLogger(__name__)

#: Normalized misfits beyond ±this saturate the misfit colour scale.
MISFIT_CLIP = 3.0


def plot_fits(saved: SavedResult, outdir: Path) -> list[Path]:
    """Write ``fit_<modality>.png`` for every modality that can be drawn; return the
    paths (one logged line for each that cannot)."""
    return [save(make(), Path(outdir) / f"{n}.png") for n, make in fit_makers(saved).items()]


def fit_makers(saved: SavedResult) -> dict[str, Callable[[], Any]]:
    """The data-fit figure of every modality that can be drawn, by the name of its PNG
    (``fit_<modality>``), made when called; one logged line for each that cannot."""
    makers = {}
    for name, data in saved.data.items():
        draw = FIT_PLOTS.get(data.kind)
        if draw is None:
            log.warning("%s: no data-fit plot for kind %r", name, data.kind)
            continue
        problem = missing_indices(data)
        if problem:
            log.warning("%s: data-fit plot skipped: %s", name, problem)
            continue
        makers[f"fit_{name}"] = partial(draw, name, data)
    return makers


#: The index datasets each kind needs, and which of them may be 0 (a remote electrode).
NEEDED = {
    "ert": (("a", "b", "m", "n"), ("b", "n")),
    "traveltime": (("shot", "geophone"), ()),
    "gravity": ((), ()),
}


def missing_indices(data: SavedData) -> str | None:
    """Why the indices of ``data`` cannot place its data (None when they can)."""
    keys, remote_ok = NEEDED.get(data.kind, ((), ()))
    absent = [k for k in keys if k not in data.indices]
    if absent:
        return (
            f"the result has no {', '.join(absent)} indices (written before they were "
            "stored; run again to get this plot)"
        )
    n = len(data.observed)
    if data.kind == "gravity" and len(data.sensors) != n:
        return f"{len(data.sensors)} stations for {n} data"
    for key in keys:
        idx = np.asarray(data.indices[key])
        low = 0 if key in remote_ok else 1
        if idx.shape != (n,) or idx.dtype.kind not in "iu":
            return f"index {key} is not one integer per datum"
        if n and (idx.min() < low or idx.max() > len(data.sensors)):
            return f"index {key} lies outside {low}..{len(data.sensors)} (rows of the sensors)"
    return None


# --- ERT --------------------------------------------------------------------------
def pseudosection_positions(
    electrode_x: np.ndarray, a: np.ndarray, b: np.ndarray, m: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pseudosection position (x, pseudodepth; m) of four-electrode data.

    ``a b m n`` are 1-based indices into ``electrode_x`` as in the data file; 0 in
    ``b`` or ``n`` is a remote electrode (pole arrays), left out. The current dipole's
    midpoint s is A (B remote) or (A + B)/2, the potential dipole's r is M or
    (M + N)/2. x = (s + r)/2; the pseudodepth is |r − s|/2, or, where s and r
    coincide (Wenner, Schlumberger), half the array's length (AB/2). This is SimPEG's
    convention (``pseudo_locations``); e.g. dipole-dipole with spacing a and
    separation n: x at the array's centre, pseudodepth (n + 1)·a/2; Wenner: 1.5·a.
    """
    ex = np.asarray(electrode_x, dtype=float)

    def at(idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        return np.where(idx > 0, ex[np.clip(idx, 1, None) - 1], np.nan)

    xa, xb, xm, xn = at(a), at(b), at(m), at(n)
    source = np.where(np.isnan(xb), xa, 0.5 * (xa + xb))
    receiver = np.where(np.isnan(xn), xm, 0.5 * (xm + xn))
    quad = np.c_[xa, xb, xm, xn]
    length = np.nanmax(quad, axis=1) - np.nanmin(quad, axis=1)
    separation = np.abs(receiver - source)
    coincide = separation <= 1e-6 * length
    depth = np.where(coincide, 0.5 * length, 0.5 * separation)
    return 0.5 * (source + receiver), depth


def _electrode_spacing(x: np.ndarray) -> float:
    """Median spacing (m) of the distinct electrode x (1 without two of them)."""
    gaps = np.diff(np.unique(np.round(np.asarray(x, dtype=float), 6)))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if len(gaps) else 1.0


def _cells(ax, x: np.ndarray, depth: np.ndarray, values: np.ndarray, size: float, **style):
    """One square of side ``size`` (m) per datum, centred at (x, depth), coloured."""
    from matplotlib.collections import PolyCollection

    h = 0.5 * size
    corners = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    verts = np.c_[x, depth][:, None, :] + corners[None, :, :]
    cells = PolyCollection(verts, array=values, edgecolors="face", linewidths=0.2, **style)
    ax.add_collection(cells)
    return cells


def ert_fit_figure(name: str, data: SavedData):
    """Pseudosections of observed and predicted ρa and of the normalized misfit."""
    from matplotlib.colors import LogNorm, Normalize

    ex = data.sensors[:, 0]
    idx = data.indices
    x, depth = pseudosection_positions(ex, idx["a"], idx["b"], idx["m"], idx["n"])
    size = 0.5 * _electrode_spacing(ex)
    observed, predicted = np.exp(data.observed), np.exp(data.predicted)  # ln(Ω·m) → Ω·m
    both = np.r_[observed, predicted]
    rho = LogNorm(float(both.min()), float(both.max()))
    misfit = Normalize(-MISFIT_CLIP, MISFIT_CLIP)
    panels = (
        (observed, rho, "Spectral_r", "observed", "ρa (Ω·m)"),
        (predicted, rho, "Spectral_r", f"predicted (χ² {data.chi2:.2f})", "ρa (Ω·m)"),
        (data.normalized_residual, misfit, "RdBu_r",
         f"normalized misfit (d_obs − d_pred)/σ of ln ρa, colours clipped at ±{MISFIT_CLIP:g}",
         "(d_obs − d_pred)/σ"),
    )  # fmt: skip
    fig = new_figure((9, 8))
    axes = fig.subplots(3, 1, sharex=True, sharey=True)
    for ax, (values, norm, cmap, title, what) in zip(axes, panels):
        cells = _cells(ax, x, depth, values, size, norm=norm, cmap=cmap)
        ax.plot(ex, np.zeros_like(ex), "kv", ms=3, clip_on=False, label="electrodes")
        extend = "both" if norm is misfit and np.abs(values).max() > MISFIT_CLIP else "neither"
        bar = fig.colorbar(cells, ax=ax, label=what, extend=extend)
        if norm is rho:
            plain_log_ticks(bar)
        ax.set_title(f"{name}: {title}", fontsize=10)
        ax.set_ylabel("pseudodepth (m)")
    pad = size
    axes[0].set_xlim(min(ex.min(), x.min()) - pad, max(ex.max(), x.max()) + pad)
    axes[0].set_ylim(depth.max() + pad, 0)
    axes[-1].set_xlabel("x (m)")
    return fig


# --- traveltime -------------------------------------------------------------------
def traveltime_fit_figure(name: str, data: SavedData):
    """Traveltime curves per shot (observed markers, predicted lines) and the misfit."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    shot, geophone = data.indices["shot"], data.indices["geophone"]
    shot_x, geo_x = data.sensors[shot - 1, 0], data.sensors[geophone - 1, 0]
    norm = Normalize(float(shot_x.min()), float(shot_x.max()))
    colours = ScalarMappable(norm, "viridis")
    fig = new_figure((9, 6.5))
    ax, res = fig.subplots(2, 1, sharex=True, height_ratios=[2.2, 1])
    t_obs, t_pred = 1e3 * data.observed, 1e3 * data.predicted  # s → ms
    for s in np.unique(shot):
        rows = np.flatnonzero(shot == s)
        x0 = shot_x[rows[0]]
        c = colours.to_rgba(x0)
        ax.plot(geo_x[rows], t_obs[rows], "o", ms=3, mfc="none", mec=c, mew=0.8)
        for side in (geo_x[rows] <= x0, geo_x[rows] >= x0):  # one line either side of the shot
            branch = rows[side][np.argsort(geo_x[rows[side]])]
            ax.plot(geo_x[branch], t_pred[branch], "-", color=c, lw=1.0)
        ax.plot(x0, 0.0, "*", color=c, ms=7, clip_on=False)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"first arrival ({display_units('ms')})")
    ax.set_title(f"{name}: traveltimes, χ² {data.chi2:.2f}", fontsize=10)
    ax.legend(
        handles=[
            Line2D([], [], marker="o", ls="none", mfc="none", mec="k", label="observed"),
            Line2D([], [], color="k", label="predicted"),
            Line2D([], [], marker="*", ls="none", color="k", label="shot"),
        ],
        fontsize=8, loc="upper left",
    )  # fmt: skip
    res.scatter(geo_x, data.normalized_residual, c=shot_x, cmap="viridis", norm=norm, s=6)
    fig.colorbar(colours, ax=[ax, res], label="shot x (m)")
    _misfit_axes(res, "geophone x (m)")
    return fig


# --- gravity ----------------------------------------------------------------------
def gravity_fit_figure(name: str, data: SavedData):
    """gz observed (±σ) and predicted along the stations, and the misfit."""
    x = data.sensors[:, 0]
    order = np.argsort(x)
    units = display_units(data.units)
    fig = new_figure((9, 5.5))
    ax, res = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax.errorbar(x, data.observed, yerr=data.std, fmt="o", ms=3, color="k", lw=0.8,
                capsize=2, label="observed ± σ")  # fmt: skip
    ax.plot(x[order], data.predicted[order], "-", color="tab:red", lw=1.2, label="predicted")
    ax.set_ylabel(f"gz ({units})")
    ax.set_title(f"{name}: gravity anomaly, χ² {data.chi2:.2f}", fontsize=10)
    ax.legend(fontsize=8)
    res.plot(x, data.normalized_residual, "o", ms=3, color="k")
    _misfit_axes(res, "station x (m)")
    return fig


def _misfit_axes(ax, xlabel: str) -> None:
    """A 0 line and the ±1 band on a panel of normalized misfits."""
    ax.axhspan(-1, 1, color="0.88", zorder=0, label="±1")
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylabel("(d_obs − d_pred)/σ")
    ax.set_xlabel(xlabel)


FIT_PLOTS = {
    "ert": ert_fit_figure,
    "traveltime": traveltime_fit_figure,
    "gravity": gravity_fit_figure,
}
