"""Authentication, permissions and request-level errors: nothing processed, nothing counted."""

from __future__ import annotations

import socket

import pytest
import requests

from airflow_provider_aiq_braze.sandbox.pytest_plugin import SANDBOX_API_KEY
from tests.sandbox.conftest import Api, event


def _nothing_processed(api: Api) -> None:
    stats = api.sandbox.state.stats()
    assert stats["data_points"] == 0
    assert stats["profiles"] == 0
    assert stats["events"] == 0
    assert stats["objects_processed"] == {"attributes": 0, "events": 0, "purchases": 0, "recipients": 0}


def test_missing_authorization_is_401(braze_sandbox):
    response = Api(braze_sandbox, key=None).track(events=[event()])
    assert response.status_code == 401
    # the body live Braze answers (RudderStack's recorded fixture), not the old sandbox's hints
    assert response.json() == {"message": "Invalid API Key"}
    assert braze_sandbox.state.profile("u1") is None


def test_wrong_key_is_401_and_never_echoed(braze_sandbox):
    wrong = "sk-WRONG-KEY-do-not-echo-1234"
    response = Api(braze_sandbox, key=wrong).track(events=[event()])
    assert response.status_code == 401
    assert wrong not in response.text
    assert SANDBOX_API_KEY not in response.text
    assert wrong not in str(response.headers)


def test_quoted_key_is_401_like_any_unknown_key(braze_sandbox):
    # digest: "401: bad key, wrong instance, or key sent in quotes"; Braze gives no hint.
    response = Api(braze_sandbox, key=f'"{SANDBOX_API_KEY}"').track(events=[event()])
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API Key"}
    assert SANDBOX_API_KEY not in response.text


@pytest.mark.parametrize(
    ("path", "method", "body", "permission"),
    [
        ("/users/track", "post", {"events": [event()]}, "users.track"),
        (
            "/campaigns/trigger/send",
            "post",
            {"campaign_id": "c", "broadcast": True},
            "campaigns.trigger.send",
        ),
        ("/sends/id/create", "post", {"campaign_id": "c"}, "sends.id.create"),
        ("/users/export/ids", "post", {"external_ids": ["u1"]}, "users.export.ids"),
        ("/campaigns/list", "get", None, "campaigns.list"),
    ],
)
def test_missing_permission_is_403(braze_sandbox_factory, path, method, body, permission):
    others = [
        p
        for p in (
            "users.track",
            "campaigns.trigger.send",
            "sends.id.create",
            "users.export.ids",
            "campaigns.list",
        )
        if p != permission
    ]
    sandbox = braze_sandbox_factory(permissions=others)
    api = Api(sandbox)
    response = api.post(path, body) if method == "post" else api.get(path)
    assert response.status_code == 403
    assert permission in response.json()["message"]
    allowed = braze_sandbox_factory(permissions=[permission])
    api = Api(allowed)
    response = api.post(path, body) if method == "post" else api.get(path)
    assert response.status_code in (200, 201), response.text


def test_malformed_json_is_400(api):
    response = api.session.post(
        api.base + "/users/track", data=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid JSON in request body"
    _nothing_processed(api)


def test_body_that_is_not_an_object_is_400(api):
    response = api.post("/users/track", [event()])
    assert response.status_code == 400
    assert "JSON object" in response.json()["message"]
    _nothing_processed(api)


def test_wrong_content_type_is_400(api):
    response = api.session.post(
        api.base + "/users/track", data=b'{"events": []}', headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert "Content-Type" in response.json()["message"]


def test_nan_is_not_json(api):
    response = api.session.post(
        api.base + "/users/track",
        data=b'{"events": [{"external_id": "u1", "name": "x", "time": "2024-05-01T12:00:00Z", '
        b'"properties": {"score": NaN}}]}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Invalid JSON in request body"
    _nothing_processed(api)


def test_array_of_wrong_type_is_400(api):
    response = api.track(events={"name": "x"})
    assert response.status_code == 400
    assert response.json()["message"] == "'events' must be an array"


@pytest.mark.parametrize("arrays", [{}, {"events": []}, {"attributes": [], "purchases": []}])
def test_request_without_objects_is_400_no_valid_data(api, arrays):
    response = api.track(**arrays)
    assert response.status_code == 400
    assert response.json() == {
        "message": "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
    }
    _nothing_processed(api)


@pytest.mark.parametrize(
    ("rule", "attributes", "events", "expected"),
    [
        ("per-array", 75, 75, 201),
        ("per-array", 76, 0, 400),
        ("combined-75", 40, 35, 201),
        ("combined-75", 40, 36, 400),
        ("combined-50", 25, 25, 201),
        ("combined-50", 25, 26, 400),
    ],
)
def test_object_count_rule(braze_sandbox_factory, rule, attributes, events, expected):
    sandbox = braze_sandbox_factory(object_count_rule=rule)
    api = Api(sandbox)
    response = api.track(
        attributes=[{"external_id": f"a{i}", "x": 1} for i in range(attributes)],
        events=[event(f"e{i}") for i in range(events)],
    )
    assert response.status_code == expected, response.text
    if expected == 400:
        assert response.json() == {"message": "Max Input Length Exceeded"}
        _nothing_processed(api)
    else:
        assert response.json()["attributes_processed"] == attributes


def test_default_object_count_rule_is_combined_75(braze_sandbox):
    assert braze_sandbox.config.object_count_rule.value == "combined-75"


def test_body_over_4_mb_is_413_without_processing(api):
    big = b'{"events": [], "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = api.session.post(
        api.base + "/users/track", data=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "Payload Too Large" in response.json()["message"]
    _nothing_processed(api)
    # the sandbox is still fine afterwards
    assert api.track(events=[event()]).status_code == 201


def test_chunked_body_is_411(api):
    def chunks():
        yield b'{"events": []}'

    response = api.session.post(
        api.base + "/users/track", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 411


def test_missing_content_length_is_411(braze_sandbox):
    with socket.create_connection(("127.0.0.1", braze_sandbox.port), timeout=5) as sock:
        sock.sendall(
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + SANDBOX_API_KEY.encode() + b"\r\n\r\n"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 411 ")


def test_more_than_50_recipients_is_400(api):
    recipients = [{"external_user_id": f"u{i}"} for i in range(51)]
    response = api.post("/campaigns/trigger/send", {"campaign_id": "c1", "recipients": recipients})
    assert response.status_code == 400
    assert response.json()["message"] == "The max number of external_ids and aliases per request was exceeded"
    assert api.sandbox.state.dispatches() == []


def test_missing_campaign_id_is_400_invalid_campaign_id(api):
    # errors.md: "400 Invalid Campaign ID" (the old sandbox said "Missing campaign_id")
    response = api.post("/campaigns/trigger/send", {"recipients": [{"external_user_id": "u1"}]})
    assert response.status_code == 400
    assert response.json() == {"message": "Invalid Campaign ID"}
    assert api.sandbox.state.dispatches() == []


def test_unknown_campaign_is_400_when_the_workspace_campaigns_are_given(braze_sandbox_factory):
    api = Api(braze_sandbox_factory(campaigns=("camp-1",)))
    known = api.post("/campaigns/trigger/send", {"campaign_id": "camp-1", "broadcast": True})
    unknown = api.post("/campaigns/trigger/send", {"campaign_id": "camp-2", "broadcast": True})
    assert (known.status_code, unknown.status_code) == (201, 400)
    assert unknown.json() == {"message": "Invalid Campaign ID"}
    listed = api.get("/campaigns/list").json()
    assert listed == {
        "campaigns": [{"id": "camp-1", "name": "camp-1", "is_api_campaign": True, "tags": []}],
        "message": "success",
    }
    assert api.get("/campaigns/list", params={"page": 1}).json()["campaigns"] == []
    assert api.get("/campaigns/list", params={"page": "x"}).status_code == 400


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_on_post_endpoint_is_405(api, method):
    response = api.session.request(method, api.base + "/users/track", timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["message"].startswith("Method Not Allowed")


def test_head_on_post_endpoint_is_405_without_body(api):
    response = api.session.head(api.base + "/users/track", timeout=5)
    assert response.status_code == 405
    assert response.content == b""
    # the connection is still usable after a HEAD
    assert api.track(events=[event()]).status_code == 201


def test_unknown_path_is_404_json(api):
    response = api.post("/users/tracks", {"events": []})
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert "Not Found" in response.json()["message"]


def test_post_on_campaigns_list_is_405(api):
    assert api.post("/campaigns/list", {}).status_code == 405


def test_request_errors_are_counted_per_status(api):
    api.post("/users/track", [1])
    api.track(events=[event()])
    assert api.sandbox.state.requests("/users/track") == {"400": 1, "201": 1}


def test_requests_library_never_sees_a_server_error_for_garbage(api):
    response = requests.post(
        api.base + "/users/track",
        data=b"\xff\xfe\x00garbage",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {SANDBOX_API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert api.sandbox.state.counter("internal_errors") == 0
