"""Typed results of Braze calls: the verdict of each answer, with the per-item "minor errors" parsed.

The verdicts are the shared vocabulary of the provider (client, engine, sandbox corpus, docs); what
each one means for the rows of a request is in ``docs/guarantees.md``. Which answer gets which
verdict is decided in one place, :func:`airflow_provider_aiq_braze.braze.answers.classify`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from airflow_provider_aiq_braze.braze.ratelimit import RateLimitInfo


class Verdict(str, Enum):
    """What one answer (or failure) of one request means for the objects in it."""

    ACCEPTED = "accepted"
    """2xx: every object not named in ``minor_errors`` was processed."""
    REFUSED_ITEMS = "refused_items"
    """4xx naming objects: those are refused; the others were not processed and may be sent again."""
    REFUSED = "refused"
    """A permanent refusal of the request's content: nothing processed, never worth resending."""
    SETUP_ERROR = "setup_error"
    """The setup is wrong (key, permission, endpoint, redirect, unbuildable request): stop at once."""
    RATE_LIMITED = "rate_limited"
    """429: nothing processed; pause every sender until the reset, then send the same request."""
    RETRY = "retry"
    """Nothing processed and trying again may work (5xx but 504, failure before sending)."""
    UNCERTAIN = "uncertain"
    """The request may have reached Braze and no definitive answer came back."""


#: The former name of :class:`Verdict` (it had only ``ACCEPTED`` and ``UNCERTAIN``).
Outcome = Verdict


@dataclass(frozen=True)
class MinorError:
    """One per-item error Braze reported (on a 2xx, or on a 400 when no object was valid).

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
    """The classified result of one Braze call. Every text in it is free of the API key.

    :param endpoint: the REST path called.
    :param verdict: what the answer means (see :class:`Verdict`).
    :param status: HTTP status of the final attempt, ``None`` when no response arrived.
    :param body: decoded JSON body (empty when none or not JSON).
    :param minor_errors: per-item errors (on 2xx, and on 4xx for ``refused_items``).
    :param attempts: how many times the request was sent.
    :param reason: why the verdict is not a plain ``accepted`` (a short, actionable sentence), or
        what is unknown about an accepted answer (see ``items_unknown``).
    :param message: Braze's own ``message`` (with its ``errors``), or a description of the transport
        failure; ``None`` on a clean 2xx.
    :param cause: a short tag of the cause: ``auth``, ``permission``, ``endpoint``, ``redirect``,
        ``batch_size``, ``unbuildable``, ``tls``, ``connect``, ``transport``, ``gateway``, ``server``,
        ``content``, ``items``, ``not_json``, ``truncated``, ``rate_limit``, or ``""``.
    :param items_unknown: a 2xx whose body could not be read whole: per-item errors are unknown.
    :param rate_limit: Braze's ``X-RateLimit-*`` headers of the answer.
    """

    endpoint: str
    verdict: Verdict
    status: int | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    minor_errors: tuple[MinorError, ...] = ()
    attempts: int = 1
    reason: str | None = None
    message: str | None = None
    cause: str = ""
    items_unknown: bool = False
    rate_limit: RateLimitInfo = field(default_factory=RateLimitInfo)

    @property
    def outcome(self) -> Verdict:
        """The verdict (the name this attribute had before there were seven)."""
        return self.verdict

    @property
    def accepted(self) -> bool:
        """Whether Braze answered 2xx."""
        return self.verdict is Verdict.ACCEPTED

    @property
    def uncertain_reason(self) -> str | None:
        """Why the outcome is unknown, when it is."""
        return self.reason if self.verdict is Verdict.UNCERTAIN else None

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
