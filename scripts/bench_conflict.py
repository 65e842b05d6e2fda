#!/usr/bin/env python
"""Time ``jointinv conflict-test`` against ``jointinv run`` on the same config.

Runs, each in a fresh process (as a user would) and in this order:

0. ``jointinv run CONFIG`` (defaults, output to a temporary file), the reference time;
1. the fast χ² approximation alone (``--bootstrap`` not given, the config's 0),
   both passes when the config declares biases;
2. ``--bootstrap N --workers W`` (default N = 20 on W = 2 workers; ``--bootstrap 0``
   skips it).

The ratio conflict-test time / run time of each row is printed, both measured in
this benchmark run, for the wall time and for the CPU time of the command (user +
system, all its threads and processes): on a shared machine the wall times follow
the load of the moment, the CPU times much less.

Each run writes its report as JSON; the table gives the wall time of the whole
command, its split (coupled and uncoupled fits with the hat-matrix traces,
attribution, bootstrap replicates), the statistic and both p-values, and the
mean wall time of one replicate in one worker (bootstrap seconds × W / N).

Usage:  python scripts/bench_conflict.py [--config configs/quickstart.yaml]
                                         [--bootstrap 20] [--workers 2] [--skip-fast]
                                         [--skip-run] [--log progress.log]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    """User + system CPU time of the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


CPU: dict[str, float] = {}  # CPU seconds of each command, by label


def run(config: Path, extra: list[str], log: Path | None = None) -> tuple[float, dict, int]:
    """Wall time, JSON report and exit code of one ``jointinv conflict-test``
    (its progress log appended to ``log`` if given; its CPU time in ``CPU``)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "jointinv.cli", "conflict-test", str(config)]
        cmd += ["--json", str(report), *extra, *([] if log else ["--quiet"])]
        start, cpu = time.perf_counter(), cpu_seconds()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        CPU[" ".join(extra)] = cpu_seconds() - cpu
        if log:
            with log.open("a") as f:
                f.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
        if proc.returncode not in (0, 3):
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"conflict-test failed with exit code {proc.returncode}")
        return seconds, json.loads(report.read_text()), proc.returncode


def run_inversion(config: Path) -> float:
    """Wall time of ``jointinv run CONFIG`` (defaults; result in a temporary file)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "jointinv.cli", "run", str(config)]
        cmd += ["--output", str(Path(tmp) / "run.h5"), "--quiet"]
        start, cpu = time.perf_counter(), cpu_seconds()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        CPU["run"] = cpu_seconds() - cpu
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"jointinv run failed with exit code {proc.returncode}")
        return seconds


def describe(label: str, report: dict) -> None:
    """T, ν, p-values, verdict and biases of each pass of one report."""
    for key in ("plain", "augmented"):
        a = report.get(key)
        if a is None:
            continue
        dof = a.get("dof_reliable", True)
        line = (
            f"{label} [{key}]: T = {a['statistic']:.4g}, ν = {a['dof']:.3g} "
            f"(reliable: {dof}), p(χ²) = {a['p_fast']:.3g}, p = {a['p_value']:.3g} "
            f"({a.get('calibration', 'chi2')}), conflict: {a['conflict']}"
        )
        print(line)
        for b in a.get("biases", []):
            rho = b.get("correlation")
            extra = "" if rho is None else f", ρ = {rho:.3f}, separable: {b.get('separable')}"
            value = f"{b['value']:.4g} ± {b['std']:.2g} {b['units']}"
            print(f"    {b['modality']} {b['label']}: {value}{extra}")
        print(f"    seconds: {a['seconds']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--config", type=Path, default=root / "configs" / "quickstart.yaml")
    parser.add_argument("--bootstrap", type=int, default=20, help="replicates (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--skip-fast", action="store_true", help="only the bootstrap run")
    parser.add_argument("--skip-run", action="store_true", help="do not time jointinv run")
    parser.add_argument("--log", type=Path, help="append the commands' progress logs here")
    args = parser.parse_args()

    run_seconds = None
    if not args.skip_run:
        print("running: jointinv run ...", file=sys.stderr, flush=True)
        run_seconds = run_inversion(args.config)
    runs = []
    if not args.skip_fast:
        runs.append(("fast χ² approximation", []))
    if args.bootstrap:
        runs.append(
            (
                f"bootstrap N={args.bootstrap}, {args.workers} workers",
                ["--bootstrap", str(args.bootstrap), "--workers", str(args.workers)],
            )
        )
    rows = []
    for label, extra in runs:
        print(f"running: {label} ...", file=sys.stderr, flush=True)
        seconds, report, code = run(args.config, extra, args.log)
        a = report["plain"]
        n = len(a["bootstrap_statistics"])
        split = a["seconds"]
        per_rep = split["bootstrap"] * min(args.workers, max(n, 1)) / n if n else None
        rows.append((label, seconds, split, a, code, per_rep))
        describe(label, report)

    print(f"config: {args.config}")
    if run_seconds is not None:
        print(f"jointinv run: {run_seconds:.1f} s wall, {CPU['run']:.1f} s CPU")
        for (label, seconds, *_), cpu in zip(rows, [CPU[" ".join(e)] for _, e in runs]):
            print(
                f"{label}: {seconds:.1f} s wall, {cpu:.1f} s CPU; ratio to run: "
                f"wall {seconds / run_seconds:.2f}, CPU {cpu / CPU['run']:.2f}"
            )
    head = (
        f"| {'run':<30s} | {'wall s':>7s} | {'fits+ν s':>8s} | {'attrib s':>8s} "
        f"| {'boot s':>7s} | {'s/replicate':>11s} | {'T':>8s} | {'ν':>6s} "
        f"| {'p(χ²)':>7s} | {'p(boot)':>7s} | exit |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for label, seconds, split, a, code, per_rep in rows:
        boot = "—" if a["p_bootstrap"] is None else f"{a['p_bootstrap']:.3g}"
        rep = "—" if per_rep is None else f"{per_rep:.1f}"
        print(
            f"| {label:<30s} | {seconds:7.1f} | {split['fits_and_fast']:8.1f} "
            f"| {split['attribution']:8.1f} | {split['bootstrap']:7.1f} | {rep:>11s} "
            f"| {a['statistic']:8.4g} | {a['dof']:6.3g} | {a['p_fast']:7.3g} | {boot:>7s} "
            f"| {code:4d} |"
        )
    for label, _, _, a, _, _ in rows:
        if a["bootstrap_statistics"]:
            t = sorted(a["bootstrap_statistics"])
            print(f"{label}: replicate T* = " + ", ".join(f"{x:.4g}" for x in t))


if __name__ == "__main__":
    main()
