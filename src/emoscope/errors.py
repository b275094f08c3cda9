"""Exceptions raised by emoscope.

Every error a user can cause with bad input is an :class:`EmoscopeError`; the CLI turns it into a
one-line message and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError", "DatasetNotFoundError", "EmoscopeError"]


class EmoscopeError(Exception):
    """Base class of the errors emoscope raises for bad input or missing resources."""


class DataError(EmoscopeError, ValueError):
    """A file does not have the expected format.

    The message names the file, the 1-based line (when known), what was found and what was
    expected, e.g. ``train.csv, line 12: unknown label 'happy'; expected one of: anger, joy``.
    """

    def __init__(
        self, path: str | Path | None, line: int | None, problem: str, expected: str | None = None
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.problem = problem
        self.expected = expected
        where = self.path or "<input>"
        if line is not None:
            where += f", line {line}"
        msg = f"{where}: {problem}"
        if expected:
            msg += f"; expected {expected}"
        super().__init__(msg)


class DatasetNotFoundError(EmoscopeError, FileNotFoundError):
    """A dataset's files are not where emoscope looked; the message says where to get them."""
