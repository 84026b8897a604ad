"""The corpus: documented Braze request/answer pairs (see :mod:`tests.conformance.corpus`).

Sources are named in each pair. ``RS`` is the RudderStack repository ``rudderlabs/rudder-transformer``
whose Braze test fixtures hold answers recorded from live Braze (facts carry over; no code is
copied); ``DOCS`` is ``braze-inc/braze-docs``. Where a case is required by the verdict table but
Braze documents nothing (a 422, a truncated body…), the source says so and names the sandbox fault
that produces it.
"""

from __future__ import annotations

from typing import Any

from tests.conformance.corpus import Answer, ConformancePair, Setup

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


def _event(user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"external_id": user, "name": "aiq_purchase_intent", "time": WHEN, **extra}


def _purchase(user: str = "u1", **extra: Any) -> dict[str, Any]:
    return {"external_id": user, "product_id": "plan", "currency": "USD", "price": 9.5, "time": WHEN, **extra}


def _error(kind: str, array: str, index: int) -> dict[str, Any]:
    return {"type": kind, "input_array": array, "index": index}


def _json(status: int, body: dict[str, Any], fixed: tuple[str, ...] = ("message",), **types: str) -> Answer:
    """A JSON answer whose shape is read from ``body``; ``fixed`` keys must match exactly."""
    names = {"str": "str", "int": "int", "float": "number", "bool": "bool", "list": "list", "dict": "dict"}
    shape = {key: types.get(key) or names[type(value).__name__] for key, value in body.items()}
    return Answer(
        "json", status, shape, {key: body[key] for key in fixed if key in body}, dict(RATE_HEADERS), body
    )


def _fault(**settings: Any) -> Setup:
    return Setup(sandbox=settings)


ONE_EVENT = {"events": [_event()]}
TRACK = "/users/track"
TRIGGER = "/campaigns/trigger/send"
SEND_ID = "/sends/id/create"
EXPORT = "/users/export/ids"
LIST = "/campaigns/list"

_TRACK_PAIRS = [
    ConformancePair(
        "track-events-and-purchase-processed",
        TRACK,
        "POST",
        "valid",
        {"events": [_event("u1"), _event("u2")], "purchases": [_purchase("u1")]},
        _json(
            201,
            {"message": "success", "events_processed": 2, "purchases_processed": 1},
            ("message", "events_processed", "purchases_processed"),
        ),
        "accepted",
        f"{RS_BUSINESS} (braze_v1_scenario_1: message_1); {TRACK_DOC} 'Successful message'",
    ),
    ConformancePair(
        "track-attributes-processed",
        TRACK,
        "POST",
        "valid",
        {"attributes": [{"external_id": "u1", "AIQ_12_1": True}, {"external_id": "u2", "AIQ_12_1": False}]},
        _json(201, {"message": "success", "attributes_processed": 2}, ("message", "attributes_processed")),
        "accepted",
        f"{TRACK_DOC} 'Successful message'",
    ),
    ConformancePair(
        "track-minor-errors-some-valid",
        TRACK,
        "POST",
        "valid",
        {
            "events": [{"name": "x", "time": WHEN}, _event("u2")],
            "purchases": [_purchase("u1", quantity="invalid quantity")],
        },
        _json(
            201,
            {
                "message": "success",
                "events_processed": 1,
                "errors": [_error(MISSING_ID, "events", 0), _error(BAD_QUANTITY, "purchases", 0)],
            },
            ("message", "events_processed", "errors"),
            errors="list[error]",
        ),
        "accepted",
        f"{RS_BUSINESS} (braze_v1_scenario_2: message_2, no purchases_processed when no purchase was valid)",
        note="The objects named in errors are rejects with Braze's reason; the others were processed.",
    ),
    ConformancePair(
        "track-no-valid-object-400-with-items",
        TRACK,
        "POST",
        "valid",
        {
            "events": [{"name": "x", "time": WHEN}, {"name": "y", "time": WHEN}],
            "purchases": [_purchase("u1", quantity="invalid quantity")],
        },
        _json(
            400,
            {
                "message": NO_VALID_DATA,
                "errors": [
                    _error(MISSING_ID, "events", 0),
                    _error(MISSING_ID, "events", 1),
                    _error(BAD_QUANTITY, "purchases", 0),
                ],
            },
            ("message", "errors"),
            errors="list[error]",
        ),
        "refused_items",
        f"{RS_BUSINESS} (braze_v1_scenario_3: message_3); {RS_NETWORK} (invalid_scenario2)",
    ),
    ConformancePair(
        "track-invalid-emails-400-with-items",
        TRACK,
        "POST",
        "valid",
        {"attributes": [{"email": "ann@@example", "first_name": "Ann"}, {"email": "bob at example.com"}]},
        _json(
            400,
            {
                "message": NO_VALID_DATA,
                "errors": [_error(BAD_EMAIL, "attributes", 0), _error(BAD_EMAIL, "attributes", 1)],
            },
            ("message", "errors"),
            errors="list[error]",
        ),
        "refused_items",
        f"{RS_NETWORK} (trackBadRequest body; the fixture's status 401 is an artefact of the mock) and "
        f"{DOCS} _docs/_user_guide/message_building_by_channel/email/email_setup/email_validation.md",
    ),
    ConformancePair(
        "track-one-invalid-email-among-valid",
        TRACK,
        "POST",
        "valid",
        {
            "attributes": [
                {"external_id": "u1", "email": "ann@@example"},
                {"external_id": "u2", "AIQ_12_1": True},
            ]
        },
        _json(
            201,
            {"message": "success", "attributes_processed": 1, "errors": [_error(BAD_EMAIL, "attributes", 0)]},
            ("message", "attributes_processed", "errors"),
            errors="list[error]",
        ),
        "accepted",
        f"{RS_NETWORK} (email error text); {TRACK_DOC} 'Successful message with non-fatal errors'",
    ),
    ConformancePair(
        "track-refused-identifier-among-valid",
        TRACK,
        "POST",
        "valid",
        {"events": [_event("u1"), _event("bot-7")]},
        _json(
            201,
            {"message": "success", "events_processed": 1, "errors": [_error(REFUSED, "events", 1)]},
            ("message", "events_processed", "errors"),
            errors="list[error]",
        ),
        "accepted",
        f"{TRACK_DOC} ('provided external_id is blacklisted and disallowed')",
        Setup(sandbox={"refuse_id_prefixes": ["bot-"]}),
        note="Identifiers Braze does not accept, which the client cannot know in advance.",
    ),
    ConformancePair(
        "track-only-refused-identifiers-400",
        TRACK,
        "POST",
        "valid",
        {"events": [_event("bot-1"), _event("bot-2")]},
        _json(
            400,
            {
                "message": NO_VALID_DATA,
                "errors": [_error(REFUSED, "events", 0), _error(REFUSED, "events", 1)],
            },
            ("message", "errors"),
            errors="list[error]",
        ),
        "refused_items",
        f"{TRACK_DOC}; {RS_BUSINESS} (the 400 of a request with no valid object)",
        Setup(sandbox={"refuse_id_prefixes": ["bot-"]}),
    ),
    ConformancePair(
        "track-update-existing-only-unknown-user",
        TRACK,
        "POST",
        "valid",
        {"attributes": [{"external_id": "nobody", "AIQ_12_1": True, "_update_existing_only": True}]},
        _json(201, {"message": "success", "attributes_processed": 1}, ("message", "attributes_processed")),
        "accepted",
        f"{DOCS} _docs/_api/objects_filters/user_attributes_object.md ('Update Only' mode)",
        note="Processed means queued: the unknown user is skipped without an error.",
    ),
    ConformancePair(
        "track-max-input-length-combined-75",
        TRACK,
        "POST",
        "valid",
        {"events": [_event(f"u{i}") for i in range(76)]},
        _json(400, {"message": "Max Input Length Exceeded"}, ("message",)),
        "setup_error",
        f"{ERRORS_DOC} '400 Max Input Length Exceeded'; {TRACK_DOC} (75 objects combined)",
        note="The batch is above the account's object limit: setup_error naming batch_size.",
    ),
    ConformancePair(
        "track-max-input-length-combined-50",
        TRACK,
        "POST",
        "valid",
        {
            "attributes": [{"external_id": f"u{i}", "x": 1} for i in range(26)],
            "events": [_event(f"u{i}") for i in range(25)],
        },
        _json(400, {"message": "Max Input Length Exceeded"}, ("message",)),
        "setup_error",
        f"{TRACK_DOC} 'Monthly Active Users CY 24-25' (50 updates combined)",
        Setup(sandbox={"object_count_rule": "combined-50"}),
    ),
    ConformancePair(
        "track-legacy-75-per-array",
        TRACK,
        "POST",
        "valid",
        {
            "attributes": [{"external_id": f"u{i}", "x": 1} for i in range(75)],
            "events": [_event(f"u{i}") for i in range(75)],
        },
        _json(201, {"message": "success", "attributes_processed": 75, "events_processed": 75}, ("message",)),
        "accepted",
        f"{LIMITS_DOC} 'Batching requests for Track users endpoint' (75 + 75 + 75, legacy accounts)",
        Setup(sandbox={"object_count_rule": "per-array"}),
    ),
    ConformancePair(
        "track-no-objects-400",
        TRACK,
        "POST",
        "valid",
        {},
        _json(400, {"message": NO_VALID_DATA}, ("message",)),
        "refused",
        f"{RS_BUSINESS} (the message of a request without valid data); sandbox choice for an empty request",
    ),
    ConformancePair(
        "track-malformed-json-400",
        TRACK,
        "POST",
        "valid",
        None,
        _json(400, {"message": "Invalid JSON in request body"}, ()),
        "refused",
        f"{ERRORS_DOC} '400 Bad Request: Bad syntax'",
        raw_body='{"events": [',
    ),
    ConformancePair(
        "track-events-not-an-array-400",
        TRACK,
        "POST",
        "valid",
        {"events": {"external_id": "u1", "name": "x", "time": WHEN}},
        _json(400, {"message": "'events' must be an array"}, ()),
        "refused",
        f"{ERRORS_DOC} '400 Bad Request: Bad syntax'; {TRACK_DOC} (events: array of event objects)",
    ),
    ConformancePair(
        "track-wrong-content-type-400",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(400, {"message": "Content-Type must be application/json"}, ()),
        "refused",
        f"{TRACK_DOC} 'Request body' (Content-Type: application/json)",
        content_type="text/plain",
    ),
    ConformancePair(
        "track-invalid-key-401",
        TRACK,
        "POST",
        "invalid",
        ONE_EVENT,
        _json(401, {"message": "Invalid API Key"}),
        "setup_error",
        f"{RS_NETWORK} (invalid_scenario3); {ERRORS_DOC} '401 Unauthorized'",
    ),
    ConformancePair(
        "track-lacking-permission-403",
        TRACK,
        "POST",
        "lacking_permission",
        ONE_EVENT,
        _json(403, {"message": "Forbidden: this API key lacks the 'users.track' permission"}, ()),
        "setup_error",
        f"{ERRORS_DOC} '403 Forbidden'; {TRACK_DOC} 'Prerequisites' (users.track)",
    ),
    ConformancePair(
        "track-unknown-endpoint-404",
        "/users/trak",
        "POST",
        "valid",
        ONE_EVENT,
        _json(404, {"message": "Not Found: no Braze endpoint at this path"}, ()),
        "setup_error",
        f"{ERRORS_DOC} '404 Not Found'; {VERDICTS}",
        note="A 404 of the endpoint is a setup error (wrong host or path).",
    ),
    ConformancePair(
        "track-rate-limited-429",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(429, {"message": "Rate limit exceeded"}, ()),
        "rate_limited",
        f"{LIMITS_DOC} ('429 ... the rate limit has been hit'; X-RateLimit-* on every response)",
        Setup(sandbox={"users_track_rate": "1/600"}, prime=1),
    ),
    ConformancePair(
        "track-server-error-500",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(500, {"message": "Internal Server Error"}, ()),
        "retry",
        f"{ERRORS_DOC} '5XX Internal Server Error: retry with exponential backoff'; {RS_OTHER}",
        _fault(error_requests=1, error_status=500),
    ),
    ConformancePair(
        "track-service-unavailable-503",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(503, {"message": "Service Unavailable"}, ()),
        "retry",
        f"{RS_OTHER} (braze_v1_other_scenario_1)",
        _fault(error_requests=1, error_status=503),
    ),
    ConformancePair(
        "track-gateway-timeout-504",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("text", 504, example="<html><head><title>504 Gateway Time-out</title></head>...</html>"),
        "uncertain",
        f"{RS_OTHER} (braze_v1_other_scenario_3); {VERDICTS}",
        _fault(gateway_timeout_requests=1),
        note="The sandbox processes the request, then answers 504: the gateway may have forwarded it.",
    ),
    ConformancePair(
        "track-payload-too-large-413",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(413, {"message": "Payload Too Large"}, ()),
        "refused",
        "/work/shared/braze-api.md 'Payload: at most 4 MB per request (413 or 400 beyond)'; "
        "fault payload_too_large",
        _fault(payload_too_large_requests=1),
    ),
    ConformancePair(
        "track-unprocessable-422",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(422, {"message": "Unprocessable Entity"}, ()),
        "refused",
        f"{VERDICTS}; fault unprocessable",
        _fault(unprocessable_requests=1),
    ),
    ConformancePair(
        "track-redirect-301",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("json", 301, MESSAGE, {}, {"location": "str"}, {"message": "Moved"}),
        "setup_error",
        f"{VERDICTS} (a redirect is a setup error: wrong host); fault redirect",
        _fault(redirect_requests=1),
    ),
    ConformancePair(
        "track-2xx-empty-body",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("empty", 201, example=""),
        "accepted",
        f"{RS_NETWORK} (users/identify/test4: data '' with status 201); fault empty_body",
        _fault(empty_body_requests=1),
        note="Braze processed the request; its per-item errors are unknown (logged and recorded).",
    ),
    ConformancePair(
        "track-2xx-non-json-body",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("text", 201, example="<html><body>OK</body></html>"),
        "accepted",
        f"{VERDICTS}; fault non_json_body",
        _fault(non_json_body_requests=1),
    ),
    ConformancePair(
        "track-2xx-truncated-body",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("truncated", 201, example='{"message":"succe'),
        "accepted",
        "/work/briefs/verdicts.md ('A 2xx whose body cannot be read whole is still accepted'); issue 12; "
        "fault truncated_body",
        _fault(truncated_body_requests=1),
    ),
    ConformancePair(
        "track-2xx-string-errors",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        _json(
            201,
            {"message": "success", "events_processed": 1, "errors": ["minor error message"]},
            ("message", "errors"),
            errors="list[str]",
        ),
        "accepted",
        f"{RS_NETWORK} (users/identify/test2: errors ['minor error message']); {ERRORS_DOC} "
        "('\"errors\" : [<minor error message>]'); fault string_errors",
        _fault(string_errors_requests=1),
        note="Errors without an index name no object: the client cannot map them to rows.",
    ),
    ConformancePair(
        "track-2xx-key-echoed-in-minor-error",
        TRACK,
        "POST",
        "valid",
        {"events": [_event("u1"), {"name": "x", "time": WHEN}]},
        _json(
            201,
            {
                "message": "success",
                "events_processed": 1,
                "errors": [_error(f"{MISSING_ID} (api key KEY)", "events", 1)],
            },
            ("message", "events_processed"),
            errors="list[error]",
        ),
        "accepted",
        "issue 12 (Braze text echoing the key must be scrubbed); fault echo_key",
        _fault(echo_key_requests=1),
    ),
    ConformancePair(
        "track-connection-reset",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("reset", None),
        "uncertain",
        f"{VERDICTS} ('connection reset after sending'); fault reset",
        _fault(reset_requests=1),
        note="The sandbox resets before processing, but the request had been sent: the client cannot know.",
    ),
    ConformancePair(
        "track-processed-then-closed",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("closed", None),
        "uncertain",
        f"{VERDICTS}; fault drop_after_process",
        _fault(drop_after_process_requests=1),
    ),
    ConformancePair(
        "track-processed-then-read-timeout",
        TRACK,
        "POST",
        "valid",
        ONE_EVENT,
        Answer("timeout", None),
        "uncertain",
        f"{VERDICTS} ('read timeout'); fault stall_after_process",
        _fault(stall_after_process_requests=1, stall_seconds=2.0),
        note="Replayed with a 0.5 s read timeout.",
    ),
]

_TRIGGER_PAIRS = [
    ConformancePair(
        "trigger-sent",
        TRIGGER,
        "POST",
        "valid",
        {
            "campaign_id": "camp-1",
            "recipients": [{"external_user_id": "u1", "trigger_properties": {"offer": "A"}}],
        },
        _json(201, {"dispatch_id": "6a4f0c2e9b1d4e5f8a7b6c5d4e3f2a1b", "message": "success"}),
        "accepted",
        f"{TRIGGER_DOC} 'Response details' (one dispatch_id per request)",
        Setup(users=("u1",)),
    ),
    ConformancePair(
        "trigger-some-recipients-invalid",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": "u1"}, {"external_id": "u2"}]},
        _json(
            201,
            {
                "dispatch_id": "6a4f0c2e9b1d4e5f8a7b6c5d4e3f2a1b",
                "message": "success",
                "errors": [
                    _error(
                        "'external_user_id', 'user_alias', 'braze_id' or 'email' is required", "recipients", 1
                    )
                ],
            },
            ("message", "errors"),
            errors="list[error]",
        ),
        "accepted",
        f"{ERRORS_DOC} ('successful but has non-fatal errors'); "
        f"{DOCS} _docs/_api/objects_filters/recipient_object.md (identifiers)",
        Setup(users=("u1",)),
        note="No live answer recorded: the sandbox gives per-recipient errors in the /users/track shape.",
    ),
    ConformancePair(
        "trigger-no-valid-recipient-400",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": "bot-1"}]},
        _json(
            400,
            {
                "message": "No Recipients",
                "errors": [
                    _error("provided external_user_id is blacklisted and disallowed", "recipients", 0)
                ],
            },
            ("message", "errors"),
            errors="list[error]",
        ),
        "refused_items",
        f"{ERRORS_DOC} '400 No Recipients'",
        Setup(sandbox={"refuse_id_prefixes": ["bot-"]}),
    ),
    ConformancePair(
        "trigger-empty-recipients-400",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": []},
        _json(400, {"message": "No Recipients"}),
        "refused",
        f"{ERRORS_DOC} '400 No Recipients: There are no external IDs or segment IDs ... in the request'",
    ),
    ConformancePair(
        "trigger-more-than-50-recipients",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": f"u{i}"} for i in range(51)]},
        _json(400, {"message": "The max number of external_ids and aliases per request was exceeded"}),
        "setup_error",
        f"{ERRORS_DOC}; {TRIGGER_DOC} ('The recipients array may contain up to 50 objects')",
    ),
    ConformancePair(
        "trigger-unknown-campaign",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-404", "recipients": [{"external_user_id": "u1"}]},
        _json(400, {"message": "Invalid Campaign ID"}),
        "refused",
        f"{ERRORS_DOC} '400 Invalid Campaign ID'",
        Setup(sandbox={"campaigns": ("camp-1",)}),
    ),
    ConformancePair(
        "trigger-broadcast-with-recipients",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "broadcast": True, "recipients": [{"external_user_id": "u1"}]},
        _json(400, {"message": "'recipients' cannot be included when 'broadcast' is true"}, ()),
        "refused",
        f"{TRIGGER_DOC} ('If broadcast is set to true, a recipients list cannot be included')",
    ),
    ConformancePair(
        "trigger-lacking-permission-403",
        TRIGGER,
        "POST",
        "lacking_permission",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": "u1"}]},
        _json(403, {"message": "Forbidden: this API key lacks the 'campaigns.trigger.send' permission"}, ()),
        "setup_error",
        f"{ERRORS_DOC} '403 Forbidden'; {TRIGGER_DOC} 'Prerequisites'",
    ),
    ConformancePair(
        "trigger-key-echoed-in-dispatch-id",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": "u1"}]},
        _json(201, {"dispatch_id": "6a4f0c2e9b1d4e5f8a7b6c5d4e3f2a1b-KEY", "message": "success"}),
        "accepted",
        "issue 12 (a dispatch_id echoing the key must be scrubbed); fault echo_key",
        Setup(sandbox={"echo_key_requests": 1}, users=("u1",)),
    ),
    ConformancePair(
        "trigger-processed-then-closed",
        TRIGGER,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "recipients": [{"external_user_id": "u1"}]},
        Answer("closed", None),
        "uncertain",
        f"{VERDICTS}; {TRIGGER_DOC} (not idempotent: no resend); fault drop_after_process",
        Setup(sandbox={"drop_after_process_requests": 1}, users=("u1",)),
    ),
]

_OTHER_PAIRS = [
    ConformancePair(
        "send-id-created",
        SEND_ID,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "send_id": "nightly-2024-05-01"},
        _json(201, {"send_id": "nightly-2024-05-01", "message": "success"}, ("message", "send_id")),
        "accepted",
        f"{SEND_ID_DOC} 'Example success response'",
    ),
    ConformancePair(
        "send-id-daily-quota-429",
        SEND_ID,
        "POST",
        "valid",
        {"campaign_id": "camp-1"},
        _json(429, {"message": "Rate limit exceeded: at most 1 send identifiers can be created per day"}, ()),
        "rate_limited",
        f"{DOCS} _includes/rate_limits.md 'sends id create' (100 per day; headers carry the quota)",
        Setup(sandbox={"send_ids_per_day": 1}, prime=1),
    ),
    ConformancePair(
        "send-id-not-ascii-400",
        SEND_ID,
        "POST",
        "valid",
        {"campaign_id": "camp-1", "send_id": "envoi-été"},
        _json(400, {"message": "send_id must be ASCII"}, ()),
        "refused",
        f"{DOCS} _docs/_api/identifier_types.md (send identifier: ASCII, at most 64 characters)",
    ),
    ConformancePair(
        "send-id-invalid-key-401",
        SEND_ID,
        "POST",
        "invalid",
        {"campaign_id": "camp-1"},
        _json(401, {"message": "Invalid API Key"}),
        "setup_error",
        f"{RS_NETWORK} (invalid_scenario3); {ERRORS_DOC} '401 Unauthorized'",
    ),
    ConformancePair(
        "export-found-and-unknown",
        EXPORT,
        "POST",
        "valid",
        {"external_ids": ["u1", "ghost"], "fields_to_export": ["external_id", "custom_attributes"]},
        _json(
            200,
            {
                "users": [{"external_id": "u1", "custom_attributes": {"seeded": True}}],
                "invalid_user_ids": ["ghost"],
                "message": "success",
            },
            ("message", "invalid_user_ids"),
            users="list[dict]",
            invalid_user_ids="list[str]",
        ),
        "accepted",
        f"{EXPORT_DOC} 'Response'; {RS_NETWORK} (/users/export/ids, status 200)",
        Setup(users=("u1",)),
    ),
    ConformancePair(
        "export-more-than-50-ids-400",
        EXPORT,
        "POST",
        "valid",
        {"external_ids": [f"u{i}" for i in range(51)]},
        _json(400, {"message": "The max number of ids per request was exceeded"}),
        "refused",
        f"{ERRORS_DOC} '400 The max number of ids per request was exceeded'; {EXPORT_DOC} (up to 50)",
    ),
    ConformancePair(
        "export-lacking-permission-403",
        EXPORT,
        "POST",
        "lacking_permission",
        {"external_ids": ["u1"]},
        _json(403, {"message": "Forbidden: this API key lacks the 'users.export.ids' permission"}, ()),
        "setup_error",
        f"{ERRORS_DOC} '403 Forbidden'; {EXPORT_DOC}",
        note="The hook's test_connection falls back to /campaigns/list on this 403.",
    ),
    ConformancePair(
        "export-rate-limited-429",
        EXPORT,
        "POST",
        "valid",
        {"external_ids": ["u1"]},
        _json(429, {"message": "Rate limit exceeded"}, ()),
        "rate_limited",
        f"{LIMITS_DOC} (/users/export/ids: 250 requests per minute since 2024-08-22)",
        Setup(sandbox={"export_rate": "1/600"}, prime=1),
    ),
    ConformancePair(
        "campaigns-list",
        LIST,
        "GET",
        "valid",
        {"page": "0"},
        _json(
            200,
            {
                "campaigns": [{"id": "camp-1", "name": "camp-1", "is_api_campaign": True, "tags": []}],
                "message": "success",
            },
            ("message",),
            campaigns="list[dict]",
        ),
        "accepted",
        f"{LIST_DOC} 'Campaign List Endpoint API Response'",
        Setup(sandbox={"campaigns": ("camp-1",)}),
    ),
    ConformancePair(
        "campaigns-list-lacking-permission-403",
        LIST,
        "GET",
        "lacking_permission",
        {},
        _json(403, {"message": "Forbidden: this API key lacks the 'campaigns.list' permission"}, ()),
        "setup_error",
        f"{ERRORS_DOC} '403 Forbidden'; {LIST_DOC}",
    ),
    ConformancePair(
        "campaigns-list-invalid-key-401",
        LIST,
        "GET",
        "invalid",
        {},
        _json(401, {"message": "Invalid API Key"}),
        "setup_error",
        f"{RS_NETWORK} (invalid_scenario3); {ERRORS_DOC} '401 Unauthorized'",
    ),
]

#: Every pair, ``/users/track`` first.
PAIRS: tuple[ConformancePair, ...] = (*_TRACK_PAIRS, *_TRIGGER_PAIRS, *_OTHER_PAIRS)
