"""PNG plots of a result: model sections with sensors, and convergence."""

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


def _core_window(saved: SavedResult) -> tuple[float, float, float]:
    sensors = np.vstack([d.sensors for d in saved.data.values()])
    x0, x1 = sensors[:, 0].min(), sensors[:, 0].max()
    span = max(x1 - x0, 1.0)
    return x0 - 0.1 * span, x1 + 0.1 * span, -0.5 * span


def plot_section(saved: SavedResult, name: str, path: Path) -> Path:
    """Model section of one property, with the sensors that sense it."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    nx, nz = len(saved.nodes_x) - 1, len(saved.nodes_z) - 1
    values = saved.models[name].reshape(nz, nx)
    log_scale = saved.model_transforms.get(name) == "log"
    fig, ax = plt.subplots(figsize=(9, 3.8), constrained_layout=True)
    mesh = ax.pcolormesh(
        saved.nodes_x,
        saved.nodes_z,
        values,
        cmap="Spectral_r" if log_scale else "RdBu_r",
        norm=LogNorm() if log_scale and values.min() > 0 else None,
        shading="flat",
    )
    for dname, d in saved.data.items():
        if d.property == name:
            ax.plot(d.sensors[:, 0], d.sensors[:, 1], "kv", ms=3, label=f"{dname} sensors")
    x0, x1, zmin = _core_window(saved)
    ax.set_xlim(x0, x1)
    ax.set_ylim(max(zmin, saved.nodes_z[0]), max(saved.nodes_z[-1], 0) + 0.02 * (x1 - x0))
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m, up)")
    ax.set_title(name)
    fig.colorbar(mesh, ax=ax, label=f"{name} ({saved.model_units[name]})")
    if ax.get_legend_handles_labels()[0]:
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
