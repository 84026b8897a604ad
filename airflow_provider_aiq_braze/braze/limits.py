"""Braze's published limits, in one place (see ``docs/braze-limits.md`` for the sources).

Where Braze's own documents disagree, the safer reading is the default and the other is
selectable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: Largest request body Braze accepts on ``/users/track`` (413 or 400 beyond).
MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: Objects per ``/users/track`` request on legacy accounts (per array) and the 2026 pages (combined).
USERS_TRACK_MAX_OBJECTS = 75
#: Objects per ``/users/track`` request for contracts on the newer MAU pricing (combined).
USERS_TRACK_MAX_OBJECTS_NEW_PRICING = 50

#: Recipients per ``/campaigns/trigger/send`` request.
TRIGGER_MAX_RECIPIENTS = 50

#: Size of an event's (or a recipient's trigger) properties object holding an array or an object:
#: 100 KB in Braze's current pages (event_object.md, nested objects, the release notes' "can now
#: have … up to 100 KB"), 50 KB in older ones. The default is the current one: the stricter older
#: reading would refuse objects Braze accepts. Flat objects of scalars have no documented bound.
EVENT_PROPERTIES_MAX_BYTES = 100 * 1024
EVENT_PROPERTIES_MAX_BYTES_OLDER = 50 * 1024

#: Keys (attribute and property names) and string values, in characters.
MAX_KEY_LENGTH = 255
MAX_STRING_VALUE_LENGTH = 255

#: ``send_id``: ASCII, at most 64 characters; at most 100 created per day per workspace.
SEND_ID_MAX_LENGTH = 64
SEND_IDS_PER_DAY = 100


class ObjectCountRule(str, Enum):
    """How Braze counts objects against ``Max Input Length Exceeded`` on ``/users/track``."""

    PER_ARRAY = "per-array"
    """Legacy accounts: 75 attributes + 75 events + 75 purchases."""
    COMBINED_75 = "combined-75"
    """2026 documentation: 75 objects combined across the three arrays."""
    COMBINED_50 = "combined-50"
    """Contracts on the newer MAU pricing: 50 objects combined."""

    def exceeded(self, attributes: int, events: int, purchases: int) -> bool:
        """Whether a request with these array sizes is over the limit.

        :param attributes: number of attribute objects.
        :param events: number of event objects.
        :param purchases: number of purchase objects.
        """
        if self is ObjectCountRule.PER_ARRAY:
            return max(attributes, events, purchases) > USERS_TRACK_MAX_OBJECTS
        limit = USERS_TRACK_MAX_OBJECTS if self is ObjectCountRule.COMBINED_75 else 50
        return attributes + events + purchases > limit


@dataclass(frozen=True)
class RateLimit:
    """A request budget: ``requests`` per ``per_seconds`` window.

    :param requests: requests allowed per window.
    :param per_seconds: the window length in seconds.
    """

    requests: int
    per_seconds: float

    @property
    def per_second(self) -> float:
        """The sustained rate in requests per second."""
        return self.requests / self.per_seconds


#: ``/users/track``: 3,000 requests per 3 seconds per workspace (since 2024-10-28).
USERS_TRACK_RATE = RateLimit(3000, 3.0)
#: Non-broadcast ``/campaigns/trigger/send``, ``/messages/send`` and ``/canvas/trigger/send``
#: share 250,000 requests per hour.
MESSAGING_RATE = RateLimit(250_000, 3600.0)
#: Braze's default for endpoints without a documented limit.
DEFAULT_RATE = RateLimit(250_000, 3600.0)

#: Which rate-limit group each endpoint draws from; endpoints in one group share one budget.
RATE_GROUPS: dict[str, str] = {
    "/users/track": "users.track",
    "/campaigns/trigger/send": "messaging",
    "/messages/send": "messaging",
    "/canvas/trigger/send": "messaging",
}

#: The default budget of each rate-limit group.
GROUP_RATES: dict[str, RateLimit] = {
    "users.track": USERS_TRACK_RATE,
    "messaging": MESSAGING_RATE,
    "default": DEFAULT_RATE,
}


def rate_group(endpoint: str) -> str:
    """The rate-limit group of an endpoint (``default`` for endpoints not listed).

    :param endpoint: a REST path such as ``/users/track``.
    """
    return RATE_GROUPS.get(endpoint, "default")


#: Permission each endpoint needs on the REST API key.
ENDPOINT_PERMISSIONS: dict[str, str] = {
    "/users/track": "users.track",
    "/campaigns/trigger/send": "campaigns.trigger.send",
    "/sends/id/create": "sends.id.create",
    "/campaigns/list": "campaigns.list",
    "/users/export/ids": "users.export.ids",
}
