"""The one classification of Braze answers: every row of the table in docs/guarantees.md."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import urllib3.exceptions

from airflow_provider_aiq_braze.braze.answers import Scrubber, classify, transport_kind
from airflow_provider_aiq_braze.braze.responses import MinorError, Verdict

KEY = "sk-ANSWERS-0123456789-secret"
INVALID = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("status", "payload", "verdict", "cause"),
    [
        # 2xx
        (201, body({"message": "success", "events_processed": 2}), Verdict.ACCEPTED, ""),
        (200, b"", Verdict.ACCEPTED, ""),
        (201, b"  \n", Verdict.ACCEPTED, ""),
        (200, b"<html>captive portal</html>", Verdict.ACCEPTED, "not_json"),
        (201, b'["success"]', Verdict.ACCEPTED, "not_json"),
        # 3xx
        (301, b"", Verdict.SETUP_ERROR, "redirect"),
        (307, b"", Verdict.SETUP_ERROR, "redirect"),
        # 4xx
        (
            400,
            body({"message": INVALID, "errors": [{"type": "bad", "input_array": "events", "index": 0}]}),
            Verdict.REFUSED_ITEMS,
            "items",
        ),
        (400, body({"message": "Invalid JSON", "errors": ["bad syntax"]}), Verdict.REFUSED, "content"),
        (400, body({"message": "Missing campaign_id"}), Verdict.REFUSED, "content"),
        (400, b"", Verdict.REFUSED, "content"),
        (413, b"<html>Request Entity Too Large</html>", Verdict.REFUSED, "content"),
        (422, body({"message": "Unprocessable"}), Verdict.REFUSED, "content"),
        (400, body({"message": "Max Input Length Exceeded"}), Verdict.SETUP_ERROR, "batch_size"),
        (
            400,
            body({"message": "The max number of external_ids and aliases per request was exceeded"}),
            Verdict.SETUP_ERROR,
            "batch_size",
        ),
        (401, body({"message": "Invalid API Key"}), Verdict.SETUP_ERROR, "auth"),
        (403, body({"message": "Access Denied"}), Verdict.SETUP_ERROR, "permission"),
        (404, b"Not Found", Verdict.SETUP_ERROR, "endpoint"),
        (405, b"", Verdict.SETUP_ERROR, "endpoint"),
        (408, b"", Verdict.RETRY, "server"),
        (429, body({"message": "Too Many Requests"}), Verdict.RATE_LIMITED, "rate_limit"),
        # 5xx
        (500, body({"message": "boom"}), Verdict.RETRY, "server"),
        (502, b"bad gateway", Verdict.RETRY, "server"),
        (503, b"", Verdict.RETRY, "server"),
        (504, b"<html>Gateway Timeout</html>", Verdict.UNCERTAIN, "gateway"),
    ],
)
def test_status_and_body(status: int, payload: bytes, verdict: Verdict, cause: str) -> None:
    answer = classify("/users/track", status, {}, payload, host="rest.iad-01.braze.com")
    assert (answer.verdict, answer.cause) == (verdict, cause)
    assert answer.status == status
    if verdict is not Verdict.ACCEPTED or cause:
        assert answer.reason, "every verdict but a plain accepted says why"
    assert answer.items_unknown is (cause == "not_json")


def test_minor_errors_with_and_without_index_and_plain_strings() -> None:
    payload = {
        "message": "success",
        "errors": [
            {
                "type": "'external_id' or 'braze_id' or 'user_alias' is required",
                "input_array": "events",
                "index": 1,
            },
            {"type": "no index here"},
            "a plain string",
        ],
    }
    answer = classify("/users/track", 201, {}, body(payload))
    assert answer.verdict is Verdict.ACCEPTED
    assert answer.errors_by_index("events") == {1: "'external_id' or 'braze_id' or 'user_alias' is required"}
    assert answer.unmapped_errors == (MinorError("no index here"), MinorError("a plain string"))


def test_400_per_item_keeps_every_named_object() -> None:
    errors = [{"type": f"bad {i}", "input_array": "events", "index": i} for i in (0, 2)]
    answer = classify("/users/track", 400, {}, body({"message": INVALID, "errors": errors}))
    assert answer.verdict is Verdict.REFUSED_ITEMS
    assert answer.errors_by_index("events") == {0: "bad 0", 2: "bad 2"}
    assert INVALID in (answer.message or "")


def test_403_names_the_permission_of_the_endpoint() -> None:
    answer = classify("/campaigns/trigger/send", 403, {}, body({"message": "Access Denied"}), host="h")
    assert "campaigns.trigger.send" in (answer.reason or "")
    assert "batch_size" in (
        classify("/users/track", 400, {}, body({"message": "Max Input Length Exceeded"})).reason or ""
    )


def test_redirect_names_the_location() -> None:
    answer = classify("/users/track", 302, {"Location": "https://example.com/login"}, b"", host="proxy")
    assert "https://example.com/login" in (answer.reason or "") and "Host" in (answer.reason or "")


def test_rate_limit_headers_with_and_without() -> None:
    limited = classify(
        "/users/track", 429, {"x-ratelimit-reset": "1700000000", "X-RateLimit-Limit": "3000"}, b""
    )
    assert limited.verdict is Verdict.RATE_LIMITED
    assert limited.rate_limit.reset == 1700000000 and limited.rate_limit.limit == 3000
    bare = classify("/users/track", 429, {}, b"")
    assert bare.verdict is Verdict.RATE_LIMITED and bare.rate_limit.empty


def test_a_2xx_body_cut_short_is_accepted_with_items_unknown() -> None:
    cut = requests.exceptions.ChunkedEncodingError(
        urllib3.exceptions.ProtocolError("Connection broken: IncompleteRead(10 bytes read, 30 more expected)")
    )
    answer = classify("/users/track", 201, {"Content-Length": "40"}, b'{"message":', read_error=cut)
    assert answer.verdict is Verdict.ACCEPTED and answer.items_unknown
    assert answer.minor_errors == () and "unknown" in (answer.reason or "")
    # on a 5xx or a 4xx the status decides
    assert classify("/users/track", 503, {}, b"", read_error=cut).verdict is Verdict.RETRY
    assert classify("/users/track", 400, {}, b"", read_error=cut).verdict is Verdict.REFUSED


def _connect_timeout() -> requests.exceptions.ConnectionError:
    inner = urllib3.exceptions.ConnectTimeoutError(None, "timed out")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "verdict", "cause"),
    [
        (requests.exceptions.ConnectTimeout("connect timed out"), Verdict.RETRY, "connect"),
        (_connect_timeout(), Verdict.RETRY, "connect"),
        (requests.exceptions.ReadTimeout("read timed out"), Verdict.UNCERTAIN, "transport"),
        (
            requests.exceptions.ConnectionError(ConnectionResetError(104, "reset by peer")),
            Verdict.UNCERTAIN,
            "transport",
        ),
        (requests.exceptions.SSLError("certificate verify failed"), Verdict.SETUP_ERROR, "tls"),
        (requests.exceptions.InvalidHeader("Invalid leading whitespace"), Verdict.SETUP_ERROR, "unbuildable"),
        (ValueError("Invalid header value b'a\\r\\nb'"), Verdict.SETUP_ERROR, "unbuildable"),
        (requests.exceptions.InvalidURL("bad url"), Verdict.SETUP_ERROR, "unbuildable"),
        (RuntimeError("something unexpected"), Verdict.UNCERTAIN, "transport"),
    ],
)
def test_transport_failures(error: BaseException, verdict: Verdict, cause: str) -> None:
    answer = classify("/users/track", error=error, host="rest.iad-01.braze.com")
    assert (answer.verdict, answer.cause, answer.status) == (verdict, cause, None)


def test_a_failure_before_the_request_left_the_process_is_never_uncertain() -> None:
    answer = classify("/users/track", error=RuntimeError("pool closed"), left_process=False)
    assert answer.verdict is Verdict.RETRY
    assert transport_kind(TimeoutError("timed out")) == "uncertain"


def test_nothing_braze_says_keeps_the_key() -> None:
    scrub = Scrubber([f"  {KEY}\n", KEY])
    payload = {
        "message": f"success {KEY}",
        "dispatch_id": f"d-{KEY}",
        "send_id": KEY,
        "errors": [{"type": f"bad key {KEY}", "input_array": "events", "index": 0}, f"string {KEY}"],
        KEY: "as a key",
    }
    texts = []
    for status in (201, 400, 401, 500):
        answer = classify("/users/track", status, {"Location": KEY}, body(payload), scrub=scrub)
        texts += [
            repr(answer),
            str(answer.reason),
            str(answer.message),
            str(answer.dispatch_id),
            str(answer.send_id),
        ]
        texts += [e.type for e in answer.minor_errors]
    redirect = classify("/users/track", 302, {"Location": f"https://x/?k={KEY}"}, b"", scrub=scrub)
    texts.append(repr(redirect))
    not_json = classify("/users/track", 200, {}, f"<html>{KEY}</html>".encode(), scrub=scrub)
    texts.append(repr(not_json))
    failed = classify(
        "/users/track", error=requests.exceptions.InvalidHeader(f"Bearer {KEY}\r\n"), scrub=scrub
    )
    texts.append(repr(failed))
    assert all(KEY not in text for text in texts)
    assert any("***" in text for text in texts)
