"""Hostile answers on demand: redirects, 413, 422, 504, broken 2xx bodies, string errors, key echoes."""

from __future__ import annotations

import http.client
import json

import pytest
import requests

from airflow_provider_aiq_braze.sandbox.pytest_plugin import SANDBOX_API_KEY
from tests.sandbox.conftest import WHEN, Api, event

HEADERS = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "Content-Type": "application/json"}


def _raw_post(sandbox, path: str, body: dict) -> tuple[int, dict[str, str], bytes]:
    """POST with http.client, reading what arrives even when it is cut short."""
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    conn.request("POST", path, json.dumps(body), HEADERS)
    response = conn.getresponse()
    try:
        data = response.read()
    except http.client.IncompleteRead as cut:
        data = cut.partial
    headers = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    return response.status, headers, data


@pytest.mark.parametrize(
    ("fault", "status", "message"),
    [("payload_too_large", 413, "Payload Too Large"), ("unprocessable", 422, "Unprocessable Entity")],
)
def test_413_and_422_process_nothing(braze_sandbox_factory, fault, status, message):
    sandbox = braze_sandbox_factory(**{f"{fault}_requests": 1})
    api = Api(sandbox)
    response = api.track(events=[event()])
    assert (response.status_code, response.json()) == (status, {"message": message})
    assert sandbox.state.events() == []
    assert api.track(events=[event()]).status_code == 201
    assert sandbox.state.stats()["faults"][fault] == 1


@pytest.mark.parametrize("redirect_status", [301, 307])
def test_redirect_processes_nothing_and_following_it_lands_on_404(braze_sandbox_factory, redirect_status):
    sandbox = braze_sandbox_factory(redirect_requests=1, redirect_status=redirect_status)
    api = Api(sandbox)
    response = api.session.post(api.base + "/users/track", json={"events": [event()]}, allow_redirects=False)
    assert response.status_code == redirect_status
    assert response.headers["Location"] == "/_moved/users/track"
    assert sandbox.state.events() == []
    sandbox.set_faults(redirect_requests=1)
    followed = api.track(events=[event()])
    assert followed.status_code == 404 and followed.history[0].status_code == redirect_status
    assert sandbox.state.events() == []


def test_504_after_processing_is_an_html_page(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(gateway_timeout_requests=1)
    response = Api(sandbox).track(events=[event()])
    assert response.status_code == 504
    assert response.headers["Content-Type"] == "text/html"
    assert b"504 Gateway Time-out" in response.content
    assert len(sandbox.state.events()) == 1  # the gateway gave up after Braze processed it


def test_2xx_body_shorter_than_its_content_length(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(truncated_body_requests=1)
    status, headers, data = _raw_post(sandbox, "/users/track", {"events": [event()]})
    assert status == 201
    full = json.dumps({"message": "success", "events_processed": 1}, separators=(",", ":")).encode()
    assert int(headers["content-length"]) == len(full)
    assert data == full[: len(full) // 2]
    assert len(sandbox.state.events()) == 1
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        sandbox.set_faults(truncated_body_requests=1)
        Api(sandbox).track(events=[event()])
    assert len(sandbox.state.events()) == 2


@pytest.mark.parametrize(
    ("fault", "content_type", "body"),
    [
        ("empty_body", "application/json", b""),
        ("non_json_body", "text/html", b"<html><body>OK</body></html>"),
    ],
)
def test_2xx_with_an_empty_or_non_json_body(braze_sandbox_factory, fault, content_type, body):
    sandbox = braze_sandbox_factory(**{f"{fault}_requests": 1})
    response = Api(sandbox).track(events=[event()])
    assert (response.status_code, response.headers["Content-Type"], response.content) == (
        201,
        content_type,
        body,
    )
    assert len(sandbox.state.events()) == 1


def test_string_errors(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(string_errors_requests=2)
    api = Api(sandbox)
    with_errors = api.track(events=[event(), {"name": "x", "time": WHEN}])
    assert with_errors.json() == {
        "message": "success",
        "events_processed": 1,
        "errors": ["'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"],
    }
    # Without per-item errors: the string RudderStack's fixtures recorded.
    assert api.track(events=[event()]).json()["errors"] == ["minor error message"]
    assert len(sandbox.state.events()) == 2


def test_echo_key_in_minor_errors_and_dispatch_id(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(echo_key_requests=3)
    api = Api(sandbox)
    api.track(attributes=[{"external_id": "u1", "x": 1}])  # no error to echo into
    minor = api.track(events=[event(), {"name": "x", "time": WHEN}]).json()["errors"]
    assert minor[0]["type"].endswith(f"(api key {SANDBOX_API_KEY})")
    dispatch = api.post(
        "/campaigns/trigger/send", {"campaign_id": "c", "recipients": [{"external_user_id": "u1"}]}
    )
    assert dispatch.json()["dispatch_id"].endswith(SANDBOX_API_KEY)
    assert (
        api.track(events=[event(), {"name": "x", "time": WHEN}])
        .json()["errors"][0]["type"]
        .endswith("required")
    )


def test_echo_key_applies_to_the_400_of_a_refused_request(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(echo_key_requests=1, refuse_ids=["u1"])
    response = Api(sandbox).track(events=[event("u1")])
    assert response.status_code == 400
    assert SANDBOX_API_KEY in response.json()["errors"][0]["type"]


def test_hostile_answers_through_the_admin_api_and_rates(api):
    settings = api.admin("faults", {"empty_body_requests": 1, "seed": 3})["faults"]
    assert settings["empty_body_requests"] == 1
    assert api.track(events=[event()]).content == b""
    api.admin("faults", {"clear": True, "unprocessable_rate": 1.0})
    assert api.track(events=[event()]).status_code == 422
    api.admin("faults", {"clear": True})
    assert api.track(events=[event()]).status_code == 201


def test_hostile_rates_are_reproducible_and_leave_other_fault_patterns_alone(braze_sandbox_factory):
    def statuses(**settings):
        sandbox = braze_sandbox_factory(seed=1234, **settings)
        api = Api(sandbox)
        out = []
        for i in range(30):
            try:
                out.append(api.track(events=[event(f"u{i}")]).status_code)
            except requests.ConnectionError:
                out.append("conn")
        return out

    classic = statuses(error_rate=0.4, reset_rate=0.2)
    both = statuses(error_rate=0.4, reset_rate=0.2, unprocessable_rate=0.3)
    assert both == statuses(error_rate=0.4, reset_rate=0.2, unprocessable_rate=0.3)
    assert 422 in both
    # the 5xx and resets fall where they fell without hostile answers
    assert [s for s in both if s != 422] != [] and all(
        b == c for b, c in zip(both, classic, strict=True) if c in (500, 503, "conn")
    )


@pytest.mark.parametrize(
    "settings",
    [{"redirect_status": 200}, {"empty_body_rate": 2.0}, {"echo_key_requests": -1}, {"bogus_requests": 1}],
)
def test_invalid_hostile_settings_are_refused(braze_sandbox, settings):
    with pytest.raises(ValueError):
        braze_sandbox.set_faults(**settings)
