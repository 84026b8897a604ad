"""Keep-alive, stalled clients, garbage on the wire: never a crash or a hung server."""

from __future__ import annotations

import http.client
import json
import socket

import requests

from airflow_provider_aiq_braze.sandbox.pytest_plugin import SANDBOX_API_KEY
from tests.sandbox.conftest import Api, event

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}", "Content-Type": "application/json"}


def test_keep_alive_serves_several_requests_on_one_connection(braze_sandbox):
    conn = http.client.HTTPConnection("127.0.0.1", braze_sandbox.port, timeout=5)
    conn.connect()
    local = conn.sock.getsockname()
    for i in range(5):
        conn.request("POST", "/users/track", json.dumps({"events": [event(f"u{i}")]}), AUTH)
        response = conn.getresponse()
        assert response.status == 201
        assert response.getheader("Connection") is None
        response.read()
        assert conn.sock is not None and conn.sock.getsockname() == local
    # error answers keep the connection too
    conn.request("POST", "/users/track", "[1]", AUTH)
    response = conn.getresponse()
    assert response.status == 400
    response.read()
    conn.request("GET", "/campaigns/list", headers=AUTH)
    assert conn.getresponse().status == 200
    assert conn.sock.getsockname() == local
    conn.close()
    assert len(braze_sandbox.state.events()) == 5


def test_stalled_client_does_not_block_others(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(client_timeout=1.0)
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as stalled:
        stalled.sendall(
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"events": ['
        )
        api = Api(sandbox)
        for i in range(3):
            assert api.track(events=[event(f"u{i}")]).status_code == 201
        # the stalled connection is closed by the server after its socket timeout
        assert stalled.recv(1024) == b""
    assert len(sandbox.state.events()) == 3


def test_stalled_request_line_is_dropped_too(braze_sandbox_factory):
    sandbox = braze_sandbox_factory(client_timeout=0.5)
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=10) as stalled:
        stalled.sendall(b"POST /users/tr")
        assert Api(sandbox).get("/campaigns/list").status_code == 200
        assert stalled.recv(1024) == b""


def test_garbage_on_the_wire(braze_sandbox):
    for garbage in (b"\x00\x01\x02\r\n\r\n", b"HELLO\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\r\n"):
        with socket.create_connection(("127.0.0.1", braze_sandbox.port), timeout=5) as sock:
            sock.sendall(garbage)
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        if reply:
            assert reply.startswith(b"HTTP/1.1 4") or reply.startswith(b"HTTP/1.1 5"), reply[:40]
            assert b"application/json" in reply
    assert Api(braze_sandbox).track(events=[event()]).status_code == 201
    assert braze_sandbox.state.counter("internal_errors") == 0


def test_client_closing_mid_body_is_harmless(braze_sandbox):
    with socket.create_connection(("127.0.0.1", braze_sandbox.port), timeout=5) as sock:
        sock.sendall(
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + SANDBOX_API_KEY.encode() + b'\r\nContent-Length: 500\r\n\r\n{"ev'
        )
    assert Api(braze_sandbox).track(events=[event()]).status_code == 201
    assert len(braze_sandbox.state.events()) == 1


def test_invalid_content_length_is_400(braze_sandbox):
    with socket.create_connection(("127.0.0.1", braze_sandbox.port), timeout=5) as sock:
        sock.sendall(
            b"POST /users/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + SANDBOX_API_KEY.encode() + b"\r\nContent-Length: abc\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")


def test_lone_surrogate_is_harmless(braze_sandbox_factory, tmp_path):
    sandbox = braze_sandbox_factory(journal=tmp_path / "j.jsonl")
    text = (
        '{"external_id": "u1", "name": "x", "time": "2024-05-01T12:00:00Z", "properties": {"k": "\\ud800"}}'
    )
    body = ('{"events": [' + text + "]}").encode()
    response = requests.post(sandbox.base_url + "/users/track", data=body, headers=AUTH, timeout=5)
    assert response.status_code == 201
    assert sandbox.state.counter("internal_errors") == 0
    assert requests.get(sandbox.base_url + "/_sandbox/events", timeout=5).status_code == 200
    assert len((tmp_path / "j.jsonl").read_text().splitlines()) == 1


def test_many_concurrent_clients(braze_sandbox):
    import threading

    failures: list[object] = []

    def worker(n: int) -> None:
        api = Api(braze_sandbox)
        for i in range(10):
            response = api.track(attributes=[{"external_id": f"w{n}-{i}", "AIQ_1_1": True}])
            if response.status_code != 201:
                failures.append(response.status_code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(braze_sandbox.state.profiles()) == 80
    assert braze_sandbox.state.data_points == 80


def test_stop_ends_idle_keep_alive_connections(braze_sandbox_factory):
    sandbox = braze_sandbox_factory()
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=5)
    conn.request("GET", "/campaigns/list", headers=AUTH)
    conn.getresponse().read()
    sandbox.stop()
    assert conn.sock is not None
    assert conn.sock.recv(1024) == b""
    conn.close()


def test_deep_nesting_is_walked_without_recursion(api):
    # Braze documents no nesting depth for properties; whatever the JSON decoder takes is checked.
    nested: object = "leaf"
    for _ in range(600):
        nested = [nested]
    response = api.track(events=[event("u1", properties={"deep": {"a": nested}})])
    assert response.status_code == 201, response.text
    assert "errors" not in response.json()
    too_deep = (
        b'{"events": [{"external_id": "u1", "name": "x", "time": "2024-05-01T00:00:00Z", "properties": {"a": '
    )
    too_deep += b"[" * 100_000 + b"]" * 100_000 + b"}}]}"
    refused = api.session.post(
        api.base + "/users/track", data=too_deep, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 400  # not JSON the decoder can take: bad syntax
    assert api.sandbox.state.counter("internal_errors") == 0
