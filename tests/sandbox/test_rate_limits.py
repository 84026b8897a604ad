"""Fixed-window rate limits per endpoint group and the X-RateLimit-* headers."""

from __future__ import annotations

import time

import requests

from tests.sandbox.conftest import Api, event

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def test_headers_on_every_response(api):
    responses = [
        api.track(events=[event()]),
        api.post("/users/track", [1]),
        Api(api.sandbox, key=None).track(events=[event()]),
        api.post("/nowhere", {}),
        api.get("/users/track"),
        api.get("/campaigns/list"),
        requests.get(api.base + "/_sandbox/health", timeout=5),
    ]
    for response in responses:
        for header in HEADERS:
            assert response.headers[header].isdigit(), (response.status_code, header)


def test_defaults_are_brazes_published_limits(api):
    track = api.track(events=[event()])
    assert track.headers["X-RateLimit-Limit"] == "3000"
    assert track.headers["X-RateLimit-Remaining"] == "2999"
    reset = int(track.headers["X-RateLimit-Reset"])
    assert reset % 3 == 0  # 3-second windows aligned on the epoch
    assert time.time() - 1 <= reset <= time.time() + 4
    campaigns = api.post("/campaigns/trigger/send", {"campaign_id": "c", "recipients": []})
    assert campaigns.headers["X-RateLimit-Limit"] == "250000"
    assert int(campaigns.headers["X-RateLimit-Reset"]) % 3600 == 0


def test_429_when_the_window_is_used_up(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(users_track_rate="3/600")
    api = Api(sandbox)
    statuses = [api.track(events=[event(f"u{i}")]).status_code for i in range(5)]
    assert statuses == [201, 201, 201, 429, 429]
    limited = api.track(events=[event("u9")])
    assert limited.json() == {"message": "Rate limit exceeded"}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert len(sandbox.state.events()) == 3  # throttled requests are not processed
    # the messaging group has its own budget
    assert api.post("/campaigns/trigger/send", {"campaign_id": "c", "broadcast": True}).status_code == 201


def test_messaging_rate_is_configurable(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(messaging_rate="1/600")
    api = Api(sandbox)
    body = {"campaign_id": "c", "broadcast": True}
    assert [api.post("/campaigns/trigger/send", body).status_code for _ in range(2)] == [201, 429]
    assert api.track(events=[event()]).status_code == 201


def test_remaining_counts_down(api):
    remaining = [int(api.track(events=[event()]).headers["X-RateLimit-Remaining"]) for _ in range(3)]
    # a window boundary may fall between two requests; otherwise it counts down by one
    assert remaining[0] > remaining[1] or remaining[1] == 2999
    assert all(r <= 2999 for r in remaining)


def test_reset_restores_the_budget(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(users_track_rate="1/600")
    api = Api(sandbox)
    assert api.track(events=[event()]).status_code == 201
    assert api.track(events=[event()]).status_code == 429
    api.admin("reset", {})
    assert api.track(events=[event()]).status_code == 201
