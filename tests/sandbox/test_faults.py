"""Fault injection: seeded, reproducible, at start-up and at runtime, per endpoint."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.sandbox.conftest import Api, event


def _statuses(api: Api, n: int) -> list[int | str]:
    out: list[int | str] = []
    for i in range(n):
        try:
            out.append(api.track(events=[event(f"u{i}")]).status_code)
        except requests.ConnectionError:
            out.append("conn")
    return out


def test_same_seed_same_fault_pattern(braze_sandbox_factory):
    patterns = []
    for _ in range(2):
        sandbox = braze_sandbox_factory(seed=1234, error_rate=0.4, reset_rate=0.2)
        patterns.append(_statuses(Api(sandbox), 30))
    assert patterns[0] == patterns[1]
    assert {201, "conn"} <= set(patterns[0])
    assert {500, 503} & set(patterns[0])
    other = braze_sandbox_factory(seed=99, error_rate=0.4, reset_rate=0.2)
    assert _statuses(Api(other), 30) != patterns[0]


def test_5xx_processes_nothing(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(error_requests=2, seed=1)
    api = Api(sandbox)
    first, second = api.track(events=[event()]), api.track(events=[event()])
    assert {first.status_code, second.status_code} <= {500, 503}
    assert sandbox.state.events() == []
    assert api.track(events=[event()]).status_code == 201
    assert sandbox.state.stats()["faults"]["error"] == 2


def test_rate_limit_storm(api):
    api.sandbox.set_faults(rate_limit_storm_requests=2)
    before = time.time()
    storm = [api.track(events=[event()]) for _ in range(2)]
    assert [r.status_code for r in storm] == [429, 429]
    for response in storm:
        reset = int(response.headers["X-RateLimit-Reset"])
        assert before < reset <= time.time() + 2
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert response.json() == {"message": "Rate limit exceeded"}
    assert api.track(events=[event()]).status_code == 201
    assert len(api.sandbox.state.events()) == 1


def test_connection_reset_before_processing(api):
    api.sandbox.set_faults(reset_requests=1)
    with pytest.raises(requests.ConnectionError):
        api.track(attributes=[{"external_id": "u1", "x": 1}])
    assert api.sandbox.state.profile("u1") is None
    assert api.sandbox.state.requests("/users/track") == {"reset": 1}
    assert api.track(attributes=[{"external_id": "u1", "x": 1}]).status_code == 201


def test_drop_after_process_is_an_uncertain_outcome(braze_sandbox_factory, tmp_path):
    journal = tmp_path / "journal.jsonl"
    sandbox = braze_sandbox_factory(journal=journal, drop_after_process_requests=1)
    api = Api(sandbox)
    with pytest.raises(requests.ConnectionError):
        api.track(events=[event("u1")])
    assert len(sandbox.state.events()) == 1  # processed although the client saw no answer
    assert sandbox.state.requests("/users/track") == {"dropped": 1}
    (line,) = journal.read_text().splitlines()
    assert json.loads(line)["fault"] == "drop"


def test_stall_after_process_hits_the_client_read_timeout(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(stall_after_process_requests=1, stall_seconds=3)
    api = Api(sandbox)
    with pytest.raises(requests.ReadTimeout):
        api.post("/users/track", {"events": [event("u1")]}, timeout=(5, 0.3))
    assert len(sandbox.state.events()) == 1
    assert sandbox.state.stats()["faults"]["stall"] == 1


def test_latency_is_applied_and_counted(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(latency_ms=5, jitter_ms=5, seed=3)
    api = Api(sandbox)
    assert api.track(events=[event()]).status_code == 201
    assert sandbox.state.stats()["faults"]["latency"] == 1


def test_faults_limited_to_an_endpoint(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(error_rate=1.0, endpoints=["/campaigns/trigger/send"])
    api = Api(sandbox)
    assert api.track(events=[event()]).status_code == 201
    assert api.post("/campaigns/trigger/send", {"campaign_id": "c", "recipients": []}).status_code in (
        500,
        503,
    )


def test_faults_through_the_admin_api(api):
    reply = api.admin("faults", {"error_requests": 1, "seed": 5})
    assert reply["faults"]["error_requests"] == 1
    assert api.track(events=[event()]).status_code in (500, 503)
    assert api.admin("faults")["faults"]["error_requests"] == 0
    assert api.track(events=[event()]).status_code == 201
    bad = requests.post(api.base + "/_sandbox/faults", json={"error_rate": 2}, timeout=5)
    assert bad.status_code == 400
    unknown = requests.post(api.base + "/_sandbox/faults", json={"nonsense": 1}, timeout=5)
    assert unknown.status_code == 400
    api.admin("faults", {"error_rate": 1.0})
    assert api.track(events=[event()]).status_code in (500, 503)
    api.admin("faults", {"clear": True})
    assert api.track(events=[event()]).status_code == 201


def test_faults_given_at_start_up_come_back_after_reset(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(error_requests=1)
    api = Api(sandbox)
    assert api.track(events=[event()]).status_code in (500, 503)
    assert api.track(events=[event()]).status_code == 201
    sandbox.reset()
    assert api.track(events=[event()]).status_code in (500, 503)


def test_admin_and_auth_failures_draw_no_faults(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(error_rate=1.0)
    assert Api(sandbox, key=None).track(events=[event()]).status_code == 401
    assert requests.get(sandbox.base_url + "/_sandbox/health", timeout=5).status_code == 200
