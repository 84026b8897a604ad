"""Refusals on demand: identifiers Braze "does not accept", answered as live Braze answers."""

from __future__ import annotations

import pytest
import requests

from tests.sandbox.conftest import WHEN, Api, event

NO_VALID_DATA = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


def _refused(kind: str = "external_id") -> str:
    return f"provided {kind} is blacklisted and disallowed"


def test_refused_ids_are_minor_errors_and_the_rest_is_processed(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_ids=["u2"], refuse_id_prefixes=["bot-"])
    api = Api(sandbox)
    response = api.track(events=[event("u1"), event("u2"), event("bot-7"), event("u3")])
    assert response.status_code == 201
    assert response.json() == {
        "message": "success",
        "events_processed": 2,
        "errors": [
            {"type": _refused(), "input_array": "events", "index": 1},
            {"type": _refused(), "input_array": "events", "index": 2},
        ],
    }
    assert [e["external_id"] for e in sandbox.state.events()] == ["u1", "u3"]
    assert sandbox.state.profile("u2") is None and sandbox.state.profile("bot-7") is None


def test_a_request_with_only_refused_objects_is_400(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_id_prefixes=["bot-"])
    response = Api(sandbox).track(events=[event("bot-1"), event("bot-2")])
    assert response.status_code == 400
    assert response.json() == {
        "message": NO_VALID_DATA,
        "errors": [
            {"type": _refused(), "input_array": "events", "index": 0},
            {"type": _refused(), "input_array": "events", "index": 1},
        ],
    }
    assert sandbox.state.stats()["objects_processed"]["events"] == 0
    assert sandbox.state.requests("/users/track") == {"400": 1}


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"user_alias": {"alias_name": "bot-9", "alias_label": "aiq"}, "x": 1}, "user_alias"),
        ({"email": "bot-9@example.com", "x": 1}, "email"),
        ({"braze_id": "bot-9", "x": 1}, "braze_id"),
    ],
)
def test_every_identifier_kind_can_be_refused(braze_sandbox_factory, obj, kind):
    sandbox = braze_sandbox_factory(refuse_id_prefixes=["bot-"])
    response = Api(sandbox).track(attributes=[obj, {"external_id": "u1", "x": 1}])
    assert response.json()["errors"] == [{"type": _refused(kind), "input_array": "attributes", "index": 0}]


def test_an_email_written_as_an_attribute_is_not_an_identifier(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_ids=["bot@example.com"])
    response = Api(sandbox).track(attributes=[{"external_id": "u1", "email": "bot@example.com"}])
    assert response.status_code == 201
    assert "errors" not in response.json()


def test_refused_recipients(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_ids=["u2"])
    api = Api(sandbox)
    api.track(attributes=[{"external_id": u, "x": 1} for u in ("u1", "u3")])
    response = api.post(
        "/campaigns/trigger/send",
        {"campaign_id": "c", "recipients": [{"external_user_id": u} for u in ("u1", "u2", "u3")]},
    )
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"type": _refused("external_user_id"), "input_array": "recipients", "index": 1}
    ]
    assert [m["external_id"] for m in sandbox.state.messages()] == ["u1", "u3"]
    only_refused = api.post(
        "/campaigns/trigger/send", {"campaign_id": "c", "recipients": [{"external_user_id": "u2"}]}
    )
    assert only_refused.status_code == 400
    assert only_refused.json()["message"] == "No Recipients"


def test_refusals_at_runtime_in_process_and_through_the_admin_api(api):
    assert api.admin("refusals") == {"refusals": {"ids": [], "prefixes": []}}
    assert api.sandbox.set_refusals(ids=["u1"]).as_dict() == {"ids": ["u1"], "prefixes": []}
    assert api.admin("refusals", {"prefixes": ["bot-"]}) == {
        "refusals": {"ids": ["u1"], "prefixes": ["bot-"]}
    }
    response = api.track(events=[event("u1"), event("bot-1"), event("u2")])
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]
    assert api.admin("refusals", {"clear": True, "ids": ["u2"]}) == {
        "refusals": {"ids": ["u2"], "prefixes": []}
    }
    assert [e["index"] for e in api.track(events=[event("u1"), event("u2")]).json()["errors"]] == [1]
    assert api.admin("refusals", {"clear": True}) == {"refusals": {"ids": [], "prefixes": []}}


@pytest.mark.parametrize(
    "body",
    [{"ids": "u1"}, {"ids": [1]}, {"prefixes": [""]}, {"idz": ["u1"]}, {"clear": "yes"}],
)
def test_invalid_refusal_settings_are_400(api, body):
    response = requests.post(f"{api.base}/_sandbox/refusals", json=body, timeout=10)
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid refusals settings")
    assert api.admin("refusals") == {"refusals": {"ids": [], "prefixes": []}}


def test_reset_restores_the_start_up_refusals(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_ids=["u1"])
    sandbox.set_refusals(ids=["u2"])
    sandbox.reset()
    assert sandbox.refusals.as_dict() == {"ids": ["u1"], "prefixes": []}


def test_the_refusal_is_checked_with_the_identifier_before_the_other_fields(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(refuse_ids=["u1"])
    response = Api(sandbox).track(
        events=[
            {"external_id": "u1", "time": WHEN},
            {"external_id": "u1", "braze_id": "b", "name": "x", "time": WHEN},
        ]
    )
    assert [e["type"] for e in response.json()["errors"]] == [
        _refused(),
        "only one of 'external_id', 'braze_id' can be provided",
    ]
