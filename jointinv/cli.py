"""The ``jointinv`` command line: a thin layer over the library.

Exit codes: 0 success, 1 runtime failure, 2 usage, config or data error.
Engines are imported only by the commands that need them, so ``--help`` is fast.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

app = typer.Typer(
    name="jointinv",
    help="Joint inversion of ERT, seismic traveltime and gravity data on a 2D profile.\n\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage, config or data error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigArg = Annotated[Path, typer.Argument(help="YAML config file.", show_default=False)]
ResultArg = Annotated[Path, typer.Argument(help="HDF5 result file.", show_default=False)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Debug log; tracebacks on errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]

T = TypeVar("T")


def _console():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _setup_logging(verbose: bool, quiet: bool) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = RichHandler(console=_console(), show_path=False, show_time=False)
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    if not verbose:
        for noisy in ("pyGIMLi", "Core", "matplotlib"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _guarded(verbose: bool, action: Callable[[], T]) -> T:
    """Run ``action``; turn errors into one red line and the right exit code."""
    from rich.markup import escape

    from .errors import UserInputError

    try:
        return action()
    except UserInputError as exc:
        if verbose:
            _console().print_exception()
        # escape: messages hold brackets ("bounds [lower, upper]") that are not markup
        _console().print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, markup=True)
        raise typer.Exit(2) from None
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _console().print("[red]interrupted[/red]")
        raise typer.Exit(130) from None
    except Exception as exc:  # noqa: BLE001 - last line of defence of the CLI
        if verbose:
            _console().print_exception()
        name = type(exc).__name__
        _console().print(
            f"[red]failed:[/red] {name}: {escape(str(exc))} (run with --verbose for the traceback)",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


@app.command()
def run(
    config: ConfigArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HDF5 result (default: output.path).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing result.")] = False,
    verbose: Verbose = False,
    quiet: Quiet = False,
) -> None:
    """Run a joint inversion and write one HDF5 result."""
    _setup_logging(verbose, quiet)
    from .progress import IterationPrinter
    from .runner import run as run_inversion

    printer = IterationPrinter(_console(), quiet=quiet)
    started = time.perf_counter()
    result = _guarded(
        verbose,
        lambda: run_inversion(
            config,
            output=output,
            force=force,
            on_iteration=printer,
            command_line=" ".join(["jointinv", *sys.argv[1:]]),
        ),
    )
    printer.finish(result, time.perf_counter() - started)


@app.command()
def validate(config: ConfigArg, verbose: Verbose = False) -> None:
    """Check the config and read every data file, without inverting."""
    from .validate import validate_config

    summary = _guarded(verbose, lambda: validate_config(config))
    typer.echo(summary)


@app.command()
def schema() -> None:
    """Print the JSON schema of the config."""
    from .config import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def show(
    result: ResultArg,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write PNG sections and a convergence plot here.")
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Print a summary of a result; optionally plot it."""
    from .summary import summarize

    def _show() -> None:
        from .errors import UserInputError
        from .results import read_result

        if not result.is_file():
            raise UserInputError(f"{result}: no such result file")
        try:
            saved = read_result(result)
        except (OSError, KeyError) as exc:
            raise UserInputError(f"{result}: not a jointinv result ({exc})") from None
        typer.echo(summarize(saved, result))
        if plot is not None:
            from .plotting import plot_result

            for path in plot_result(saved, plot):
                typer.echo(f"wrote {path}")

    _guarded(verbose, _show)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
