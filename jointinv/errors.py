"""Exceptions that separate a user's mistake from a failure of the tool.

A :class:`UserInputError` (bad config, bad data file, bad option) is reported
by the CLI as one line and exit code 2; anything else is a runtime failure
(exit code 1).
"""

from __future__ import annotations


class JointinvError(Exception):
    """Base class of every error raised on purpose by jointinv."""


class UserInputError(JointinvError):
    """Bad input from the user: one line, naming the file and field or line."""


class ConfigError(UserInputError):
    """The YAML config is malformed or invalid.

    Parameters
    ----------
    source : str
        File name the error refers to (e.g. ``survey.yaml``).
    field : str or None
        Dotted field path (e.g. ``modalities.ert.error.relative``).
    message : str
        What is wrong.
    """

    def __init__(self, source: str, field: str | None, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(where + message)


class DataError(UserInputError):
    """A data file is unreadable or inconsistent.

    Parameters
    ----------
    source : str
        Path of the data file.
    line : int or None
        1-based line number in the file, when the problem has one.
    message : str
        What is wrong.
    """

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.message = message
        where = f"{source}:{line}: " if line else f"{source}: "
        super().__init__(where + message)


class EngineError(JointinvError):
    """A forward engine (pyGIMLi, SimPEG) failed or returned unusable values."""
