"""Typed results of Braze calls, with the per-item "minor errors" parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Outcome(str, Enum):
    """What is known about a request once the hook is done with it."""

    ACCEPTED = "accepted"
    """Braze answered 2xx: every item not named in ``minor_errors`` was processed."""
    UNCERTAIN = "uncertain"
    """The body may have reached Braze but no answer came back: it may or may not have been processed."""


@dataclass(frozen=True)
class MinorError:
    """One per-item error Braze reported on an otherwise successful request.

    :param type: Braze's description of what is wrong with the item.
    :param input_array: ``attributes``, ``events``, ``purchases`` or ``recipients`` where given.
    :param index: position of the item in that array, where given.
    """

    type: str
    input_array: str | None = None
    index: int | None = None


def parse_minor_errors(body: Mapping[str, Any]) -> tuple[MinorError, ...]:
    """Read the ``errors`` array of a Braze response body.

    :param body: the decoded JSON response.
    """
    raw = body.get("errors")
    if not isinstance(raw, list):
        return ()
    parsed: list[MinorError] = []
    for entry in raw:
        if isinstance(entry, Mapping):
            index = entry.get("index")
            parsed.append(
                MinorError(
                    type=str(entry.get("type") or entry.get("message") or "unspecified error"),
                    input_array=str(entry["input_array"]) if entry.get("input_array") else None,
                    index=index if isinstance(index, int) and not isinstance(index, bool) else None,
                )
            )
        else:
            parsed.append(MinorError(type=str(entry)))
    return tuple(parsed)


@dataclass(frozen=True)
class BrazeResponse:
    """The result of one Braze call.

    :param endpoint: the REST path called.
    :param outcome: accepted, or uncertain (see :class:`Outcome`).
    :param status: HTTP status of the final attempt, ``None`` when no response arrived.
    :param body: decoded JSON body (empty when none).
    :param minor_errors: per-item errors on an accepted request.
    :param attempts: how many times the request was sent.
    :param uncertain_reason: why the outcome is unknown, when it is.
    """

    endpoint: str
    outcome: Outcome
    status: int | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    minor_errors: tuple[MinorError, ...] = ()
    attempts: int = 1
    uncertain_reason: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether Braze answered 2xx."""
        return self.outcome is Outcome.ACCEPTED

    @property
    def dispatch_id(self) -> str | None:
        """The ``dispatch_id`` Braze returned (campaign sends)."""
        value = self.body.get("dispatch_id")
        return str(value) if value is not None else None

    @property
    def send_id(self) -> str | None:
        """The ``send_id`` Braze returned (``/sends/id/create``)."""
        value = self.body.get("send_id")
        return str(value) if value is not None else None

    def errors_by_index(self, input_array: str) -> dict[int, str]:
        """The minor errors for one input array, by item index.

        Errors without an index cannot be mapped to an item; see :attr:`unmapped_errors`.

        :param input_array: ``attributes``, ``events``, ``purchases`` or ``recipients``.
        """
        found: dict[int, str] = {}
        for error in self.minor_errors:
            if error.index is not None and error.input_array in (input_array, None):
                found.setdefault(error.index, error.type)
        return found

    @property
    def unmapped_errors(self) -> tuple[MinorError, ...]:
        """Minor errors that name no item index."""
        return tuple(e for e in self.minor_errors if e.index is None)
