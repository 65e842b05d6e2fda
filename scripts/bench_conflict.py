#!/usr/bin/env python
"""Time ``jointinv conflict-test`` on the quick start: fast approximation, then bootstrap.

Runs the command twice in fresh processes (as a user would):

1. the fast χ² approximation alone (``--bootstrap`` not given, the config's 0);
2. ``--bootstrap N --workers W`` (default N = 20 on W = 2 workers).

Each run writes its report as JSON; the table gives the wall time of the whole
command, its split (coupled and uncoupled fits with the hat-matrix traces,
attribution, bootstrap replicates), the statistic and both p-values, and the
mean wall time of one replicate in one worker (bootstrap seconds × W / N).

Usage:  python scripts/bench_conflict.py [--config configs/quickstart.yaml]
                                         [--bootstrap 20] [--workers 2] [--skip-fast]
                                         [--log progress.log]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(config: Path, extra: list[str], log: Path | None = None) -> tuple[float, dict, int]:
    """Wall time, JSON report and exit code of one ``jointinv conflict-test``
    (its progress log appended to ``log`` if given)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "jointinv.cli", "conflict-test", str(config)]
        cmd += ["--json", str(report), *extra, *([] if log else ["--quiet"])]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if log:
            with log.open("a") as f:
                f.write(f"$ {' '.join(cmd)}\n{proc.stderr}")
        if proc.returncode not in (0, 3):
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"conflict-test failed with exit code {proc.returncode}")
        return seconds, json.loads(report.read_text()), proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--config", type=Path, default=root / "configs" / "quickstart.yaml")
    parser.add_argument("--bootstrap", type=int, default=20, help="replicates (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--skip-fast", action="store_true", help="only the bootstrap run")
    parser.add_argument("--log", type=Path, help="append the commands' progress logs here")
    args = parser.parse_args()

    runs = []
    if not args.skip_fast:
        runs.append(("fast χ² approximation", []))
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

    print(f"config: {args.config}")
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
