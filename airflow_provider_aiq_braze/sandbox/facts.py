"""Braze's documented facts, written down for the sandbox alone.

This module is the sandbox's own reading of Braze's documentation and of answers that open-source
integrations recorded from live Braze. It deliberately shares nothing with the client's
``airflow_provider_aiq_braze.braze`` package, so that a wrong belief on the client side fails a test
instead of being confirmed. Every fact names its source:

- ``braze-docs:<path>`` is a page of the repository ``braze-inc/braze-docs``;
- ``rudder-transformer:<path>`` is a test fixture of ``rudderlabs/rudder-transformer`` that recorded
  an answer of live Braze (facts carry over, code does not);
- "sandbox choice" marks what Braze does not document, with the reason for the choice.

Where Braze's own pages disagree, the sandbox takes a setting (see :class:`ObjectCountRule` and
:data:`PROPERTIES_MAX_BYTES`) whose default is justified here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# --------------------------------------------------------------------------------------- requests

#: Largest request body. Sandbox choice: Braze documents no byte limit for ``/users/track``; 4 MB is
#: the limit the project digest (/work/shared/braze-api.md, "Payload") records, answered ``413``.
MAX_REQUEST_BYTES = 4 * 1024 * 1024

#: ``/users/track`` objects per request, legacy accounts: 75 attributes + 75 events + 75 purchases
#: (braze-docs:_docs/_api/api_limits.md "Batching requests for Track users endpoint";
#: braze-docs:_includes/rate_limits.md).
TRACK_OBJECTS_PER_ARRAY = 75
#: Current pages: "up to 75 total objects combined across attributes, events, and purchases"
#: (braze-docs:_docs/_api/endpoints/user_data/post_user_track.md, rate limit section, 2025-2026).
TRACK_OBJECTS_COMBINED = 75
#: "Monthly Active Users CY 24-25" contracts: "Each request may batch up to 50 updates combined
#: across attribute, event, or purchase objects" (braze-docs:.../post_user_track.md, MAU section).
TRACK_OBJECTS_COMBINED_MAU = 50


class ObjectCountRule(str, Enum):
    """How ``/users/track`` objects count against ``400 Max Input Length Exceeded``.

    Default :attr:`COMBINED_75`: it is what the current ``post_user_track.md`` says for accounts in
    general; the two others are what specific contracts get (legacy accounts, MAU CY 24-25).
    """

    PER_ARRAY = "per-array"
    COMBINED_75 = "combined-75"
    COMBINED_50 = "combined-50"

    def exceeded(self, attributes: int, events: int, purchases: int) -> bool:
        """Whether a request with these array sizes is over the limit.

        :param attributes: attribute objects in the request.
        :param events: event objects.
        :param purchases: purchase objects.
        """
        if self is ObjectCountRule.PER_ARRAY:
            return max(attributes, events, purchases) > TRACK_OBJECTS_PER_ARRAY
        limit = TRACK_OBJECTS_COMBINED if self is ObjectCountRule.COMBINED_75 else TRACK_OBJECTS_COMBINED_MAU
        return attributes + events + purchases > limit


#: Recipients per ``/campaigns/trigger/send`` request: "The recipients array may contain up to 50
#: objects" (braze-docs:_docs/_api/endpoints/messaging/send_messages/post_send_triggered_campaigns.md).
TRIGGER_MAX_RECIPIENTS = 50
#: "Up to 50 external_ids or user_aliases can be included in a single request"
#: (braze-docs:_docs/_api/endpoints/export/user_data/post_users_identifier.md).
EXPORT_MAX_IDS = 50
#: ``/campaigns/list``: "The campaigns are returned in groups of 100 sorted by time of creation"
#: (braze-docs:_docs/_api/endpoints/export/campaigns/get_campaigns.md).
CAMPAIGNS_PER_PAGE = 100

# ------------------------------------------------------------------------------ names and values

#: Custom attribute keys and values, event property names and string values: at most 255
#: characters (braze-docs:_docs/_api/objects_filters/event_object.md "Property names must be
#: non-empty strings less than or equal to 255 characters, with no leading dollar signs ($)",
#: "Strings: 255 characters or fewer"; developer guide "Custom attribute keys and values have a
#: maximum length of 255 characters").
MAX_NAME_LENGTH = 255
MAX_STRING_LENGTH = 255
#: ``product_id`` "can be up to 255 characters" (braze-docs:_docs/_api/objects_filters/purchase_object.md).
MAX_PRODUCT_ID_LENGTH = 255

#: Event properties "that contain array or object values can have an event property payload of up
#: to" 50 KB (older event_object.md) or 100 KB (current pages, digest "Event objects"). The pages
#: disagree: the setting defaults to the current 100 KB; ``--properties-max-bytes 51200`` selects
#: the older one. The limit applies only to property objects holding an array or an object.
PROPERTIES_MAX_BYTES = 100 * 1024
PROPERTIES_MAX_BYTES_OLDER = 50 * 1024

#: Event property names Braze reserves (digest "Event objects": ``time`` and ``event_name`` give
#: API errors; braze-docs:_docs/_api/objects_filters/event_object.md, current version).
RESERVED_EVENT_PROPERTIES = frozenset({"time", "event_name"})
#: Purchase property names Braze reserves (braze-docs:_docs/_api/objects_filters/purchase_object.md,
#: current version; digest "Custom attributes").
RESERVED_PURCHASE_PROPERTIES = frozenset(
    {"time", "product_id", "quantity", "event_name", "price", "currency"}
)

#: Operators a custom attribute value may hold: ``{"inc": n}``, ``{"add": [...]}``,
#: ``{"remove": [...]}`` (braze-docs:_docs/_api/objects_filters/user_attributes_object.md) and the
#: array-of-objects operators (braze-docs:_docs/_user_guide/data/custom_data/custom_attributes/
#: array_of_objects.md). Other keys starting with ``$`` are refused like ``$`` attribute names.
ATTRIBUTE_OPERATOR_KEYS = frozenset(
    {"$add", "$remove", "$update", "$identifier_key", "$identifier_value", "$new_object"}
)

#: Standard profile fields of an attribute object; everything else is a custom attribute
#: (braze-docs:_docs/_api/objects_filters/user_attributes_object.md "Braze user profile fields").
#: Used only to split ``/users/export/ids`` answers into top-level fields and ``custom_attributes``.
STANDARD_PROFILE_FIELDS = frozenset(
    {
        "country",
        "current_location",
        "date_of_first_session",
        "date_of_last_session",
        "dob",
        "email",
        "email_subscribe",
        "email_open_tracking_disabled",
        "email_click_tracking_disabled",
        "facebook",
        "first_name",
        "gender",
        "home_city",
        "image_url",
        "language",
        "last_name",
        "marked_email_as_spam_at",
        "phone",
        "push_subscribe",
        "push_tokens",
        "subscription_groups",
        "time_zone",
        "twitter",
    }
)

#: ``send_id``: ASCII, at most 64 characters (braze-docs:_docs/_api/identifier_types.md "Send
#: identifier"; digest "POST /campaigns/trigger/send"). Answer: ``{"message": "success", "send_id"}``
#: (braze-docs:_docs/_api/endpoints/messaging/send_messages/post_create_send_ids.md).
SEND_ID_MAX_LENGTH = 64
#: "The daily maximum number of custom send identifiers that can be created via this endpoint is
#: 100" (braze-docs:_includes/rate_limits.md "sends id create").
SEND_IDS_PER_DAY = 100

# ---------------------------------------------------------------------------------- permissions

#: Permission each endpoint needs on the REST API key (the "Prerequisites" of each endpoint page;
#: braze-docs:_docs/_api/basics.md "REST API key permissions").
ENDPOINT_PERMISSIONS: dict[str, str] = {
    "/users/track": "users.track",
    "/campaigns/trigger/send": "campaigns.trigger.send",
    "/sends/id/create": "sends.id.create",
    "/users/export/ids": "users.export.ids",
    "/campaigns/list": "campaigns.list",
}

# --------------------------------------------------------------------------------- rate limits


@dataclass(frozen=True)
class Rate:
    """A request budget: ``requests`` per ``seconds``.

    :param requests: requests allowed per window.
    :param seconds: the window, in seconds.
    """

    requests: int
    seconds: float


#: ``/users/track``: 3,000 requests per three seconds (braze-docs:_docs/_api/api_limits.md).
USERS_TRACK_RATE = Rate(3000, 3.0)
#: Non-broadcast ``/messages/send``, ``/campaigns/trigger/send`` and ``/canvas/trigger/send``:
#: 250,000 requests per hour shared between them (braze-docs:_docs/_api/api_limits.md).
MESSAGING_RATE = Rate(250_000, 3600.0)
#: ``/users/export/ids``: 250 requests per minute for workspaces onboarded on or after 2024-08-22,
#: 2,500 before (braze-docs:_docs/_api/api_limits.md). Default: the newer, stricter one.
EXPORT_RATE = Rate(250, 60.0)
#: ``/campaigns/list`` and the other "requests with shared rate limits": 250,000 per hour
#: (braze-docs:_docs/_api/api_limits.md).
DEFAULT_RATE = Rate(250_000, 3600.0)

#: Which budget each endpoint draws from (braze-docs:_docs/_api/api_limits.md).
RATE_GROUPS: dict[str, str] = {
    "/users/track": "users.track",
    "/campaigns/trigger/send": "messaging",
    "/users/export/ids": "users.export.ids",
}


def rate_group(path: str) -> str:
    """The rate-limit group of a path (``default`` when not listed).

    :param path: the REST path.
    """
    return RATE_GROUPS.get(path, "default")


# --------------------------------------------------------------------------- messages of Braze

#: When no object of a ``/users/track`` request is valid: HTTP 400 with this message and the
#: per-item ``errors`` (rudder-transformer:test/integrations/destinations/braze/network.ts and
#: .../dataDelivery/business.ts, "invalid_scenario2").
NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
#: Too many ``/users/track`` objects (braze-docs:_docs/_api/errors.md, "Fatal errors").
MAX_INPUT = "Max Input Length Exceeded"
#: Too many recipients (braze-docs:_docs/_api/errors.md).
TOO_MANY_RECIPIENTS = "The max number of external_ids and aliases per request was exceeded"
#: Too many identifiers on an id-based endpoint (braze-docs:_docs/_api/errors.md).
TOO_MANY_IDS = "The max number of ids per request was exceeded"
#: "There are no external IDs or segment IDs or no push tokens in the request"
#: (braze-docs:_docs/_api/errors.md).
NO_RECIPIENTS = "No Recipients"
#: "No Messaging API Campaign was found for the campaign ID you provided" (braze-docs:_docs/_api/errors.md).
INVALID_CAMPAIGN_ID = "Invalid Campaign ID"
#: 401 body recorded from live Braze (rudder-transformer:test/integrations/destinations/braze/
#: network.ts, "invalid_scenario3").
INVALID_API_KEY = "Invalid API Key"
#: 400 "Bad syntax" (braze-docs:_docs/_api/errors.md).
BAD_REQUEST = "Bad Request"
#: 429 "Over rate limit" (braze-docs:_docs/_api/errors.md). Sandbox text: Braze documents the
#: status, not the body.
RATE_LIMITED = "Rate limit exceeded"

# Per-item ("minor") error types. The first three are texts recorded from live Braze; the others
# follow their pattern ("'<field>' is required", "'<field>' is not valid") because Braze documents
# only "<minor error message>" (braze-docs:_docs/_api/errors.md).
#: rudder-transformer:test/integrations/destinations/braze/dataDelivery/business.ts (message_2).
MISSING_IDENTIFIER = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"
#: rudder-transformer:test/integrations/destinations/braze/dataDelivery/business.ts (message_2).
INVALID_QUANTITY = "'quantity' is not valid"
#: rudder-transformer:test/integrations/destinations/braze/network.ts (trackBadRequest answer).
INVALID_EMAIL = "The value provided for the 'email' field is not a valid email."
#: Sandbox text, after :data:`INVALID_EMAIL`.
INVALID_PHONE = "The value provided for the 'phone' field is not a valid phone number."
#: "provided external_id is blacklisted and disallowed" is the error Braze names for identifiers
#: it refuses (braze-docs:_docs/_api/endpoints/user_data/post_user_track.md, "Fatal error response
#: codes"); the sandbox gives it for the identifiers it is told to refuse.
REFUSED_IDENTIFIER = "provided {kind} is blacklisted and disallowed"
#: Recipients (sandbox text after :data:`MISSING_IDENTIFIER`; the identifiers are those of
#: braze-docs:_docs/_api/objects_filters/recipient_object.md).
MISSING_RECIPIENT_IDENTIFIER = "'external_user_id', 'user_alias', 'braze_id' or 'email' is required"


def required(field: str) -> str:
    """The minor error of a missing field, in Braze's recorded pattern.

    :param field: the field name.
    """
    return f"'{field[:64]}' is required"


def not_valid(field: str) -> str:
    """The minor error of an invalid field, in Braze's recorded pattern (``'quantity' is not valid``).

    :param field: the field name (cut at 64 characters).
    """
    return f"'{field[:64]}' is not valid"


def only_one_of(fields: list[str]) -> str:
    """The minor error of several identifiers that cannot be combined (sandbox text).

    :param fields: the identifiers found.
    """
    return f"only one of {', '.join(repr(f) for f in fields)} can be provided"
