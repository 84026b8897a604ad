"""Throughput of the Braze sandbox: 75-event ``/users/track`` requests over keep-alive connections.

Starts the sandbox in a subprocess (``python -m airflow_provider_aiq_braze.sandbox --port 0
--port-file ...``) with strict validation and a rate limit high enough not to throttle, then fires
requests from N client threads (one ``http.client`` keep-alive connection each) for a fixed time
and prints requests/s and objects/s.

Run: ``.venv/bin/python bench/sandbox_throughput.py [--threads 4] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from airflow_provider_aiq_braze.sandbox.process import SandboxStartError, start_sandbox_process

API_KEY = "sk-BENCH-not-a-secret"


def make_bodies(count: int, events: int, users: int) -> list[bytes]:
    """Pre-serialized request bodies, so the client spends its time sending.

    :param count: how many distinct bodies.
    :param events: events per body.
    :param users: size of the pool of external ids.
    """
    bodies = []
    n = 0
    for b in range(count):
        batch = []
        for e in range(events):
            n += 1
            batch.append(
                {
                    "external_id": f"user-{n % users}",
                    "name": "aiq_purchase_intent",
                    "time": f"2026-01-{1 + (b % 28):02d}T10:{e % 60:02d}:00Z",
                    "properties": {
                        "audience_id": "1234",
                        "split_id": "5",
                        "score": 0.87,
                        "rank": e,
                        "channel": "email",
                        "opted_in": True,
                    },
                }
            )
        bodies.append(json.dumps({"events": batch}, separators=(",", ":")).encode())
    return bodies


def start_sandbox(port_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start the sandbox subprocess and wait for its port.

    :param port_file: where the sandbox writes its port.
    """
    try:
        process, base_url = start_sandbox_process(
            "--api-key",
            API_KEY,
            "--users-track-rate",
            "100000000/1",
            "--log-limit",
            "10000",
            port_file=port_file,
        )
    except SandboxStartError as exc:
        raise SystemExit(str(exc)) from None
    return process, int(base_url.rsplit(":", 1)[1])


def client(port: int, bodies: list[bytes], stop: threading.Event, results: list[tuple[int, int]]) -> None:
    """Send requests over one keep-alive connection until ``stop`` is set.

    :param port: the sandbox port.
    :param bodies: request bodies to cycle through.
    :param stop: set when the run is over.
    :param results: where to append ``(requests, failures)``.
    """
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent = failures = 0
    i = 0
    while not stop.is_set():
        body = bodies[i % len(bodies)]
        i += 1
        conn.request("POST", "/users/track", body, headers)
        response = conn.getresponse()
        data = response.read()
        sent += 1
        if response.status != 201 or b'"errors"' in data:
            failures += 1
    conn.close()
    results.append((sent, failures))


def stats(port: int) -> dict[str, object]:
    """The sandbox's ``/_sandbox/stats``.

    :param port: the sandbox port.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_sandbox/stats")
    data: dict[str, object] = json.loads(conn.getresponse().read())
    conn.close()
    return data


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere).

    :param pid: the process id.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4, help="client threads (keep-alive connections)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to fire requests")
    parser.add_argument("--events", type=int, default=75, help="events per request")
    parser.add_argument("--users", type=int, default=10_000, help="distinct external ids")
    args = parser.parse_args()

    bodies = make_bodies(64, args.events, args.users)
    with tempfile.TemporaryDirectory() as tmp:
        process, port = start_sandbox(Path(tmp) / "port")
        try:
            stop = threading.Event()
            results: list[tuple[int, int]] = []
            threads = [
                threading.Thread(target=client, args=(port, bodies, stop, results))
                for _ in range(args.threads)
            ]
            cpu_before = cpu_seconds(process.pid)
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            server_cpu = cpu_seconds(process.pid) - cpu_before
            server = stats(port)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    requests = sum(r for r, _ in results)
    failures = sum(f for _, f in results)
    objects = requests * args.events
    print(f"cpus: {os.cpu_count()}  client threads: {args.threads}  events/request: {args.events}")
    print(f"requests: {requests} in {elapsed:.1f} s  failures: {failures}")
    print(f"requests/s: {requests / elapsed:,.0f}")
    print(f"objects/s: {objects / elapsed:,.0f}")
    if requests:
        print(f"sandbox CPU per request: {server_cpu / requests * 1e6:,.0f} us (steadier than the rates)")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"sandbox counted: {server['objects_processed']}  sandbox exit status: {process.returncode}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
