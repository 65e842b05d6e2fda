"""What the command line shows: help without type clutter, stage lines and compact
iteration rows that fit 80 columns."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from jointinv.cli import app
from jointinv.inversion import IterationRecord
from jointinv.progress import IterationPrinter, StageHandler, stage

from .conftest import Workspace, quickstart_mapping

COMMANDS = [
    "run", "diagnose", "validate", "init", "schema", "show", "export", "batch", "conflict-test"
]


def console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, markup=False, emoji=False, highlight=False), out


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_help_shows_no_bool(command):
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_help_keeps_the_value_types():
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "120"})
    assert re.search(r"--output +-o +<path>", result.stdout)
    assert re.search(r"--set +KEY=VALUE", result.stdout)
    assert re.search(r"--only +MODALITY", result.stdout)


def record(iteration: int, **weights: float) -> IterationRecord:
    names = ["ert", "traveltime", "gravity"]
    return IterationRecord(
        iteration=iteration,
        beta=1.234e10,
        terms={},
        chi2=dict(zip(names, [123456.7, 0.98765, 1.5e-4])),
        phi=1e300,
        step_length=0.125 if iteration else 0.0,
        seconds={"forward": 9000.0, "jacobian": 999.9},
        weights={n: weights.get(n, 1.0) for n in names},
    )


def test_iteration_rows_fit_80_columns():
    con, out = console()
    printer = IterationPrinter(con)
    for i in range(12):
        printer(record(i, gravity=0.5 if i > 3 else 1.0))
    lines = out.getvalue().splitlines()
    assert lines[0] == "  it         β      χ² ert  χ² traveltime  χ² gravity  step  seconds"
    assert lines[1] == "   0  1.23e+10  1.235e+05         0.9877     0.00015      -   9999.9"
    assert lines[5].endswith(" 0.00015*  0.12   9999.9")  # weighted from iteration 4
    assert lines[6] == "* the misfit of gravity carries a balancing weight (inversion.balancing)"
    assert len(lines) == 14  # the header, 12 rows and the note once
    assert max(len(line) for line in lines) <= 80


def test_long_names_are_cut_in_the_header():
    con, out = console()
    printer = IterationPrinter(con)
    rec = record(0)
    rec.chi2 = {"ert_2008_05_09_wenner": 1.0, "gravity": 2.0}
    rec.weights = {}
    printer(rec)
    header = out.getvalue().splitlines()[0]
    assert "χ² ert_2008_0…" in header
    assert len(header) <= 80


def test_quiet_prints_nothing():
    con, out = console()
    IterationPrinter(con, quiet=True)(record(0))
    assert out.getvalue() == ""


def test_stage_handler_labels_warnings_and_prints_markup_as_text():
    con, out = console()
    handler = StageHandler(con)
    logger = logging.getLogger("jointinv.test_progress")
    for name, level, text in [
        ("jointinv.stage", logging.INFO, "ert: building the [bold] engine"),
        ("jointinv.x", logging.INFO, "beta0 = 1"),
        ("jointinv.x", logging.WARNING, "chi2 above"),
        ("jointinv.x", logging.ERROR, "diagnostics failed"),
    ]:
        handler.handle(logger.makeRecord(name, level, __file__, 1, text, (), None))
    assert out.getvalue().splitlines() == [
        "ert: building the [bold] engine",
        "beta0 = 1",
        "warning: chi2 above",
        "ERROR: diagnostics failed",
    ]


def test_stage_is_logged_at_info(caplog):
    with caplog.at_level(logging.INFO, logger="jointinv.stage"):
        stage("writing %s", "out.h5")
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("jointinv.stage", "writing out.h5")
    ]


def test_three_modality_run_shows_stages_and_rows_within_80_columns(workspace: Workspace):
    """The quick start, one iteration and small diagnostics (about half a minute)."""
    config = workspace.write("quick.yaml", quickstart_mapping())
    out = workspace.root / "out.h5"
    settings = ["inversion.max_iterations=1", "diagnostics.rank=5", "diagnostics.probes=2"]
    sets = [arg for s in settings for arg in ("--set", s)]
    result = CliRunner().invoke(
        app, ["run", str(config), "-o", str(out), *sets], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    expected = [
        "quick.yaml: mesh 94 x 30 cells (2820 active; core cells 1 x 1 m), 3 modalities:",
        "  ert           285 ert data -> resistivity",
        "ert: building the pyGIMLi ERT engine",
        "traveltime: building the pyGIMLi traveltime engine",
        "gravity: building the pyGIMLi gravity (Won & Bevis) engine",
        "beta0 from the Jacobians at the starting model",
        "diagnostics: Jacobians at the final model",
        "diagnostics: 5 eigenpairs of each Hessian (joint and per modality)",
        "diagnostics: resolution from 2 probes",
        f"writing {out}",
    ]
    positions = [err.index(line) for line in expected]
    assert positions == sorted(positions)  # in the order the work is done
    header = err.index("  it         β      χ² ert  χ² traveltime  χ² gravity  step  seconds")
    rows = err[header + 1 : header + 3]
    assert [row.split()[0] for row in rows] == ["0", "1"]
    assert all(len(line) <= 80 for line in [err[header], *rows])
    assert all(re.fullmatch(r" +\d+( +[\d.e+-]+\*?){4} +(-|\d\.\d\d) +\d+\.\d", r) for r in rows)
