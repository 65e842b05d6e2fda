"""PNG plots of a result: model sections with the ground surface and sensors, data fit,
and convergence. z is elevation (m); inactive (air) cells are left blank.

Figures are made with matplotlib's object-oriented API (a ``Figure`` on its own Agg
canvas), never through ``pyplot``: plotting does not change the backend or the open
figures of the caller (a notebook, say).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .results import SavedResult

log = logging.getLogger(__name__)

#: A cell is resolved where its posterior std is at most this fraction of its prior
#: std: the data reduced the std by at least 20 % (``/diagnostics/posterior_std`` and
#: ``prior_std``, which exist for every inverted property). Sections fade the others.
RESOLVED_STD_RATIO = 0.8

#: Colour and opacity of the veil over the unresolved cells of a section (light grey,
#: not white: white is 0 on a diverging scale).
FADE_COLOUR = "0.85"
FADE_ALPHA = 0.7
FADE_GID = "not resolved"

#: Vertical step (fraction of the window's width) between the sensors of successive
#: modalities, so that sensors of several methods at one x stay visible.
SENSOR_LIFT = 0.012

#: Marker, colour and name of each kind of sensor in the sections.
SENSOR_STYLE = {
    "ert": ("v", "k", "electrodes"),
    "traveltime": ("^", "tab:blue", "geophones/shots"),
    "gravity": ("s", "tab:red", "gravity stations"),
}

DPI = 120


# --- figures without pyplot --------------------------------------------------------
def new_figure(figsize: tuple[float, float], *, layout: str | None = "constrained"):
    """A matplotlib ``Figure`` on its own Agg canvas (no pyplot, no backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path``; return the path."""
    fig.savefig(path, dpi=DPI)
    return path


# --- units ---------------------------------------------------------------------
_OHM_M = re.compile(r"\bohm\s*[-*.·]?\s*m\b", re.IGNORECASE)
_OHM = re.compile(r"\bohms?\b", re.IGNORECASE)
_GCC = re.compile(r"\bg/cc\b", re.IGNORECASE)
_POWER = re.compile(r"\^\(?(-?\d+)\)?")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def display_units(units: str) -> str:
    """Units as written in a config or result (``ohm*m``, ``g/cm^3``, ``1/m^2``)
    for a label: ``Ω·m``, ``g/cm³``, ``1/m²``; other text unchanged (``m/s``, ``SI``,
    ``mGal``)."""
    text = _OHM_M.sub("Ω·m", units.strip())
    text = _OHM.sub("Ω", text)
    text = _GCC.sub("g/cm³", text)
    text = _POWER.sub(lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    return text.replace("*", "·")


def label(name: str, units: str) -> str:
    """``name (units)`` with display units; just ``name`` without units."""
    shown = display_units(units)
    return f"{name} ({shown})" if shown else name


# --- the whole set -------------------------------------------------------------
def plot_result(saved: SavedResult, outdir: str | Path, *, doi_mask: bool = True) -> list[Path]:
    """Write one section per property, a data-fit plot per modality
    (``fit_<modality>.png``) and a convergence plot (and, when the result has posterior
    diagnostics, their plots); return the paths.

    With ``doi_mask`` (and diagnostics), the cells a section's data do not resolve
    (see :func:`unresolved_cells`) are faded.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    makers = figure_makers(saved, doi_mask=doi_mask)
    return [save(make(), outdir / f"{name}.png") for name, make in makers.items()]


def figure_makers(saved: SavedResult, *, doi_mask: bool = True) -> dict[str, Callable[[], Any]]:
    """Every figure of a result by the name of its PNG (``model_<property>``,
    ``fit_<modality>``, ``convergence`` and, with diagnostics, ``posterior_std_<property>``,
    ``resolution_<property>``, ``coverage_<modality>``, ``residuals_<modality>``,
    ``eigenvalues``, ``crossplot``), each made when called."""
    from .diagnostics_plots import diagnostics_makers
    from .fit_plots import fit_makers

    makers: dict[str, Callable[[], Any]] = {
        f"model_{name}": partial(section_figure, saved, name, doi_mask=doi_mask)
        for name in saved.models
    }
    makers.update(fit_makers(saved))
    makers["convergence"] = partial(convergence_figure, saved)
    makers.update(diagnostics_makers(saved))
    return makers


def figures(saved: SavedResult, which: str | None = None, *, doi_mask: bool = True) -> Any:
    """The figures of a result (``SavedResult.plot`` and ``RunResult.plot``).

    Parameters
    ----------
    which : str, optional
        One figure: the name of its PNG (see :func:`figure_makers`: ``model_velocity``,
        ``fit_ert``, ``convergence``, ...), or a property (its model section) or a
        modality (its data fit). Default: every figure.
    doi_mask : bool
        Fade the cells the data do not resolve in the model sections.

    Returns
    -------
    matplotlib.figure.Figure, or dict of them by name when ``which`` is None
        Figures on their own Agg canvas (no pyplot): show one in a notebook by
        leaving it as the cell's value, or save it with ``fig.savefig(path)``.

    Raises
    ------
    KeyError
        ``which`` names no figure; the message lists those there are.
    """
    makers = figure_makers(saved, doi_mask=doi_mask)
    if which is None:
        return {name: make() for name, make in makers.items()}
    for name in (which, f"model_{which}", f"fit_{which}"):
        if name in makers:
            return makers[name]()
    raise KeyError(f"no figure {which!r}; there are: {', '.join(makers)}")


# --- sections ------------------------------------------------------------------
def _sensor_window(saved: SavedResult) -> tuple[np.ndarray, float, float, float]:
    """Every sensor position; x0, x1 (m): the sensors' span and 10 % either side; the
    span (m, at least 1)."""
    sensors = [d.sensors for d in saved.data.values() if len(d.sensors)]
    points = np.vstack(sensors) if sensors else np.empty((0, 2))
    if len(points):
        x0, x1 = points[:, 0].min(), points[:, 0].max()
    else:
        x0, x1 = saved.nodes_x[0], saved.nodes_x[-1]
    span = max(x1 - x0, 1.0)
    return points, float(x0 - 0.1 * span), float(x1 + 0.1 * span), float(span)


def sensor_lifts(saved: SavedResult) -> dict[str, float]:
    """Vertical offset (m) of each modality's sensor markers in the sections: 0 for
    the first, one step more for each next (step: ``SENSOR_LIFT`` × window width)."""
    _, x0, x1, _ = _sensor_window(saved)
    step = SENSOR_LIFT * (x1 - x0)
    return {name: i * step for i, name in enumerate(saved.data)}


def _window(saved: SavedResult) -> tuple[float, float, float, float]:
    """(x0, x1, z0, z1) of the sections, m: the sensors' span and 10 % either side; from
    half that span below the lowest ground (or sensor) in it to just above the highest
    (lifted) sensor."""
    points, x0, x1, span = _sensor_window(saved)
    surface = saved.surface
    inside = (surface[:, 0] >= x0) & (surface[:, 0] <= x1)
    ends = np.interp([x0, x1], surface[:, 0], surface[:, 1])
    z = np.concatenate([surface[inside, 1], ends, points[:, 1]])
    lift = max(sensor_lifts(saved).values(), default=0.0)
    z0 = max(np.min(z) - 0.5 * span, saved.nodes_z[0])
    z1 = np.max(z) + lift + 0.03 * (x1 - x0)
    return float(x0), float(x1), float(z0), float(z1)


def draw_sensors(ax, saved: SavedResult) -> None:
    """The ground surface (black line) and the sensors of every modality, one marker
    per kind (electrodes, geophones and shots, gravity stations), each modality lifted
    a little above the previous one (:func:`sensor_lifts`) so none hides another."""
    ax.plot(saved.surface[:, 0], saved.surface[:, 1], "k-", lw=1.0, label="ground surface")
    lifts = sensor_lifts(saved)
    for dname, d in saved.data.items():
        marker, colour, what = SENSOR_STYLE.get(d.kind, ("o", "0.3", "sensors"))
        ax.plot(
            d.sensors[:, 0], d.sensors[:, 1] + lifts[dname], marker, color=colour, mfc=colour,
            mec="w", mew=0.3, ms=4, ls="none", label=f"{dname}: {what}",
        )  # fmt: skip


def draw_section(ax, saved: SavedResult, values: np.ndarray, **style):
    """One cell array (flat, x fastest, or (n_z, n_x)) as a section on ``ax``: inactive
    (air) and NaN cells blank, the ground surface and the sensors drawn, z as elevation,
    equal aspect, in the sensors' window. ``style`` goes to ``pcolormesh``; returns
    its QuadMesh."""
    grid = np.asarray(values, dtype=float).reshape(saved.shape)
    grid = np.ma.masked_where(~saved.active | ~np.isfinite(grid), grid)
    style.setdefault("shading", "flat")
    mesh = ax.pcolormesh(saved.nodes_x, saved.nodes_z, grid, **style)
    draw_sensors(ax, saved)
    x0, x1, z0, z1 = _window(saved)
    ax.set_xlim(x0, x1)
    ax.set_ylim(z0, z1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("elevation z (m)")
    return mesh


def std_ratio(saved: SavedResult, name: str) -> np.ndarray | None:
    """Flat (x fastest) posterior std / prior std of property ``name`` (NaN in the air);
    None without diagnostics for ``name`` (no diagnostics, or a derived property)."""
    d = saved.diagnostics
    if d is None or name not in d.posterior_std or name not in d.prior_std:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        return d.posterior_std[name] / d.prior_std[name]


def unresolved_cells(saved: SavedResult, name: str) -> np.ndarray | None:
    """Flat bool (x fastest): the active cells whose posterior std exceeds
    ``RESOLVED_STD_RATIO`` × their prior std (outside the depth of investigation);
    None without diagnostics for ``name`` (see :func:`std_ratio`)."""
    ratio = std_ratio(saved, name)
    if ratio is None:
        return None
    return saved.active.ravel() & (ratio > RESOLVED_STD_RATIO)


def is_diverging(saved: SavedResult, name: str) -> bool:
    """Linear properties whose values span 0 (a contrast): a colour scale centred on 0."""
    values = saved.models[name][np.isfinite(saved.models[name])]
    linear = saved.model_transforms.get(name) == "linear"
    return bool(linear and len(values) and values.min() < 0 < values.max())


def colour_norm(values: np.ndarray, transform: str | None, diverging: bool):
    """The colour normalisation of a section from the ``values`` it should span: log
    for log properties, symmetric about 0 when ``diverging``, linear otherwise."""
    from matplotlib.colors import LogNorm, Normalize

    v = values[np.isfinite(values)]
    if not len(v):
        return Normalize()
    if diverging:
        top = float(np.max(np.abs(v))) or 1.0
        return Normalize(-top, top)
    if transform == "log" and v.min() > 0:
        return LogNorm(float(v.min()), float(v.max()))
    return Normalize(float(v.min()), float(v.max()))


def section_figure(saved: SavedResult, name: str, *, doi_mask: bool = True):
    """The model section of one property: log colours for log properties, a diverging
    map centred on 0 for linear ones that span 0; with ``doi_mask``, the unresolved
    cells faded and left out of the colour scale."""
    values = saved.models[name]
    transform = saved.model_transforms.get(name)
    diverging = is_diverging(saved, name)
    faded = unresolved_cells(saved, name) if doi_mask else None
    scaled = values if faded is None or faded.all() else np.where(faded, np.nan, values)
    norm = colour_norm(scaled, transform, diverging)
    fig = new_figure((9, 3.8))
    ax = fig.add_subplot()
    cmap = "RdBu_r" if diverging else "Spectral_r" if transform == "log" else "viridis"
    mesh = draw_section(ax, saved, values, cmap=cmap, norm=norm)
    title = name
    if faded is not None and faded.any():
        _fade(ax, saved, faded)
        title += f"  (faded: not resolved, posterior/prior std > {RESOLVED_STD_RATIO:g})"
    ax.set_title(title, fontsize=10)
    units = label(name, saved.model_units[name])
    bar = fig.colorbar(mesh, ax=ax, label=units, extend=_extend(values, norm))
    if transform == "log" and not diverging:
        plain_log_ticks(bar)
    handles = ax.get_legend_handles_labels()[0]
    if faded is not None and faded.any():
        from matplotlib.patches import Patch

        handles.append(Patch(color=FADE_COLOUR, alpha=FADE_ALPHA, label=FADE_GID))
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    return fig


def _fade(ax, saved: SavedResult, faded: np.ndarray) -> None:
    """A light veil (``FADE_COLOUR``, ``FADE_ALPHA``) over the ``faded`` cells (flat bool)."""
    from matplotlib.colors import ListedColormap

    veil = np.ma.masked_where(~faded.reshape(saved.shape), np.ones(saved.shape))
    ax.pcolormesh(
        saved.nodes_x, saved.nodes_z, veil, cmap=ListedColormap([FADE_COLOUR]), alpha=FADE_ALPHA,
        shading="flat", gid=FADE_GID,
    )  # fmt: skip


def plain_log_ticks(bar) -> None:
    """Ticks of a log colour bar at 1, 2, 5 × 10ⁿ written as plain numbers (2000, not
    2×10³)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    bar.ax.yaxis.set_minor_locator(NullLocator())


def _extend(values: np.ndarray, norm) -> str:
    """Colour-bar arrows for values beyond the norm's range."""
    v = values[np.isfinite(values)]
    if not len(v) or norm.vmin is None:
        return "neither"
    low, high = v.min() < norm.vmin, v.max() > norm.vmax
    return {(True, True): "both", (True, False): "min", (False, True): "max"}.get(
        (bool(low), bool(high)), "neither"
    )


def plot_section(saved: SavedResult, name: str, path: Path, *, doi_mask: bool = True) -> Path:
    """Model section of one property, with the ground surface and every sensor."""
    return save(section_figure(saved, name, doi_mask=doi_mask), path)


# --- convergence ---------------------------------------------------------------
def chi2_targets(saved: SavedResult) -> dict[str, float]:
    """Each modality's χ² target: from ``/data/<name>`` (attr ``chi2_target``), else
    from the config stored in ``/meta`` (``modalities.<name>.chi2_target``, then
    ``inversion.chi2_target``), else 1."""
    out = {n: d.chi2_target for n, d in saved.data.items() if d.chi2_target is not None}
    if len(out) == len(saved.data):
        return out
    raw = _stored_config(saved)
    inversion = raw.get("inversion") if isinstance(raw.get("inversion"), dict) else {}
    modalities = raw.get("modalities") if isinstance(raw.get("modalities"), dict) else {}
    default = _positive(inversion.get("chi2_target")) or 1.0
    for name in saved.data:
        if name not in out:
            own = modalities.get(name)
            out[name] = (_positive(own.get("chi2_target")) if isinstance(own, dict) else None) or (
                default
            )
    return out


def _stored_config(saved: SavedResult) -> dict:
    import yaml

    try:
        raw = yaml.safe_load(str(saved.meta.get("config_text", "")))
    except Exception:  # noqa: BLE001 - a stored config that no longer reads: defaults
        return {}
    return raw if isinstance(raw, dict) else {}


def _positive(value: object) -> float | None:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return float(number) if number is not None and np.isfinite(number) and number > 0 else None


def _band(value: object) -> tuple[float, float] | None:
    """``/meta`` chi2_band as (low, high) factors of the target, if it reads as such."""
    try:
        low, high = (float(v) for v in np.ravel(value))
    except (TypeError, ValueError):
        return None
    return (low, high) if 0 < low < high < np.inf else None


def convergence_figure(saved: SavedResult):
    """χ² per modality with its own target (dashed; black when every modality has the
    same, else in the modality's colour) and its success band (shaded, ``chi2_band`` ×
    target), and β and Φ, against iteration."""
    it = saved.iterations
    fig = new_figure((9, 3.5))
    ax1, ax2 = fig.subplots(1, 2)
    colours = {}
    for key, values in it.items():
        if key.startswith("chi2/"):
            (line,) = ax1.semilogy(it["iteration"], values, "o-", label=key.split("/", 1)[1])
            colours[line.get_label()] = line.get_color()
    targets = {n: t for n, t in chi2_targets(saved).items() if n in colours}
    band = _band(saved.meta.get("chi2_band"))
    for target in sorted(set(targets.values())):
        names = [n for n, t in targets.items() if t == target]
        colour = "k" if len(names) == len(targets) else colours[names[0]]
        which = "" if len(names) == len(targets) else f" ({', '.join(names)})"
        ax1.axhline(target, color=colour, lw=0.9, ls="--", label=f"χ² target {target:g}{which}")
        if band is not None:
            ax1.axhspan(band[0] * target, band[1] * target, color=colour, alpha=0.07, lw=0)
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("χ²")
    ax1.legend(fontsize=7)
    ax2.semilogy(it["iteration"], it["beta"], "s-", label="β")
    ax2.semilogy(it["iteration"], it["phi"], "o-", label="Φ")
    ax2.set_xlabel("iteration")
    ax2.legend()
    return fig


def plot_convergence(saved: SavedResult, path: Path) -> Path:
    """χ² per modality (with its target) and β, Φ against iteration."""
    return save(convergence_figure(saved), path)
