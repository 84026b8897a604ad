"""Exceptions raised by the Braze layer. None of them ever carries the API key."""

from __future__ import annotations


class BrazeError(Exception):
    """Base class of every error this provider raises about Braze."""


class BrazeConfigError(BrazeError, ValueError):
    """The Braze connection is unusable as configured (endpoint, key, extras)."""


class BrazeApiError(BrazeError):
    """Braze answered with a definitive failure: nothing in the request was processed.

    :param endpoint: the REST path that was called, e.g. ``/users/track``.
    :param status: the HTTP status, or ``None`` when no response was received.
    :param message: Braze's ``message`` (or a description of the transport failure).
    :param attempts: how many times the request was sent.
    """

    def __init__(self, endpoint: str, status: int | None, message: str, attempts: int = 1) -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.attempts = attempts
        shown = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"Braze {endpoint} failed ({shown}) after {attempts} attempt(s): {message}")
