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
            f"    {name:<20s} min {np.nanmin(values):10.4g}  median {np.nanmedian(values):10.4g}  "
            f"max {np.nanmax(values):10.4g}  [{saved.model_units[name]}]"
        )
    lines.append("  data fit:")
    for name, d in saved.data.items():
        r = d.normalized_residual
        lines.append(
            f"    {name:<20s} {d.kind:<10s} N {len(d.observed):5d}  chi2 {d.chi2:7.3f}  "
            f"rms(norm. residual) {np.sqrt(np.mean(r**2)):6.3f}"
        )
    lines.extend(extra_lines(path))
    if saved.diagnostics is not None:
        lines.extend(diagnostics_lines(saved))
    return "\n".join(lines)


def extra_lines(path: Path) -> list[str]:
    """The estimated biases (``/biases``) and the separate runs (``/separate``), if any."""
    from .resultfile import open_result

    lines: list[str] = []
    with open_result(path) as f:
        for modality, group in f.get("biases", {}).items():
            for kind, d in group.items():
                units = d.attrs.get("units", "")
                for label, value, std in zip(d["label"].asstr()[()], d["value"][()], d["std"][()]):
                    lines.append(
                        f"  bias {modality} {kind} {label}: {value:.4g} ± {std:.2g} {units}"
                    )
        for modality, group in f.get("separate", {}).items():
            chi2 = group[f"data/{modality}"].attrs["chi2"]
            lines.append(
                f"  separate {modality}: chi2 {chi2:.3f} after {group.attrs['iterations']} "
                f"iterations ({group.attrs['stop_reason']})"
            )
    return lines


def diagnostics_lines(saved: SavedResult) -> list[str]:
    """Short summary of ``/diagnostics``: spectra, std per property, residual statistics."""
    d = saved.diagnostics
    s = d.settings
    lines = [
        f"  posterior diagnostics (rank {s.get('rank')}, {s.get('probes')} probes, "
        f"{s.get('seconds', float('nan')):.1f} s):",
        "    eigenvalues > 1: "
        + ", ".join(f"{k} {int(np.sum(v > 1))}" for k, v in d.eigenvalues.items()),
    ]
    for prop, std in d.posterior_std.items():
        doi = next((k for k, p in d.coverage_property.items() if p == prop), None)
        inside = f", inside the {doi} DOI {np.nanmedian(std[d.doi_mask[doi]]):.3g}" if doi else ""
        lines.append(
            f"    {prop:<20s} std of {d.parameter[prop]}: median {np.nanmedian(std):.3g} "
            f"(prior {np.nanmedian(d.prior_std[prop]):.3g}){inside} [{d.std_units[prop]}]"
        )
    for name, fit in d.data_fit.items():
        lines.append(
            f"    {name:<20s} normalized residuals: mean {fit.mean:+.3f}  std {fit.std:.3f}  "
            f"beyond 3σ {100 * fit.fraction_beyond_3sigma:.1f} %"
        )
    props = d.correlation_properties
    pairs = [
        f"{props[i]}/{props[j]} {d.correlation[i, j]:+.2f}"
        for i in range(len(props))
        for j in range(i + 1, len(props))
    ]
    if pairs:
        lines.append("    correlation (core cells): " + ", ".join(pairs))
    return lines
