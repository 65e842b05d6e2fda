"""Run the worked field examples (configs/field/) and draw their model sections.

Usage::

    .venv/bin/python scripts/field_examples.py [--only mulda] [--plots docs/field]

Needs the real data in ../shared/realdata. Each result goes where its config
says (results/field/); the PNG sections (with topography and sensors) go to
``--plots``; a χ² table in Markdown is printed at the end.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jointinv
from jointinv.plotting import plot_result
from jointinv.results import read_result

ROOT = Path(__file__).resolve().parents[1]
FIELD = ROOT / "configs" / "field"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="config stems to run (default: all)")
    parser.add_argument("--plots", type=Path, default=ROOT / "docs" / "field")
    args = parser.parse_args()
    rows = []
    for config in sorted(FIELD.glob("*.yaml")):
        if args.only and config.stem not in args.only:
            continue
        started = time.perf_counter()
        result = jointinv.run(config, force=True, diagnostics=False)
        seconds = time.perf_counter() - started
        saved = read_result(result.output)
        for path in plot_result(saved, args.plots / config.stem):
            print(f"wrote {path}")
        nit = result.inversion.nit
        for name, d in saved.data.items():
            rows.append((config.stem, name, d.kind, len(d.observed), d.chi2, nit, seconds))
    print("\n| example | modality | kind | N | χ² | iterations | wall time (s) |")
    print("|---|---|---|---|---|---|---|")
    for stem, name, kind, n, chi2, nit, seconds in rows:
        print(f"| {stem} | {name} | {kind} | {n} | {chi2:.2f} | {nit} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
