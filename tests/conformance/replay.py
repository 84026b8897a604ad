"""Replay a conformance pair against a running sandbox and observe what comes back."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from airflow_provider_aiq_braze.sandbox import BrazeSandbox, FaultConfig
from airflow_provider_aiq_braze.sandbox.facts import ENDPOINT_PERMISSIONS
from tests.conformance.corpus import ConformancePair

#: The key sent when a pair needs a key Braze does not know.
UNKNOWN_KEY = "sk-UNKNOWN-not-a-workspace-key"
#: Read timeout of replays (the ``timeout`` pairs stall longer than this).
READ_TIMEOUT = 0.5


@dataclass
class Observed:
    """What a replay saw.

    :param kind: ``json``, ``empty``, ``text``, ``truncated``, ``reset``, ``closed`` or ``timeout``.
    :param status: the HTTP status, when an answer came.
    :param headers: the answer's headers, names lower-case.
    :param body: the decoded JSON body, or the raw bytes.
    """

    kind: str
    status: int | None = None
    headers: dict[str, str] | None = None
    body: Any = None


def prepare(pair: ConformancePair, start: Any) -> BrazeSandbox:
    """Start a sandbox in the pair's situation: seeded users, primed requests, then its faults.

    :param pair: the pair.
    :param start: the ``braze_sandbox_factory`` fixture.
    """
    faults = {k: v for k, v in pair.setup.sandbox.items() if k in FaultConfig.field_names()}
    config = {k: v for k, v in pair.setup.sandbox.items() if k not in faults}
    if pair.key == "lacking_permission":
        needed = ENDPOINT_PERMISSIONS[pair.endpoint]
        config["permissions"] = sorted(set(ENDPOINT_PERMISSIONS.values()) - {needed})
    sandbox: BrazeSandbox = start(**config)
    if pair.setup.users:
        seeded = requests.post(
            f"{sandbox.base_url}/users/track",
            json={"attributes": [{"external_id": user, "seeded": True} for user in pair.setup.users]},
            headers={"Authorization": f"Bearer {sandbox.api_key}"},
            timeout=10,
        )
        assert seeded.status_code == 201, seeded.text
    for _ in range(pair.setup.prime):
        replay(pair, sandbox)
    if faults:
        sandbox.set_faults(**faults)
    return sandbox


def replay(pair: ConformancePair, sandbox: BrazeSandbox) -> Observed:
    """Send the pair's request once and observe the answer.

    :param pair: the pair.
    :param sandbox: a running sandbox.
    """
    key = UNKNOWN_KEY if pair.key == "invalid" else sandbox.api_key
    headers = {"Authorization": f"Bearer {key}"}
    path, body = pair.endpoint, None
    if pair.method == "GET":
        path += f"?{urlencode(pair.request)}" if pair.request else ""
    else:
        body = pair.raw_body.encode() if pair.raw_body is not None else json.dumps(pair.request).encode()
        headers["Content-Type"] = pair.content_type
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=READ_TIMEOUT)
    try:
        conn.request(pair.method, path, body, headers)
        response = conn.getresponse()
        answer_headers = {name.lower(): value for name, value in response.getheaders()}
        try:
            data = response.read()
        except http.client.IncompleteRead:
            return Observed("truncated", response.status, answer_headers)
    except http.client.RemoteDisconnected:
        return Observed("closed")
    except ConnectionResetError:
        return Observed("reset")
    except TimeoutError:
        return Observed("timeout")
    finally:
        conn.close()
    if not data:
        return Observed("empty", response.status, answer_headers, data)
    try:
        return Observed("json", response.status, answer_headers, json.loads(data))
    except ValueError:
        return Observed("text", response.status, answer_headers, data)
