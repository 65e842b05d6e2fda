#!/usr/bin/env python
"""Time a batch of eight quick-start variants: serial, a 2-process pool, Dask LocalCluster(2).

The eight runs are one sweep over the first two cross-gradient weights of
``configs/quickstart.yaml``. Each mode writes its own results (``--rerun``), so
nothing is skipped; the models of every mode are compared bitwise at the end
(they must be identical). The mode ``serial_t1`` times the serial batch with one
ERT thread per run, which shows how much of the machine a serial run already
uses: the serial baseline (``--workers 1``, ERT on 2 threads as the quick start
configures it) is itself partly parallel, so the pool's speed-up over it is at
most ``2 x serial / serial_t1``.

Every mode spawns fresh worker processes, which import jointinv from the working
tree *then*: a fingerprint of the package source is taken before and after each
mode, and models from different sources are reported as not comparable.

Goals: pool ≥ 1.8× and Dask ≥ 1.7× faster than serial.

On a shared machine the modes can be timed one at a time, when the machine is
quiet, into the same folder (``--keep DIR --modes serial``, later ``--modes pool,dask``);
the table then covers every mode timed in that folder.

Usage:  python scripts/bench_batch.py [--workers 2] [--modes serial,pool,dask] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

from jointinv.batch import available_cores, run_batch
from jointinv.coordinates import variables

ROOT = Path(__file__).resolve().parents[1]

SWEEP = {
    "base": "quickstart.yaml",
    "name": "qs",
    "grid": {
        "coupling.0.weight": [1.0e3, 2.0e3, 3.0e3, 5.0e3],
        "coupling.1.weight": [5.0e2, 1.0e3],
    },
}


def write_inputs(folder: Path, *, ert_threads: int | None = None) -> Path:
    """The quick-start config (data paths made absolute) and the sweep file."""
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    for modality in raw["modalities"].values():
        modality["data"] = str((ROOT / "configs" / modality["data"]).resolve())
    (folder / "quickstart.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    sweep = dict(SWEEP)
    if ert_threads is not None:
        sweep["set"] = {"modalities.ert.options.threads": ert_threads}
    path = folder / ("sweep.yaml" if ert_threads is None else f"sweep_t{ert_threads}.yaml")
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def source_fingerprint() -> str:
    """SHA-256 of the jointinv package source (every .py file, path and content)."""
    import jointinv

    package = Path(jointinv.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def compare(reference: dict, other: dict) -> str:
    """``identical`` or where the first difference is (NaN == NaN: inactive cells)."""
    if other.keys() != reference.keys():
        return f"different runs: {sorted(set(reference) ^ set(other))}"
    for run in reference:
        for prop, a in reference[run].items():
            b = other[run].get(prop)
            if b is None or a.shape != b.shape:
                return f"{run}/{prop}: missing or of another shape"
            if not np.array_equal(a, b, equal_nan=True):
                diff, size = np.nanmax(np.abs(a - b)), np.nanmax(np.abs(a))
                return f"{run}/{prop}: differs (max |diff| {diff:.3g}, max |value| {size:.3g})"
    return "identical"


def models(folder: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(folder.glob("*.h5")):
        with h5py.File(path, "r") as f:
            out[path.stem] = {k: d[()] for k, d in variables(f["models"]).items()}
    return out


def timed(label: str, sweep: Path, out: Path, **kwargs) -> dict[str, object]:
    load = os.getloadavg()[0]
    source = source_fingerprint()
    print(f"{label}: starting (1-min load {load:.2f}, source {source})", flush=True)
    start = time.perf_counter()
    result = run_batch([sweep], output_dir=out, rerun=True, **kwargs)
    seconds = time.perf_counter() - start
    load_end = os.getloadavg()[0]
    source_end = source_fingerprint()
    failed = [o.name for o in result.outcomes if o.failed]
    runs = [o.seconds for o in result.outcomes]
    print(
        f"{label}: {seconds:.1f} s wall, runs {min(runs):.1f}-{max(runs):.1f} s "
        f"(sum {sum(runs):.1f} s), {result.backend}, failed: {failed or 'none'}, "
        f"1-min load at the end {load_end:.2f}",
        flush=True,
    )
    for o in result.outcomes:
        print(f"    {o.name}: {o.status}, {o.iterations} it, {o.seconds:.1f} s, {o.threads} thr")
    if source_end != source:
        print(f"{label}: WARNING the jointinv source changed during this mode", flush=True)
    return {
        "label": label,
        "seconds": seconds,
        "load": load,
        "load_end": load_end,
        "mean_run": float(np.mean(runs)),
        "runs": {o.name: [o.seconds, o.iterations, o.threads] for o in result.outcomes},
        "source": source if source_end == source else f"{source}->{source_end}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--modes",
        default="serial,pool,dask",
        help="comma-separated, from serial, serial_t1 (1 ERT thread per run), pool, dask",
    )
    parser.add_argument("--keep", type=Path, help="keep the inputs and results in this folder")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench_batch_"))
    folder.mkdir(parents=True, exist_ok=True)
    sweep = write_inputs(folder)
    sweep_t1 = write_inputs(folder, ert_threads=1)
    print(f"{available_cores()} cores; inputs and results in {folder}", flush=True)
    n = args.workers
    modes = {
        "serial": ("serial (--workers 1)", sweep, {"workers": 1}),
        "serial_t1": ("serial, 1 ERT thread per run", sweep_t1, {"workers": 1}),
        "pool": (f"pool (--workers {n})", sweep, {"workers": n}),
        "dask": (f"Dask (--dask-local {n})", sweep, {"dask_local": n}),
    }
    timings_file = folder / "timings.json"
    timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    for mode in args.modes.split(","):
        label, inputs, kwargs = modes[mode]
        timings[mode] = timed(label, inputs, folder / mode, **kwargs)
        timings_file.write_text(json.dumps(timings, indent=2))
    rows = [timings[m] for m in modes if m in timings]

    if "serial" not in timings:
        return
    reference = models(folder / "serial")
    for mode in ("serial_t1", "pool", "dask"):
        if mode not in timings:
            continue
        verdict = compare(reference, models(folder / mode))
        sources = {timings["serial"].get("source"), timings[mode].get("source")}
        if len(sources) > 1 or any("->" in str(x) for x in sources):
            verdict += f" (NOT comparable: jointinv source {' vs '.join(map(str, sources))})"
        print(f"models of {mode} vs serial: {verdict}")

    serial = timings["serial"]["seconds"]
    print("\n| mode | wall time (s) | mean run (s) | speed-up | 1-min load at start / end |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['label']} | {row['seconds']:.1f} | {row['mean_run']:.1f} | "
            f"{serial / row['seconds']:.2f}× | {row['load']:.2f} / {row.get('load_end', 0):.2f} |"
        )
    if args.keep is None:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
