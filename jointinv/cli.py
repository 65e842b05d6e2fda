"""The ``jointinv`` command line: a thin layer over the library.

Exit codes: 0 success, 1 runtime failure, 2 usage, config or data error,
3 ``conflict-test`` found a conflict, 4 ``batch`` in which at least one run failed.
Engines are imported only by the commands that need them, so ``--help`` is fast.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup


class _NoHelpType:
    """Click command mixin: the ``--help`` option shows no ``<bool>`` in the help."""

    def get_help_option(self, ctx):  # type: ignore[no-untyped-def]
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class _Command(_NoHelpType, TyperCommand):
    pass


class _Group(_NoHelpType, TyperGroup):
    pass


def flag(*names: str, **kwargs: Any) -> Any:
    """A boolean option: ``typer.Option`` without the ``<bool>`` typer's help shows."""
    return typer.Option(*names, metavar="", **kwargs)


app = typer.Typer(
    name="jointinv",
    cls=_Group,
    help="Joint inversion of ERT, seismic traveltime and gravity data on a 2D profile.\n\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage, config or data error, "
    "3 conflict-test found a conflict, 4 batch in which a run failed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _print_version(value: bool) -> None:
    if value:
        from ._version import FORMAT_VERSION, __version__

        typer.echo(f"jointinv {__version__} (result format {FORMAT_VERSION})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        flag(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Joint inversion of ERT, seismic traveltime and gravity data on a 2D profile."""


ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
ResultArg = Annotated[Path, typer.Argument(help="HDF5 result file.", show_default=False)]
Verbose = Annotated[bool, flag("--verbose", "-v", help="Debug log; tracebacks on errors.")]
Quiet = Annotated[bool, flag("--quiet", "-q", help="No progress output.")]
Overrides = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config value before validation (repeatable): a dotted path as in "
        "sweep files, a YAML value, e.g. --set inversion.max_iterations=5 --set "
        "coupling.0.weight=100 --set 'inversion.chi2_band=[0.9,1.1]'.",
    ),
]

T = TypeVar("T")


def _console(stderr: bool = True, soft_wrap: bool = False):
    """A rich console that prints strings literally: text from files and paths may
    hold ``[bold]`` or ``:x:``, which must not become markup or emoji. Styles are
    given as :class:`rich.text.Text` (see :func:`_say`)."""
    from rich.console import Console

    return Console(
        stderr=stderr, highlight=False, markup=False, emoji=False, soft_wrap=soft_wrap
    )


def _say(label: str, message: str = "", style: str = "red") -> None:
    """One line on stderr: ``label`` in ``style``, then ``message`` as it is."""
    from rich.text import Text

    line = Text.assemble((label, style), " " if message else "", message)
    _console().print(line, soft_wrap=True)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if verbose:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(
            console=_console(), show_path=False, show_time=False
        )
    else:
        from .progress import StageHandler

        handler = StageHandler(_console())
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    if not verbose:
        for noisy in ("pyGIMLi", "Core", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _guarded(verbose: bool, action: Callable[[], T], *, interruptible: bool = False) -> T:
    """Run ``action``; turn errors into one red line and the right exit code.

    With ``interruptible``, SIGINT and SIGTERM stop ``action`` at its next safe
    point (:mod:`jointinv.interrupt`): one line says what was kept and how to
    go on, exit code 130 (SIGINT) or 143 (SIGTERM).
    """
    from .errors import UserInputError
    from .interrupt import Interrupted, stop_at_safe_points

    try:
        if not interruptible:
            return action()
        with stop_at_safe_points():
            return action()
    except Interrupted as exc:
        if verbose:
            _console().print_exception()
        _console().print(_interrupted_line(exc), soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except UserInputError as exc:
        if verbose:
            _console().print_exception()
        _say("error:", str(exc))
        raise typer.Exit(2) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _say("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - last line of defence of the CLI
        if verbose:
            _console().print_exception()
        name = type(exc).__name__
        _say("failed:", f"{name}: {exc} (run with --verbose for the traceback)")
        raise typer.Exit(1) from None


def _interrupted_line(exc) -> str:
    """``interrupted by SIGINT; <what was kept>; resume with: <the command again>``."""
    args = ["jointinv", *sys.argv[1:]]
    if exc.resumable and args[1:2] == ["run"] and "--resume" not in args:
        args.append("--resume")
    if args[1:2] == ["batch"]:  # --rerun would start the interrupted runs again
        args = [a for a in args if a != "--rerun"]
    again = f"{'resume' if exc.resumable else 'run again'} with: {shlex.join(args)}"
    parts = (f"interrupted by {exc.signal_name}", exc.kept, again)
    return "; ".join(part for part in parts if part)


@app.command(cls=_Command)
def run(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HDF5 result (default: output.path).")
    ] = None,
    force: Annotated[bool, flag("--force", help="Overwrite an existing result.")] = False,
    resume: Annotated[
        bool,
        flag(
            "--resume",
            help="Continue an interrupted run from its checkpoint (<output stem>.checkpoint.h5, "
            "written after every iteration); refused if made from another config.",
        ),
    ] = False,
    no_diagnostics: Annotated[
        bool,
        flag(
            "--no-diagnostics",
            help="Skip the posterior diagnostics (std, resolution, coverage); "
            "'jointinv diagnose' computes them later.",
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            metavar="MODALITY",
            help="Invert only this modality (repeat for several); couplings between the "
            "properties they sense stay.",
        ),
    ] = None,
    separate: Annotated[
        bool,
        flag(
            "--separate",
            help="Also invert every modality alone with the same settings and write each "
            "under /separate/<modality> in the same file, to see what the coupling changed.",
        ),
    ] = False,
    overrides: Overrides = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run a joint inversion and write one HDF5 result."""
    _setup_logging(verbose, quiet)
    from .overrides import load_with_overrides
    from .progress import IterationPrinter
    from .runner import run as run_inversion

    printer = IterationPrinter(_console(), quiet=quiet)
    started = time.perf_counter()
    result = _guarded(
        verbose,
        lambda: run_inversion(
            load_with_overrides(config, overrides),
            output=output,
            force=force,
            on_iteration=printer,
            command_line=" ".join(["jointinv", *sys.argv[1:]]),
            resume=resume,
            diagnostics=False if no_diagnostics else None,
            only=only or None,
            separate=separate,
        ),
        interruptible=True,
    )
    printer.finish(result, time.perf_counter() - started)


@app.command(cls=_Command)
def diagnose(
    result: ResultArg,
    config: Annotated[
        Path | None,
        typer.Argument(
            help="Config to rebuild the problem with (default: the one stored in the result).",
            show_default=False,
        ),
    ] = None,
    rank: Annotated[
        int | None,
        typer.Option("--rank", min=1, help="Eigenpairs kept (default: diagnostics.rank)."),
    ] = None,
    probes: Annotated[
        int | None,
        typer.Option("--probes", min=0, help="Resolution probes (default: diagnostics.probes)."),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Compute the posterior diagnostics of a saved result and write them into it."""
    _setup_logging(verbose, quiet)
    from .diagnostics import diagnose_result
    from .errors import UserInputError

    def _diagnose():
        if not result.is_file():
            raise UserInputError(f"{result}: no such result file")
        return diagnose_result(result, config, rank=rank, probes=probes)

    _guarded(verbose, _diagnose)
    if not quiet:
        _console().print(f"wrote diagnostics into {result}", soft_wrap=True)


@app.command(cls=_Command)
def validate(config: ConfigArg, overrides: Overrides = None, verbose: Verbose = False) -> None:
    """Check the config and read every data file, without inverting."""
    from .overrides import load_with_overrides
    from .validate import validate_config

    summary = _guarded(verbose, lambda: validate_config(load_with_overrides(config, overrides)))
    typer.echo(summary)


@app.command(cls=_Command)
def init(
    data: Annotated[
        list[Path],
        typer.Argument(
            help="Data files: ERT .ohm/.dat (a b m n), traveltime .sgt (s g t), gravity "
            ".csv/.obs/.grv.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The config file to write.")
    ] = Path("config.yaml"),
    force: Annotated[bool, flag("--force", help="Overwrite an existing config.")] = False,
    verbose: Verbose = False,
) -> None:
    """Write an annotated config for your data files (mesh, properties and couplings
    derived from the data), validated as 'jointinv validate' does."""
    from .template import init_config

    summary = _guarded(verbose, lambda: init_config(data, output, force=force))
    typer.echo(f"wrote {output}")
    typer.echo(summary)


@app.command(cls=_Command)
def schema() -> None:
    """Print the JSON schema of the config."""
    from .config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command(cls=_Command)
def show(
    result: ResultArg,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write PNG sections, data-fit plots (fit_<modality>.png) and a convergence "
            "plot here.",
        ),
    ] = None,
    no_doi_mask: Annotated[
        bool,
        flag(
            "--no-doi-mask",
            help="Draw the sections at full strength (default: cells the data do not "
            "resolve, posterior/prior std > 0.8, are faded).",
        ),
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Print a summary of a result; optionally plot it."""
    from .summary import summarize

    if plot is not None:
        _setup_logging(verbose, quiet=False)  # plots skipped for old files say so

    def _show() -> None:
        from .outputs import check_folder_output
        from .results import read_result

        if plot is not None:
            check_folder_output(plot, "--plot")
        saved = read_result(result)
        typer.echo(summarize(saved, result))
        if plot is not None:
            from .plotting import plot_result

            for path in plot_result(saved, plot, doi_mask=not no_doi_mask):
                typer.echo(f"wrote {path}")

    _guarded(verbose, _show)


@app.command(cls=_Command)
def export(
    result: ResultArg,
    vtk: Annotated[
        Path | None,
        typer.Option("--vtk", help="Write the active cells as a VTK XML .vtu (ParaView) here."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Write the core cells' centres (x, elevation z, depth below the surface), "
            "values, posterior std and depth-of-investigation columns as CSV here.",
        ),
    ] = None,
    with_padding: Annotated[
        bool,
        flag(
            "--with-padding",
            help="CSV: every cell below the surface, the padding too (column core: 1 in "
            "the core region).",
        ),
    ] = False,
    sensors: Annotated[
        Path | None,
        typer.Option("--sensors", help="Write the sensors and the ground surface as a .vtu here."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Export a result's models (and posterior std) for ParaView (--vtk) or as CSV (--csv)."""

    def _export() -> list[Path]:
        from functools import partial

        from .errors import UserInputError
        from .export import export_csv, export_sensors_vtu, export_vtu
        from .outputs import check_output
        from .results import load_result

        if vtk is None and csv is None and sensors is None:
            raise UserInputError(
                "export: give at least one of --vtk OUT.vtu, --csv OUT.csv, --sensors OUT.vtu"
            )
        jobs = (
            (vtk, "--vtk", "vtu", export_vtu),
            (csv, "--csv", "csv", partial(export_csv, padding=with_padding)),
            (sensors, "--sensors", "vtu", export_sensors_vtu),
        )
        for out, option, kind, _ in jobs:
            if out is not None:
                inputs = {result: "the result file being exported"}
                check_output(out, inputs, kind=kind, writer=option)
        saved = load_result(result)
        return [write(saved, out) for out, _, _, write in jobs if out is not None]

    for path in _guarded(verbose, _export):
        typer.echo(f"wrote {path}")


@app.command(cls=_Command)
def batch(
    inputs: Annotated[
        list[str],
        typer.Argument(help="Config files, globs or sweep files.", show_default=False),
    ],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            help="Processes of the local pool (default: the available cores); each may use "
            "max(1, cores // workers) threads.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="Run on this dask.distributed scheduler (tcp://host:port)."
        ),
    ] = None,
    dask_local: Annotated[
        int | None,
        typer.Option("--dask-local", help="Run on a Dask LocalCluster of N worker processes."),
    ] = None,
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Results, checkpoints and summary.csv.")
    ] = Path("batch"),
    rerun: Annotated[
        bool,
        flag(
            "--rerun", help="Run again runs whose complete result of the same config exists."
        ),
    ] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run many inversions on a local process pool or a Dask cluster.

    Exit codes: 0 every run succeeded, 4 at least one run failed (see summary.csv), \
2 usage, config or sweep-file error (nothing was run), 1 runtime failure.
    """
    _setup_logging(verbose, quiet)
    if not verbose and (scheduler is not None or dask_local is not None):
        import distributed  # noqa: F401 - sets its loggers to INFO on import

        # Dask's scheduler and workers log every connection at INFO
        logging.getLogger("distributed").setLevel(logging.WARNING)
    from .batch import RichProgress, run_batch, summary_table

    def _batch():
        with RichProgress(_console(), quiet=quiet) as progress:
            return run_batch(
                inputs,
                output_dir=output_dir,
                workers=workers,
                scheduler=scheduler,
                dask_local=dask_local,
                rerun=rerun,
                progress=progress,
            )

    result = _guarded(verbose, _batch, interruptible=True)
    _console(stderr=False, soft_wrap=True).print(summary_table(result))
    typer.echo(f"summary: {result.summary}")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


@app.command("conflict-test", cls=_Command)
def conflict_test(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report as HDF5 here.")
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option("--alpha", help="Significance level in (0, 1) (default: conflict.alpha)."),
    ] = None,
    bootstrap: Annotated[
        int | None,
        typer.Option(
            "--bootstrap",
            help="Parametric-bootstrap replicates, >= 1 (default: conflict.bootstrap; "
            "0 there means the fast chi2 approximation only).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", help="Processes for the bootstrap (default: 1)."),
    ] = None,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Test whether the datasets agree: coupled vs uncoupled fits (likelihood ratio).

    Reports per modality the chi2 alone and joint, the tension it adds, its
    p-value and the estimated biases (conflict.biases). Exit codes: 0 consistent
    at alpha, 3 conflict found, 2 usage, config or data error, 1 runtime failure.
    """
    _setup_logging(verbose, quiet)
    from .conflict import conflict_test as run_test
    from .conflict import report_tables

    def _test():
        from .config import load_config
        from .interrupt import Interrupted
        from .outputs import check_output, config_inputs

        loaded = load_config(config)
        for out, option, kind in ((output, "--output", "report"), (json_path, "--json", "json")):
            if out is not None:
                check_output(out, config_inputs(loaded), kind=kind, writer=option)
        written = [str(p) for p in (output, json_path) if p is not None]
        partial: list[bool] = []  # set once the report of the plain pass is written

        def write(report) -> None:
            if output is not None:
                report.write_hdf5(output)
            if json_path is not None:
                report.write_json(json_path)
            if not report.complete and written:
                partial.append(True)
                logging.getLogger(__name__).info(
                    "conflict test: report of the plain pass written (complete: false)"
                )

        try:
            report = run_test(
                loaded, alpha=alpha, bootstrap=bootstrap, workers=workers, on_partial=write
            )
        except Interrupted as exc:
            if partial:
                exc.kept = f"report of the plain pass kept (complete: false): {', '.join(written)}"
            raise
        write(report)
        return report

    report = _guarded(verbose, _test, interruptible=True)
    console = _console(stderr=False, soft_wrap=True)
    for table in report_tables(report):
        console.print(table)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
