"""``python -m jointinv``: the same command line as ``jointinv``."""

from .cli import main

main()
