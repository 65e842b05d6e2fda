"""PNG plots of a result: model sections with the ground surface and sensors, and
convergence. z is elevation (m); inactive (air) cells are left blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import SavedResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_result(saved: SavedResult, outdir: str | Path) -> list[Path]:
    """Write one section per property and a convergence plot (and, when the result
    has posterior diagnostics, their plots); return the paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [plot_section(saved, name, outdir / f"model_{name}.png") for name in saved.models]
    paths.append(plot_convergence(saved, outdir / "convergence.png"))
    if saved.diagnostics is not None:
        from .diagnostics_plots import plot_diagnostics

        paths.extend(plot_diagnostics(saved, outdir))
    return paths


#: Marker, colour and name of each kind of sensor in the sections.
SENSOR_STYLE = {
    "ert": ("v", "k", "electrodes"),
    "traveltime": ("^", "tab:blue", "geophones/shots"),
    "gravity": ("s", "tab:red", "gravity stations"),
}


def _window(saved: SavedResult) -> tuple[float, float, float, float]:
    """(x0, x1, z0, z1) of the sections, m: the sensors' span and 10 % either side; from
    half that span below the lowest ground (or sensor) in it to just above the highest."""
    sensors = [d.sensors for d in saved.data.values() if len(d.sensors)]
    points = np.vstack(sensors) if sensors else np.empty((0, 2))
    if len(points):
        x0, x1 = points[:, 0].min(), points[:, 0].max()
    else:
        x0, x1 = saved.nodes_x[0], saved.nodes_x[-1]
    span = max(x1 - x0, 1.0)
    x0, x1 = x0 - 0.1 * span, x1 + 0.1 * span
    surface = saved.surface
    inside = (surface[:, 0] >= x0) & (surface[:, 0] <= x1)
    ends = np.interp([x0, x1], surface[:, 0], surface[:, 1])
    z = np.concatenate([surface[inside, 1], ends, points[:, 1]])
    z0 = max(np.min(z) - 0.5 * span, saved.nodes_z[0])
    z1 = np.max(z) + 0.03 * (x1 - x0)
    return float(x0), float(x1), float(z0), float(z1)


def draw_sensors(ax, saved: SavedResult) -> None:
    """The ground surface (black line) and the sensors of every modality, one marker
    per kind (electrodes, geophones and shots, gravity stations)."""
    ax.plot(saved.surface[:, 0], saved.surface[:, 1], "k-", lw=1.0, label="ground surface")
    for dname, d in saved.data.items():
        marker, colour, what = SENSOR_STYLE.get(d.kind, ("o", "0.3", "sensors"))
        ax.plot(
            d.sensors[:, 0], d.sensors[:, 1], marker, color=colour, mfc=colour, mec="w",
            mew=0.3, ms=4, ls="none", label=f"{dname}: {what}",
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


def plot_section(saved: SavedResult, name: str, path: Path) -> Path:
    """Model section of one property, with the ground surface and every sensor."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    values = saved.models[name]
    finite = values[np.isfinite(values)]
    log_scale = saved.model_transforms.get(name) == "log"
    fig, ax = plt.subplots(figsize=(9, 3.8), constrained_layout=True)
    mesh = draw_section(
        ax,
        saved,
        values,
        cmap="Spectral_r" if log_scale else "RdBu_r",
        norm=LogNorm() if log_scale and len(finite) and finite.min() > 0 else None,
    )
    ax.set_title(name)
    fig.colorbar(mesh, ax=ax, label=f"{name} ({saved.model_units[name]})")
    ax.legend(loc="lower right", fontsize=7)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_convergence(saved: SavedResult, path: Path) -> Path:
    """χ² per modality and β against iteration."""
    plt = _pyplot()
    it = saved.iterations
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
    for key, values in it.items():
        if key.startswith("chi2/"):
            ax1.semilogy(it["iteration"], values, "o-", label=key.split("/", 1)[1])
    ax1.axhline(1.0, color="k", lw=0.8, ls="--")
    ax1.set_xlabel("iteration")
    ax1.set_ylabel("χ²")
    ax1.legend()
    ax2.semilogy(it["iteration"], it["beta"], "s-", label="β")
    ax2.semilogy(it["iteration"], it["phi"], "o-", label="Φ")
    ax2.set_xlabel("iteration")
    ax2.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
