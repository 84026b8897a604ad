"""What the pairs are written with: their sources, Braze's fixed texts, small builders.

Sources are named in each pair. ``RS`` is the RudderStack repository ``rudderlabs/rudder-transformer``
whose Braze test fixtures hold answers recorded from live Braze (facts carry over; no code is
copied); ``DOCS`` is ``braze-inc/braze-docs``. Where a case is required by the verdict table but
Braze documents nothing (a 422, a truncated body…), the source says so and names the sandbox fault
that produces it.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.corpus import Answer, Setup

RS = "rudderlabs/rudder-transformer"
DOCS = "braze-inc/braze-docs"
RS_NETWORK = f"{RS} test/integrations/destinations/braze/network.ts"
RS_BUSINESS = f"{RS} test/integrations/destinations/braze/dataDelivery/business.ts"
RS_OTHER = f"{RS} test/integrations/destinations/braze/dataDelivery/other.ts"
TRACK_DOC = f"{DOCS} _docs/_api/endpoints/user_data/post_user_track.md"
TRIGGER_DOC = f"{DOCS} _docs/_api/endpoints/messaging/send_messages/post_send_triggered_campaigns.md"
SEND_ID_DOC = f"{DOCS} _docs/_api/endpoints/messaging/send_messages/post_create_send_ids.md"
EXPORT_DOC = f"{DOCS} _docs/_api/endpoints/export/user_data/post_users_identifier.md"
LIST_DOC = f"{DOCS} _docs/_api/endpoints/export/campaigns/get_campaigns.md"
ERRORS_DOC = f"{DOCS} _docs/_api/errors.md"
LIMITS_DOC = f"{DOCS} _docs/_api/api_limits.md"
VERDICTS = "/work/briefs/verdicts.md (required case; Braze documents no body for it)"

WHEN = "2024-05-01T12:00:00Z"
NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
MISSING_ID = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
BAD_QUANTITY = "'quantity' is not valid"
BAD_EMAIL = "The value provided for the 'email' field is not a valid email."
REFUSED = "provided external_id is blacklisted and disallowed"
RATE_HEADERS = {"x-ratelimit-limit": "int", "x-ratelimit-remaining": "int", "x-ratelimit-reset": "int"}
MESSAGE = {"message": "str"}
MESSAGE_ERRORS = {"message": "str", "errors": "list[error]"}


def event(user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"external_id": user, "name": "aiq_purchase_intent", "time": WHEN, **extra}


def purchase(user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"external_id": user, "product_id": "plan", "currency": "USD", "price": 9.5, "time": WHEN, **extra}


def error(kind: str, array: str, index: int) -> dict[str, Any]:
    return {"type": kind, "input_array": array, "index": index}


def json_answer(
    status: int, body: dict[str, Any], fixed: tuple[str, ...] = ("message",), **types: str
) -> Answer:
    """A JSON answer whose shape is read from ``body``; ``fixed`` keys must match exactly."""
    names = {"str": "str", "int": "int", "float": "number", "bool": "bool", "list": "list", "dict": "dict"}
    shape = {key: types.get(key) or names[type(value).__name__] for key, value in body.items()}
    return Answer(
        "json", status, shape, {key: body[key] for key in fixed if key in body}, dict(RATE_HEADERS), body
    )


def faults(**settings: Any) -> Setup:
    return Setup(sandbox=settings)


ONE_EVENT = {"events": [event()]}
TRACK = "/users/track"
TRIGGER = "/campaigns/trigger/send"
SEND_ID = "/sends/id/create"
EXPORT = "/users/export/ids"
LIST = "/campaigns/list"
