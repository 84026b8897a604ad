"""Every conformance pair fed to the client: its answer gets the verdict the corpus expects.

Two routes: the pair's documented example served by a scripted server (the answer exactly as
recorded), and the sandbox put in the pair's situation (the answer as the independent sandbox
gives it). Either way the client sends once (:meth:`BrazeClient.send_once`, no retry policy) and
:func:`~airflow_provider_aiq_braze.braze.answers.classify` decides. The engine's handling of each
verdict is tested in ``tests/delivery/test_engine_verdicts.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_aiq_braze.braze.client import BrazeClient
from airflow_provider_aiq_braze.braze.settings import ClientSettings
from tests.conformance.corpus import ConformancePair, load_pairs
from tests.conformance.replay import READ_TIMEOUT, UNKNOWN_KEY, prepare
from tests.hooks.scripted_server import Reply, ScriptedServer

KEY = "sk-CONFORMANCE-0123456789-secret"
PAIRS = load_pairs()

pytestmark = pytest.mark.timeout(60)


def client_for(base_url: str, key: str) -> BrazeClient:
    return BrazeClient(ClientSettings(base_url=base_url, api_key=key, timeout=(2.0, READ_TIMEOUT)))


def send_once(client: BrazeClient, pair: ConformancePair) -> Any:
    if pair.method == "GET":
        return client.send_once("GET", pair.endpoint, params=pair.request or None)
    body = pair.raw_body.encode() if pair.raw_body is not None else json.dumps(pair.request).encode()
    return client.send_once("POST", pair.endpoint, data=body)


def reply_for(pair: ConformancePair) -> Reply:
    """The pair's documented answer, as the scripted server serves it."""
    answer = pair.answer
    if answer.kind == "closed":
        return Reply(close=True)
    if answer.kind == "timeout":
        return Reply(201, delay=READ_TIMEOUT * 3)
    headers = {name: "https://example.com/" if name == "location" else "1" for name in answer.headers}
    example = (
        json.loads(json.dumps(answer.example).replace("KEY", KEY)) if answer.example is not None else None
    )
    if answer.kind == "empty":
        body: Any = None
    elif answer.kind in ("text", "truncated"):
        body = str(example if example is not None else "").encode()
    else:
        body = example
    assert answer.status is not None
    if answer.kind == "truncated":
        payload = body or b'{"message":"success"}'
        return Reply(answer.status, payload, headers, truncate=max(1, len(payload) // 2))
    return Reply(answer.status, body, headers)


STUBBABLE = [p for p in PAIRS if p.answer.kind != "reset"]  # a scripted server cannot send an RST


@pytest.mark.parametrize("pair", STUBBABLE, ids=lambda p: p.id)
def test_the_documented_answer_gets_the_expected_verdict(pair: ConformancePair) -> None:
    with ScriptedServer() as server:
        server.script(default=reply_for(pair))
        response = send_once(client_for(server.url, KEY), pair)
    assert response.verdict.value == pair.expect, (pair.source, response)
    assert KEY not in repr(response)


#: The client always sends ``Content-Type: application/json``: pairs about another type are stub-only.
SENDABLE = [p for p in PAIRS if p.content_type == "application/json"]


@pytest.mark.parametrize("pair", SENDABLE, ids=lambda p: p.id)
def test_the_sandbox_answer_gets_the_expected_verdict(
    pair: ConformancePair, braze_sandbox_factory: Callable[..., Any]
) -> None:
    sandbox = prepare(pair, braze_sandbox_factory)
    key = UNKNOWN_KEY if pair.key == "invalid" else sandbox.api_key
    response = send_once(client_for(sandbox.base_url, key), pair)
    assert response.verdict.value == pair.expect, (pair.source, response)
    assert key not in repr(response)
