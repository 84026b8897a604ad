"""Hostile answers through the real client and a real server on 127.0.0.1: one verdict each, no key."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_aiq_braze.braze.errors import BrazeApiError, BrazeConfigError
from airflow_provider_aiq_braze.braze.responses import Verdict
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from tests.conftest import TEST_API_KEY
from tests.hooks.scripted_server import Reply, ScriptedServer, closed_port

MakeHook = Callable[..., BrazeHook]
INVALID = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
BODY = b'{"events":[{"external_id":"a"},{"external_id":"b"}]}'


def send(hook: BrazeHook, *, safe: bool = False) -> Verdict:
    return hook.client.send("POST", "/users/track", data=BODY, safe_to_retry=safe).verdict


def test_a_201_cut_short_is_accepted_with_items_unknown(make_hook: MakeHook, server: ScriptedServer) -> None:
    full = {"message": "success", "errors": [{"type": "bad", "input_array": "events", "index": 1}]}
    server.script(Reply(201, full, truncate=12))
    hook = make_hook()
    response = hook.client.send("POST", "/users/track", data=BODY)
    assert response.verdict is Verdict.ACCEPTED and response.items_unknown
    assert "ChunkedEncodingError" in (response.reason or "") and response.minor_errors == ()
    assert len(server.requests) == 1 and hook.stats.uncertain == 0
    assert hook.post("/users/track", BODY).accepted  # and post() does not raise either


def test_400_per_item_is_refused_items_and_not_retried(make_hook: MakeHook, server: ScriptedServer) -> None:
    errors = [
        {
            "type": "'external_id' or 'braze_id' or 'user_alias' is required",
            "input_array": "events",
            "index": 0,
        }
    ]
    server.script(Reply(400, {"message": INVALID, "errors": errors}))
    response = make_hook().client.send("POST", "/users/track", data=BODY)
    assert response.verdict is Verdict.REFUSED_ITEMS
    assert response.errors_by_index("events") == {0: errors[0]["type"]}
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        (Reply(413, b"<html>413 Request Entity Too Large</html>"), Verdict.REFUSED),
        (Reply(422, {"message": "Unprocessable Entity"}), Verdict.REFUSED),
        (Reply(400, {"message": "Invalid JSON"}), Verdict.REFUSED),
        (Reply(401, {"message": "Invalid API Key"}), Verdict.SETUP_ERROR),
        (Reply(403, {"message": "Access Denied"}), Verdict.SETUP_ERROR),
        (Reply(404, b"Not Found"), Verdict.SETUP_ERROR),
        (Reply(301, None, {"Location": "https://elsewhere.example/users/track"}), Verdict.SETUP_ERROR),
        (Reply(200, None), Verdict.ACCEPTED),
        (Reply(200, b"<html>portal</html>"), Verdict.ACCEPTED),
        (Reply(504, b"Gateway Timeout"), Verdict.UNCERTAIN),
        (Reply(close=True), Verdict.UNCERTAIN),
    ],
)
def test_final_on_first_answer(
    make_hook: MakeHook, server: ScriptedServer, reply: Reply, verdict: Verdict
) -> None:
    server.script(reply)
    assert send(make_hook()) is verdict
    assert len(server.requests) == 1, "a final verdict is never retried"


def test_a_redirect_is_not_followed(make_hook: MakeHook, server: ScriptedServer) -> None:
    server.script(Reply(302, None, {"Location": f"{server.url}/elsewhere"}))
    with pytest.raises(BrazeApiError) as raised:
        make_hook().post("/users/track", BODY)
    assert raised.value.status == 302
    assert [r.path for r in server.requests] == ["/users/track"]


def test_429_without_headers_waits_then_sends_again(make_hook: MakeHook, server: ScriptedServer) -> None:
    server.script(Reply(429, {"message": "Too Many Requests"}), Reply(201))
    hook = make_hook()
    assert send(hook) is Verdict.ACCEPTED
    assert len(server.requests) == 2 and hook.stats.rate_limit_waits == 1


def test_5xx_then_exhausted_is_retry(make_hook: MakeHook, server: ScriptedServer) -> None:
    server.script(default=Reply(502, b"bad gateway"))
    assert send(make_hook(max_attempts=2)) is Verdict.RETRY
    assert len(server.requests) == 2


def test_refused_before_sending_is_retry_never_uncertain(make_hook: MakeHook) -> None:
    hook = make_hook(host=f"http://127.0.0.1:{closed_port()}", max_attempts=2)
    response = hook.client.send("POST", "/users/track", data=BODY)
    assert (response.verdict, response.cause, response.attempts) == (Verdict.RETRY, "connect", 2)


def test_before_send_runs_before_each_attempt_and_can_stop_it(
    make_hook: MakeHook, server: ScriptedServer
) -> None:
    server.script(Reply(500, {"message": "boom"}), Reply(201))
    hook = make_hook()
    seen: list[int] = []

    def before() -> None:
        seen.append(len(server.requests))  # nothing of this attempt has arrived yet

    assert hook.client.send("POST", "/users/track", data=BODY, before_send=before).accepted
    assert seen == [0, 1]

    class Stop(Exception):
        pass

    def refuse() -> None:
        raise Stop

    with pytest.raises(Stop):
        hook.client.send("POST", "/users/track", data=BODY, before_send=refuse)
    assert len(server.requests) == 2


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "line\nbreak", "nul\x00", "snow ☃"])
def test_a_header_extra_http_cannot_carry_fails_before_any_request(
    make_hook: MakeHook, server: ScriptedServer, value: str
) -> None:
    hook = make_hook(extra={"X-Team": value})
    with pytest.raises(BrazeConfigError, match="X-Team") as raised:
        hook.get_conn()
    assert value not in str(raised.value)
    with pytest.raises(BrazeConfigError):
        hook.post("/users/track", BODY)
    ok, message = hook.test_connection()
    assert not ok and "X-Team" in message
    assert server.requests == []


def test_key_echoes_are_scrubbed_where_answers_are_parsed(
    make_hook: MakeHook, server: ScriptedServer
) -> None:
    echo = {
        "message": f"success for {TEST_API_KEY}",
        "dispatch_id": f"dispatch-{TEST_API_KEY}",
        "errors": [
            {"type": f"unknown key {TEST_API_KEY}", "input_array": "events", "index": 0},
            TEST_API_KEY,
        ],
    }
    server.script(
        Reply(201, echo),
        Reply(400, {**echo, "message": INVALID}),
        Reply(401, {"message": f"Invalid API Key {TEST_API_KEY}"}),
        Reply(200, f"<html>{TEST_API_KEY}</html>".encode()),
    )
    hook = make_hook(password=f"  {TEST_API_KEY} \n")
    responses = [hook.client.send("POST", "/users/track", data=BODY) for _ in range(4)]
    assert [r.verdict for r in responses] == [
        Verdict.ACCEPTED,
        Verdict.REFUSED_ITEMS,
        Verdict.SETUP_ERROR,
        Verdict.ACCEPTED,
    ]
    assert responses[0].dispatch_id == "dispatch-***"
    assert responses[1].errors_by_index("events") == {0: "unknown key ***"}
    assert all(TEST_API_KEY not in repr(r) for r in responses)
