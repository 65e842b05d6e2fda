"""Progress lines on stderr: one per Gauss-Newton iteration.

Names and paths come from the user's files: they are printed as
:class:`rich.text.Text`, never parsed as rich markup or emoji codes.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from .inversion import IterationRecord


class IterationPrinter:
    """Print χ² of every modality after each iteration (a plain callable)."""

    def __init__(self, console: Any, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    def __call__(self, record: IterationRecord) -> None:
        if self.quiet:
            return
        chi2 = "  ".join(f"{k} {v:7.3f}" for k, v in record.chi2.items())
        secs = sum(record.seconds.values())
        if any(w != 1.0 for w in record.weights.values()):
            chi2 += "  weights: " + " ".join(f"{w:.3g}" for w in record.weights.values())
        step = f"step {record.step_length:4.2f}" if record.iteration else "start    "
        self.console.print(
            Text(
                f"it {record.iteration:2d}  β {record.beta:9.3e}  Φ {record.phi:11.4e}  "
                f"χ²: {chi2}  {step}  {secs:5.1f} s"
            ),
            highlight=False,
        )

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
