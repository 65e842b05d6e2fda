#!/usr/bin/env python
"""Time the quick start and split its wall time.

Categories: engine forward (pyGIMLi ERT response, Dijkstra ray paths, gravity
products), engine Jacobian (ERT createJacobian, gravity kernel), linear algebra
(gradients, CG on the Gauss-Newton system) and everything else (config, data,
mesh and operator set-up, β0 estimate, line-search bookkeeping, HDF5 output).
Goal tracked: everything outside the engine calls ≤ 5 % of wall time.

Usage:  python scripts/bench_quickstart.py [--config configs/quickstart.yaml] [--repeat 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jointinv


def bench_once(config: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # the inversion alone: scripts/bench_diagnostics.py measures the diagnostics
        result = jointinv.run(config, output=Path(tmp) / "bench.h5", diagnostics=False)
        total = time.perf_counter() - start
    engine = {"forward": 0.0, "jacobian": 0.0}
    for clock in result.problem.clocks:
        for kind in engine:
            engine[kind] += clock.seconds.get(kind, 0.0)
    linalg = sum(r.seconds.get("linear_algebra", 0.0) for r in result.inversion.iterations)
    other = total - engine["forward"] - engine["jacobian"] - linalg
    return {
        "engine forward": engine["forward"],
        "engine Jacobian": engine["jacobian"],
        "linear algebra": linalg,
        "everything else": other,
        "total": total,
        "iterations": result.inversion.nit,
        **{f"chi2 {k}": v for k, v in result.chi2.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--config", type=Path, default=root / "configs" / "quickstart.yaml")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for i in range(args.repeat):
        row = bench_once(args.config)
        total = row["total"]
        print(
            f"run {i + 1}: {row['iterations']} iterations, "
            + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith("chi2"))
        )
        print(f"| {'part':<16s} | {'seconds':>8s} | {'share':>6s} |")
        print(f"|{'-' * 18}|{'-' * 10}|{'-' * 8}|")
        for key in ("engine forward", "engine Jacobian", "linear algebra", "everything else"):
            print(f"| {key:<16s} | {row[key]:8.2f} | {100 * row[key] / total:5.1f}% |")
        print(f"| {'total':<16s} | {total:8.2f} | {100.0:5.1f}% |")
        outside = row["linear algebra"] + row["everything else"]
        print(f"outside the engine calls: {100 * outside / total:.1f}% (goal <= 5%)")


if __name__ == "__main__":
    main()
