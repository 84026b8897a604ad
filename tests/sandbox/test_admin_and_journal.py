"""The /_sandbox/ admin API, the in-process state handle and the JSONL journal."""

from __future__ import annotations

import json
import socket

import requests

from airflow_provider_aiq_braze.sandbox.pytest_plugin import SANDBOX_API_KEY
from tests.sandbox.conftest import Api, event


def test_health(api):
    assert api.admin("health") == {"status": "ok"}


def test_profiles_events_dispatches_stats(api):
    api.track(attributes=[{"external_id": "u1", "AIQ_1_1": True}, {"external_id": "u2", "AIQ_1_1": False}])
    api.track(events=[event("u1", name="opened")])
    api.post("/campaigns/trigger/send", {"campaign_id": "c", "recipients": [{"external_user_id": "u1"}]})

    profiles = api.admin("profiles")["profiles"]
    assert sorted(p["external_id"] for p in profiles) == ["u1", "u2"]
    (one,) = api.admin("profiles?external_id=u2")["profiles"]
    assert one["attributes"] == {"AIQ_1_1": False}
    assert api.admin("profiles?external_id=ghost")["profiles"] == []
    assert [e["name"] for e in api.admin("events")["events"]] == ["opened"]
    assert api.admin("events?name=other")["events"] == []
    (dispatch,) = api.admin("dispatches")["dispatches"]
    assert dispatch["campaign_id"] == "c"
    assert [m["external_id"] for m in api.admin("messages")["messages"]] == ["u1"]

    stats = api.admin("stats")
    assert stats["data_points"] == 2
    assert stats["requests"]["/users/track"] == {"201": 2}
    assert stats["requests"]["/campaigns/trigger/send"] == {"201": 1}
    assert stats["objects_processed"] == {"attributes": 2, "events": 1, "purchases": 0, "recipients": 1}
    assert stats == api.sandbox.state.stats()


def test_in_process_handle_matches(api):
    api.track(attributes=[{"external_id": "u1", "a": 1}])
    state = api.sandbox.state
    assert state.profile("u1")["attributes"] == {"a": 1}
    assert state.profiles() == api.admin("profiles")["profiles"]
    assert state.data_points == 1
    assert state.requests() == {"/users/track": {"201": 1}}
    assert state.requests("/users/track") == {"201": 1}


def test_reset(api):
    api.track(attributes=[{"external_id": "u1", "a": 1}])
    assert api.admin("reset", {}) == {"message": "reset"}
    assert api.sandbox.state.profiles() == []
    assert api.sandbox.state.data_points == 0
    assert api.sandbox.state.requests() == {}


def test_admin_needs_no_key_but_is_strict_about_paths_and_methods(api):
    assert requests.get(api.base + "/_sandbox/nope", timeout=5).status_code == 404
    assert requests.post(api.base + "/_sandbox/stats", json={}, timeout=5).status_code == 405
    assert requests.get(api.base + "/_sandbox/reset", timeout=5).status_code == 405
    # admin calls are not counted as Braze requests
    assert api.sandbox.state.requests() == {}


def test_admin_refuses_non_loopback_clients(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(host="0.0.0.0")  # noqa: S104 - reachable from this host's own address

    address = None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent; it only picks the outgoing address
            address = probe.getsockname()[0]
    except OSError:
        address = None
    if not address or address.startswith("127."):
        return  # no non-loopback address on this machine
    response = requests.get(f"http://{address}:{sandbox.port}/_sandbox/stats", timeout=5)
    assert response.status_code == 403


def test_journal_records_accepted_requests_only(braze_sandbox_factory, tmp_path):
    journal = tmp_path / "audit" / "journal.jsonl"
    sandbox = braze_sandbox_factory(journal=journal)
    api = Api(sandbox)
    api.track(events=[event("u1")])
    api.post("/users/track", [1])  # rejected: not journaled
    Api(sandbox, key=None).track(events=[event("u1")])  # unauthorised: not journaled
    dispatch_id = api.post(
        "/campaigns/trigger/send", {"campaign_id": "c", "send_id": "s1", "broadcast": True}
    ).json()["dispatch_id"]
    api.track(events=[{"name": "no identifier", "time": event()["time"]}])  # 400: not journaled
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(line["endpoint"], line["status"]) for line in lines] == [
        ("/users/track", 201),
        ("/campaigns/trigger/send", 201),
    ]
    assert lines[0]["body"] == {"events": [event("u1")]}
    assert lines[1]["dispatch_id"] == dispatch_id
    assert lines[1]["send_id"] == "s1"
    assert all(line["time"].endswith("+00:00") for line in lines)
    assert SANDBOX_API_KEY not in journal.read_text()


def test_journal_survives_restart_by_appending(braze_sandbox_factory, tmp_path):
    journal = tmp_path / "journal.jsonl"
    for _ in range(2):
        sandbox = braze_sandbox_factory(journal=journal)
        Api(sandbox).track(events=[event("u1")])
        sandbox.stop()
    assert len(journal.read_text().splitlines()) == 2
