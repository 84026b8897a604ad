"""Exceptions raised about staged ActionIQ input. They name the file and say what to fix."""

from __future__ import annotations


class AiqBrazeInputError(ValueError):
    """Base class of every error about the provider's input (staged files and their contents)."""


class StagingError(AiqBrazeInputError):
    """A staged source or file cannot be used as a whole: nothing matches, storage is unreadable,
    the format or compression is unknown, the header is unusable, the data is corrupt.

    Row-level problems never raise this: they come back as rejected :class:`StagedRow` objects.

    :param message: the full message; it names the path or file and what to check or fix.
    :param uri: the file or pattern concerned, when there is one.
    """

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri
