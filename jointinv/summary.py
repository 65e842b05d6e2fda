"""Text summary of a result file (``jointinv show``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import SavedResult


def summarize(saved: SavedResult, path: Path) -> str:
    m = saved.meta
    lines = [
        f"{path}",
        f"  jointinv {m.get('jointinv_version')} (format {m.get('format_version')}), "
        f"pyGIMLi {m.get('pygimli_version')}, SimPEG {m.get('simpeg_version')}",
        f"  run {m.get('start_time')} -> {m.get('end_time')}",
        f"  stopped: {m.get('stop_reason')} ({m.get('iterations')} iterations)",
        f"  mesh: {len(saved.nodes_x) - 1} x {len(saved.nodes_z) - 1} cells",
        "  models:",
    ]
    for name, values in saved.models.items():
        lines.append(
            f"    {name:<20s} min {np.min(values):10.4g}  median {np.median(values):10.4g}  "
            f"max {np.max(values):10.4g}  [{saved.model_units[name]}]"
        )
    lines.append("  data fit:")
    for name, d in saved.data.items():
        r = d.normalized_residual
        lines.append(
            f"    {name:<20s} {d.kind:<10s} N {len(d.observed):5d}  chi2 {d.chi2:7.3f}  "
            f"rms(norm. residual) {np.sqrt(np.mean(r**2)):6.3f}"
        )
    return "\n".join(lines)
