"""Progress on stderr: the stages of a run and one line per Gauss-Newton iteration.

Stages (reading the data, building the engines, β0 from the Jacobians, the
posterior diagnostics, writing) are log records of the ``jointinv.stage``
logger, at INFO (:func:`stage`): the command line prints them as they come, a
Python caller sees them through ``logging`` if it wants them.

Iterations are printed by :class:`IterationPrinter` as one compact row under a
column header, within 80 columns for up to four modalities with short names::

      it         β      χ² ert  χ² traveltime  χ² gravity  step  seconds
       0       139      492.1          94.49       40.74      -      0.0
       1       139      19.11          2.815       1.742   1.00      6.9

Names and paths come from the user's files: they are printed as
:class:`rich.text.Text`, never parsed as rich markup or emoji codes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rich.text import Text

if TYPE_CHECKING:
    from .inversion import IterationRecord

#: the logger of stage messages
STAGE_LOGGER = "jointinv.stage"

_stage_log = logging.getLogger(STAGE_LOGGER)


def stage(message: str, *args: object) -> None:
    """Report a stage of the work (``logging`` INFO on :data:`STAGE_LOGGER`)."""
    _stage_log.info(message, *args)


#: longest modality name shown in a column title; longer ones are cut with "…"
NAME_WIDTH = 11
#: width of a χ² column at least: a value such as 1.235e+05 and the weight mark
VALUE_WIDTH = 12
#: after a χ², marks a modality whose misfit carries a balancing weight ≠ 1
WEIGHTED = "*"


def _short(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"


class IterationPrinter:
    """Print one row per iteration (a plain callable), under a column header
    printed before the first row."""

    def __init__(self, console: Any, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self._widths: dict[str, int] | None = None
        self._noted_weights = False

    def __call__(self, record: IterationRecord) -> None:
        if self.quiet:
            return
        if self._widths is None:
            self._widths = {
                name: max(VALUE_WIDTH, len(f"χ² {_short(name)}") + 2) for name in record.chi2
            }
            self._print(self.header(self._widths))
        self._print(self.row(record, self._widths))
        weighted = [k for k, w in record.weights.items() if w != 1.0]
        if weighted and not self._noted_weights:
            self._noted_weights = True
            self._print(
                f"{WEIGHTED} the misfit of {', '.join(weighted)} carries a balancing weight "
                "(inversion.balancing)"
            )

    @staticmethod
    def header(widths: dict[str, int]) -> str:
        titles = "".join(f"{'χ² ' + _short(k):>{w}}" for k, w in widths.items())
        return f"{'it':>4}{'β':>10}{titles}{'step':>6}{'seconds':>9}"

    @staticmethod
    def row(record: IterationRecord, widths: dict[str, int]) -> str:
        cells = ""
        for name, width in widths.items():
            mark = WEIGHTED if record.weights.get(name, 1.0) != 1.0 else " "
            cells += f"{record.chi2[name]:>{width - 1}.4g}{mark}"
        step = f"{record.step_length:.2f}" if record.iteration else "-"
        seconds = sum(record.seconds.values())
        return f"{record.iteration:4d}{record.beta:10.3g}{cells}{step:>6}{seconds:9.1f}"

    def _print(self, line: str) -> None:
        self.console.print(Text(line), highlight=False, soft_wrap=True)

    def finish(self, result: Any, seconds: float) -> None:
        if self.quiet:
            return
        inv = result.inversion
        colour = "green" if inv.success else "yellow"
        self.console.print(
            Text.assemble((inv.message, colour), f" after {inv.nit} iterations")
        )
        for name, sep in result.separate.items():
            chi2 = sep.chi2[name]
            self.console.print(
                Text(
                    f"separate {name}: χ² {chi2:.3f} after {sep.inversion.nit} iterations "
                    f"({sep.inversion.message})"
                ),
                highlight=False,
            )
        if result.output is not None:
            self.console.print(Text(f"wrote {result.output} ({seconds:.1f} s)"), soft_wrap=True)


class StageHandler(logging.Handler):
    """Log records as lines on a rich console: stages in cyan, notes as they are,
    warnings after a coloured ``warning:`` and errors after ``ERROR:`` (no level column,
    no time: the lines fit the terminal; lower-case ``error:`` is kept for the one line
    that ends a command on a user error)."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                line = Text.assemble(("ERROR:", "red"), " ", message)
            elif record.levelno >= logging.WARNING:
                line = Text.assemble(("warning:", "yellow"), " ", message)
            elif record.name == STAGE_LOGGER:
                line = Text(message, style="cyan")
            else:
                line = Text(message)
            self.console.print(line, highlight=False)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)
