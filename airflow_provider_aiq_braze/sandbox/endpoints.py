"""The Braze endpoints the sandbox serves: validate, apply to the state, and build the answer.

Each handler takes the sandbox and the decoded request and returns an :class:`Answer`; request-level
problems raise :class:`~airflow_provider_aiq_braze.sandbox.validation.RequestError`. The HTTP layer
(:mod:`~airflow_provider_aiq_braze.sandbox.server`) does authentication, rate limits and faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_aiq_braze.sandbox import facts
from airflow_provider_aiq_braze.sandbox.ratelimit import RateState
from airflow_provider_aiq_braze.sandbox.state import SendIdQuotaExceeded
from airflow_provider_aiq_braze.sandbox.validation import (
    RequestError,
    validate_campaign_and_send_id,
    validate_export,
    validate_track,
    validate_trigger,
)

if TYPE_CHECKING:
    from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox


@dataclass
class Answer:
    """What an endpoint answers.

    :param status: the HTTP status.
    :param body: the JSON body.
    :param journal: extra fields of the journal line (``dispatch_id``, ``send_id``).
    :param rate: the ``X-RateLimit-*`` state to send instead of the endpoint group's.
    """

    status: int
    body: dict[str, Any]
    journal: dict[str, Any] = field(default_factory=dict)
    rate: RateState | None = None


class QuotaExceeded(RequestError):
    """A daily quota is used up: ``429`` with the quota in the ``X-RateLimit-*`` headers.

    :param message: Braze's ``message``.
    :param rate: the quota's state.
    """

    def __init__(self, message: str, rate: RateState) -> None:
        super().__init__(429, message)
        self.rate = rate


@dataclass(frozen=True)
class Endpoint:
    """One served endpoint.

    :param method: its HTTP method.
    :param permission: the permission the API key needs.
    :param handler: ``handler(sandbox, body, query) -> Answer``.
    """

    method: str
    permission: str
    handler: Callable[[BrazeSandbox, dict[str, Any], dict[str, list[str]]], Answer]


def users_track(sandbox: BrazeSandbox, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
    """``POST /users/track``: ``201 {"message": "success", "<array>_processed": n, "errors": [...]}``
    (post_user_track.md "Responses"; the status and the keys as recorded from live Braze), or 400.

    :param sandbox: the sandbox.
    :param body: the decoded request body.
    :param query: the query string (unused).
    """
    config = sandbox.config
    valid, errors, processed = validate_track(
        body,
        rule=config.object_count_rule,
        properties_max_bytes=config.properties_max_bytes,
        refusals=sandbox.refusals,
    )
    sandbox.state.apply_track(valid, processed, len(errors))
    answer: dict[str, Any] = {"message": "success"}
    for array, count in processed.items():
        answer[f"{array}_processed"] = count
    if errors:
        answer["errors"] = errors
    return Answer(201, answer)


def trigger_send(sandbox: BrazeSandbox, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
    """``POST /campaigns/trigger/send``: ``201 {"dispatch_id", "message": "success"}``, with
    ``errors`` for the invalid recipients (post_send_triggered_campaigns.md "Response details";
    errors.md "non-fatal errors").

    :param sandbox: the sandbox.
    :param body: the decoded request body.
    :param query: the query string (unused).
    """
    recipients, errors, fields = validate_trigger(
        body,
        properties_max_bytes=sandbox.config.properties_max_bytes,
        refusals=sandbox.refusals,
        campaigns=sandbox.config.campaigns,
    )
    record = sandbox.state.apply_trigger(recipients, fields, len(errors))
    answer: dict[str, Any] = {"dispatch_id": record["dispatch_id"], "message": "success"}
    if errors:
        answer["errors"] = errors
    return Answer(201, answer, {"dispatch_id": record["dispatch_id"], "send_id": fields["send_id"]})


def send_id_create(sandbox: BrazeSandbox, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
    """``POST /sends/id/create``: ``201 {"message": "success", "send_id"}`` (post_create_send_ids.md).

    At most :data:`facts.SEND_IDS_PER_DAY` creations per UTC day ("Each send_id and campaign_id
    combination that you create will count towards your daily limit", rate_limits.md); beyond it
    ``429`` with ``X-RateLimit-Reset`` at the next UTC midnight (sandbox choice: a quota that refills
    is a rate limit). "The response headers for any valid request include the current rate limit
    status" (same page): the quota is in this endpoint's ``X-RateLimit-*`` headers.

    :param sandbox: the sandbox.
    :param body: the decoded request body.
    :param query: the query string (unused).
    """
    campaign_id, send_id = validate_campaign_and_send_id(body, sandbox.config.campaigns)
    per_day = sandbox.config.send_ids_per_day
    midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    reset = int((midnight + timedelta(days=1)).timestamp())
    try:
        created, remaining = sandbox.state.create_send_id(campaign_id, send_id, per_day)
    except SendIdQuotaExceeded:
        raise QuotaExceeded(
            f"{facts.RATE_LIMITED}: at most {per_day} send identifiers can be created per day",
            RateState(per_day, 0, reset, allowed=False),
        ) from None
    return Answer(
        201,
        {"send_id": created, "message": "success"},
        {"send_id": created},
        RateState(per_day, remaining, reset),
    )


def export_ids(sandbox: BrazeSandbox, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
    """``POST /users/export/ids``: ``{"users": [...], "invalid_user_ids": [...], "message":
    "success"}`` (post_users_identifier.md "Response"). Status 200, as recorded
    (rudder-transformer:test/integrations/destinations/braze/network.ts, ``/users/export/ids``).
    Read-only: no profile created, no data point counted.

    :param sandbox: the sandbox.
    :param body: the decoded request body.
    :param query: the query string (unused).
    """
    identities, raw_ids, fields = validate_export(body)
    return Answer(200, sandbox.state.export(identities, raw_ids, fields))


def campaigns_list(sandbox: BrazeSandbox, body: dict[str, Any], query: dict[str, list[str]]) -> Answer:
    """``GET /campaigns/list?page=N``: ``200 {"message": "success", "campaigns": [{"id", "name",
    "is_api_campaign", "tags"}]}``, 100 per page (get_campaigns.md). The campaigns are those of
    ``SandboxConfig.campaigns`` (none by default).

    :param sandbox: the sandbox.
    :param body: unused (GET).
    :param query: the query string: ``page`` (default 0).
    """
    pages = query.get("page", ["0"])
    if not pages[0].isdigit():
        raise RequestError(400, "'page' must be a non-negative integer")
    start = int(pages[0]) * facts.CAMPAIGNS_PER_PAGE
    campaigns = [
        {"id": campaign, "name": campaign, "is_api_campaign": True, "tags": []}
        for campaign in sandbox.config.campaigns[start : start + facts.CAMPAIGNS_PER_PAGE]
    ]
    return Answer(200, {"campaigns": campaigns, "message": "success"})


#: The served endpoints by path; permissions from :data:`facts.ENDPOINT_PERMISSIONS`.
ENDPOINTS: dict[str, Endpoint] = {
    "/users/track": Endpoint("POST", facts.ENDPOINT_PERMISSIONS["/users/track"], users_track),
    "/campaigns/trigger/send": Endpoint(
        "POST", facts.ENDPOINT_PERMISSIONS["/campaigns/trigger/send"], trigger_send
    ),
    "/sends/id/create": Endpoint("POST", facts.ENDPOINT_PERMISSIONS["/sends/id/create"], send_id_create),
    "/users/export/ids": Endpoint("POST", facts.ENDPOINT_PERMISSIONS["/users/export/ids"], export_ids),
    "/campaigns/list": Endpoint("GET", facts.ENDPOINT_PERMISSIONS["/campaigns/list"], campaigns_list),
}
