#!/usr/bin/env python
"""The blind-spot benchmark: joint vs separate inversions of configs/cases/<case>.yaml.

For every case (default: the four big ones of scripts/make_cases.py), runs the
joint inversion (``only=None``) and one separate inversion per modality
(``only=[name]``) of the same config, and compares each property with the truth
(data/cases/<case>/truth.json averaged over every inversion cell, 4 x 4
sub-samples; log10 for resistivity and velocity, linear for density contrast):

* Pearson correlation and RMS in the core (``mesh.core_mask``: the core region
  down to the core depth) and in the case's focus box around its target;
* per true unit: the median of the inverted values of the core cells lying
  entirely inside the unit;
* ``resistivity_only``: the imprint of the conductor on velocity (median
  relative change joint vs separate, %) and density (median difference, g/cm³)
  inside the conductor;
* final χ² of every modality, iterations and wall time of every run.

Prints Markdown tables and PASS/FAIL for the goals (:data:`GOALS`); ``--json``
writes everything.

Usage:  python scripts/bench_cases.py [CASE ...] [--json out.json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "cases"
DATA = ROOT / "data" / "cases"
LOG10 = {"resistivity": True, "velocity": True, "density_contrast": False}
MODALITY_PROPERTY = {"ert": "resistivity", "traveltime": "velocity", "gravity": "density_contrast"}

#: goal thresholds
MAX_CORRELATION_LOSS = 0.02
MAX_IMPRINT_VELOCITY_PERCENT = 2.0
MAX_IMPRINT_DENSITY = 0.004  # g/cm³
MIN_CORRELATION_GAIN = 0.05
CHI2_BAND = (0.8, 1.2)
GOALS = {
    "no_loss": f"no property's correlation (core, focus) worse than separate by > "
    f"{MAX_CORRELATION_LOSS}",
    "imprint": f"resistivity_only: imprint within {MAX_IMPRINT_VELOCITY_PERCENT} % velocity "
    f"and {MAX_IMPRINT_DENSITY} g/cm3 density",
    "gain": f"some case where coupling improves a correlation by >= {MIN_CORRELATION_GAIN}",
    "chi2": f"every modality's chi2 within {list(CHI2_BAND)} x target in every run",
}


def _load_make_cases():
    name = "jointinv_make_cases"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "make_cases.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _param(name: str, v: np.ndarray) -> np.ndarray:
    return np.log10(v) if LOG10.get(name, False) else np.asarray(v, float)


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None  # undefined (e.g. a constant truth)
    return float(np.corrcoef(a, b)[0, 1])


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


class TruthOnMesh:
    """The truth averaged over the cells of an inversion mesh (active cells)."""

    def __init__(self, truth, mesh) -> None:
        full = truth.cell_average(mesh.nodes_x, mesh.nodes_z)
        act = mesh.active
        self.values = {k: v[act] for k, v in full.items() if k != "unit_fraction"}
        self.fraction = full["unit_fraction"][act]
        centres = mesh.cell_centers
        self.core = np.asarray(mesh.core_mask, bool)
        fx, fz = truth.focus["x"], truth.focus["z"]
        self.focus = (
            (centres[:, 0] >= fx[0])
            & (centres[:, 0] <= fx[1])
            & (centres[:, 1] >= min(fz))
            & (centres[:, 1] <= max(fz))
        )
        self.names = [u.name for u in truth.units]

    def unit_cells(self, name: str) -> np.ndarray:
        """Core cells entirely inside the unit."""
        return self.core & (self.fraction[:, self.names.index(name)] > 0.999)


def property_metrics(prop: str, model: np.ndarray, tm: TruthOnMesh) -> dict:
    est, true = _param(prop, model), _param(prop, tm.values[prop])
    out = {}
    for region, mask in (("core", tm.core), ("focus", tm.focus)):
        out[f"corr_{region}"] = _corr(true[mask], est[mask])
        out[f"rms_{region}"] = _rms(true[mask], est[mask])
    out["unit_median"] = {
        name: (float(np.median(model[m])) if m.any() else None)
        for name in tm.names
        for m in [tm.unit_cells(name)]
    }
    return out


def _run(config: Path, out: Path, only, *, uncoupled: bool = False):
    import yaml

    import jointinv
    from jointinv.config import LoadedConfig, from_mapping

    source = config
    if uncoupled:  # the same joint run without any coupling term: the schedule's own effect
        text = config.read_text()
        raw = yaml.safe_load(text)
        raw["coupling"] = []
        source = LoadedConfig(from_mapping(raw, config.name), config.resolve(), text)
    t0 = time.perf_counter()
    res = jointinv.run(source, output=out, force=True, only=only, diagnostics=False)
    seconds = time.perf_counter() - t0
    return res, seconds


def _targets(res) -> dict[str, float]:
    cfg = res.problem.config
    return {
        name: (cfg.modalities[name].chi2_target or cfg.inversion.chi2_target) for name in res.chi2
    }


def bench_case(name: str, workdir: Path, configs: Path = CONFIGS, data: Path = DATA) -> dict:
    """Joint and separate runs of one case and their metrics against the truth."""
    mc = _load_make_cases()
    truth = mc.Truth.load(data / name / "truth.json")
    config = configs / f"{name}.yaml"
    workdir.mkdir(parents=True, exist_ok=True)
    runs, models, tm = {}, {}, None
    labels = [("joint", None), ("uncoupled", None)] + [(m, [m]) for m in MODALITY_PROPERTY]
    for label, only in labels:
        print(f"[{name}] {label} ...", file=sys.stderr, flush=True)
        out = workdir / f"{name}_{label}.h5"
        res, seconds = _run(config, out, only, uncoupled=label == "uncoupled")
        if tm is None:
            tm = TruthOnMesh(truth, res.problem.mesh)
        runs[label] = {
            "chi2": {k: float(v) for k, v in res.chi2.items()},
            "chi2_target": _targets(res),
            "chi2_start": {k: float(v) for k, v in res.inversion.iterations[0].chi2.items()},
            "iterations": int(res.inversion.nit),
            "stop": str(res.inversion.message),
            "seconds": round(seconds, 1),
        }
        models[label] = res.models
    props = {}
    for modality, prop in MODALITY_PROPERTY.items():
        joint = property_metrics(prop, models["joint"][prop], tm)
        sep = property_metrics(prop, models[modality][prop], tm)
        alone = property_metrics(prop, models["uncoupled"][prop], tm)
        true_units = {u.name: getattr(u, prop) for u in truth.units}
        props[prop] = {
            "joint": joint,
            "separate": sep,
            "uncoupled": alone,
            "true_unit": true_units,
        }
    result = {"case": name, "runs": runs, "properties": props}
    imprint_unit = truth.extra.get("imprint_unit")
    if imprint_unit:
        cells = tm.unit_cells(imprint_unit)
        vj, vs = models["joint"]["velocity"][cells], models["traveltime"]["velocity"][cells]
        dj, ds = (
            models["joint"]["density_contrast"][cells],
            models["gravity"]["density_contrast"][cells],
        )
        vu = models["uncoupled"]["velocity"][cells]
        du = models["uncoupled"]["density_contrast"][cells]
        result["imprint"] = {
            "unit": imprint_unit,
            "cells": int(cells.sum()),
            "velocity_percent": float(np.median((vj / vs - 1) * 100)),
            "density_g_cm3": float(np.median(dj - ds)),
            # the coupling's own imprint: joint against the same joint run uncoupled
            "velocity_percent_vs_uncoupled": float(np.median((vj / vu - 1) * 100)),
            "density_g_cm3_vs_uncoupled": float(np.median(dj - du)),
        }
    return result


# --------------------------------------------------------------------------- goals
def _delta(p: dict, key: str) -> float | None:
    j, s = p["joint"][key], p["separate"][key]
    return None if j is None or s is None else j - s


def check_goals(results: list[dict], goals=("no_loss", "imprint", "gain", "chi2")) -> dict:
    """PASS/FAIL per goal with the offending items."""
    out = {}
    if "no_loss" in goals:
        bad = [
            f"{r['case']}/{prop}/{region}: {d:+.3f}"
            for r in results
            for prop, p in r["properties"].items()
            for region in ("corr_core", "corr_focus")
            for d in [_delta(p, region)]
            if d is not None and d < -MAX_CORRELATION_LOSS
        ]
        out["no_loss"] = {"pass": not bad, "detail": bad}
    if "imprint" in goals:
        items = [r for r in results if "imprint" in r]
        bad = [
            f"{r['case']}: velocity {r['imprint']['velocity_percent']:+.2f} %, density "
            f"{r['imprint']['density_g_cm3']:+.4f} g/cm3"
            for r in items
            if abs(r["imprint"]["velocity_percent"]) > MAX_IMPRINT_VELOCITY_PERCENT
            or abs(r["imprint"]["density_g_cm3"]) > MAX_IMPRINT_DENSITY
        ]
        out["imprint"] = {
            "pass": (not bad) if items else None,
            "detail": bad if items else ["n/a: no case with an imprint unit was run"],
        }
    if "gain" in goals:
        gains = [
            (d, f"{r['case']}/{prop}/{region}: {d:+.3f}")
            for r in results
            for prop, p in r["properties"].items()
            for region in ("corr_core", "corr_focus")
            for d in [_delta(p, region)]
            if d is not None
        ]
        best = max(gains, default=(None, "none"))
        good = [g for d, g in gains if d >= MIN_CORRELATION_GAIN]
        out["gain"] = {"pass": bool(good), "detail": good or [f"best: {best[1]}"]}
    if "chi2" in goals:
        lo, hi = CHI2_BAND
        bad, exempt = [], []
        for r in results:
            for label, run in r["runs"].items():
                for m, c in run["chi2"].items():
                    target = run["chi2_target"][m]
                    if lo * target <= c <= hi * target:
                        continue
                    start = run.get("chi2_start", {}).get(m)
                    if c < lo * target and start is not None and start < lo * target:
                        # the start model already fits these data below their errors
                        # (e.g. gravity of a case without density contrast: pure noise);
                        # no inversion can bring χ² up into the band
                        exempt.append(
                            f"exempt {r['case']}/{label}/{m}: chi2 {c:.2f}, start model {start:.2f}"
                        )
                    else:
                        bad.append(f"{r['case']}/{label}/{m}: chi2 {c:.2f}")
        out["chi2"] = {"pass": not bad, "detail": bad + exempt}
    return out


# --------------------------------------------------------------------------- report
def _f(v, fmt="{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def markdown(results: list[dict], goals: dict) -> str:
    lines = [
        "| case | property | corr core joint | sep | Δ | corr focus joint | sep | Δ "
        "| RMS core joint | sep | RMS focus joint | sep |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for prop, p in r["properties"].items():
            j, s = p["joint"], p["separate"]
            lines.append(
                f"| {r['case']} | {prop} | {_f(j['corr_core'])} | {_f(s['corr_core'])} "
                f"| {_f(_delta(p, 'corr_core'), '{:+.3f}')} | {_f(j['corr_focus'])} "
                f"| {_f(s['corr_focus'])} | {_f(_delta(p, 'corr_focus'), '{:+.3f}')} "
                f"| {_f(j['rms_core'])} | {_f(s['rms_core'])} | {_f(j['rms_focus'])} "
                f"| {_f(s['rms_focus'])} |"
            )
    lines += [
        "",
        "The coupling's own effect: joint against the same joint run without couplings "
        "(same schedule), correlation Δ core / focus:",
        "",
        "| case | property | corr core uncoupled | Δ joint | corr focus uncoupled | Δ joint |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for prop, p in r["properties"].items():
            u, j = p.get("uncoupled"), p["joint"]
            if u is None:
                continue
            dc = None if u["corr_core"] is None else j["corr_core"] - u["corr_core"]
            df = None if u["corr_focus"] is None else j["corr_focus"] - u["corr_focus"]
            lines.append(
                f"| {r['case']} | {prop} | {_f(u['corr_core'])} | {_f(dc, '{:+.3f}')} "
                f"| {_f(u['corr_focus'])} | {_f(df, '{:+.3f}')} |"
            )
    lines += ["", "Per-unit medians (joint / separate / true):", ""]
    lines += ["| case | property | unit | joint | separate | true |", "|---|---|---|---|---|---|"]
    for r in results:
        for prop, p in r["properties"].items():
            for unit, true in p["true_unit"].items():
                jm, sm = p["joint"]["unit_median"][unit], p["separate"]["unit_median"][unit]
                if jm is None:
                    continue
                lines.append(
                    f"| {r['case']} | {prop} | {unit} | {_f(jm, '{:.4g}')} | {_f(sm, '{:.4g}')} "
                    f"| {true:g} |"
                )
    lines += ["", "Runs (final χ² per modality, iterations, wall time):", ""]
    lines += [
        "| case | run | χ² final (start) | iterations | s | stop |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for label, run in r["runs"].items():
            start = run.get("chi2_start", {})
            chi = ", ".join(
                f"{m} {c:.2f}" + (f" ({start[m]:.3g})" if m in start else "")
                for m, c in run["chi2"].items()
            )
            lines.append(
                f"| {r['case']} | {label} | {chi} | {run['iterations']} | {run['seconds']:.0f} "
                f"| {run['stop'][:60]} |"
            )
    imprints = [r for r in results if "imprint" in r]
    if imprints:
        lines += ["", "Imprint inside the resistivity-only anomaly (joint vs separate):", ""]
        for r in imprints:
            im = r["imprint"]
            lines.append(
                f"- {r['case']} ({im['unit']}, {im['cells']} cells): velocity "
                f"{im['velocity_percent']:+.2f} %, density {im['density_g_cm3']:+.4f} g/cm³; "
                f"against the uncoupled joint run: velocity "
                f"{im.get('velocity_percent_vs_uncoupled', float('nan')):+.2f} %, density "
                f"{im.get('density_g_cm3_vs_uncoupled', float('nan')):+.4f} g/cm³"
            )
    lines += ["", "Goals:", ""]
    for key, g in goals.items():
        detail = "; ".join(g["detail"][:8])
        verdict = "N/A" if g["pass"] is None else "PASS" if g["pass"] else "FAIL"
        lines.append(f"- **{verdict}** {GOALS[key]}" + (f" — {detail}" if detail else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    mc = _load_make_cases()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help=f"default: {mc.BIG_CASES}")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--workdir", type=Path, help="keep the HDF5 results here")
    parser.add_argument("--configs", type=Path, default=CONFIGS)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = args.cases or mc.BIG_CASES
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        results = []
        for name in names:
            results.append(bench_case(name, work, args.configs, args.data))
            if args.json:  # partial results survive an interrupted benchmark
                args.json.write_text(json.dumps({"cases": results}, indent=1) + "\n")
    goals = check_goals(results)
    print(markdown(results, goals))
    if args.json:
        args.json.write_text(json.dumps({"cases": results, "goals": goals}, indent=1) + "\n")
    return 0 if all(g["pass"] is not False for g in goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
