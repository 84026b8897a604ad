"""Side by side: this provider against what a DAG author uses today, on one sandbox, in one run.

    .venv/bin/python bench/compare_alternatives.py                      # 50 ms latency, defaults
    .venv/bin/python bench/compare_alternatives.py --latency-ms 20 --provider-rows 1000000

One Braze sandbox in its own process (``--latency-ms``, Braze's default rate limit of 3,000
``/users/track`` requests per 3 s) serves, one after the other:

1. this provider's ``BrazeEventExportOperator`` (``execute`` with a fake context) over a CSV of
   ``--provider-rows`` events;
2. this provider's ``BrazeAudienceMembershipOperator``, first run: ``--audience-members`` profiles
   enter one split (one attribute write each);
3. the ``braze-client`` package from PyPI (``BrazeClient(api_key, api_url).user_track(events=...)``)
   in a loop, 75 events per call, over the first ``--alternative-rows`` rows of the same CSV. It
   runs in a throwaway virtualenv (``--alternatives-venv``, created on first use with
   ``pip install braze-client``), never in the project's environment. braze-client 2.3.3 takes a
   custom ``api_url``, so no patching of its URL is needed; it pins ``tenacity<6``, whose import
   fails on Python 3.11 (``asyncio.coroutine`` is gone), so the worker sets
   ``asyncio.coroutine = types.coroutine`` before importing it;
4. a hand-written loop over the HTTP provider's ``HttpHook(method="POST").run``, 75 events per
   call, over the same rows: what a DAG author writes today.

It prints events (or attribute writes) per second for each and the provider's ratios to the
faster of the two alternatives.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import BENCH_API_KEY, SandboxProcess, fake_context, write_events_csv

# the operators' INFO lines (progress, results) would drown the figures
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

#: Events per request in the alternatives' loops (Braze's maximum per ``/users/track`` array).
CHUNK = 75

#: The loop a DAG author writes with braze-client, run in the throwaway virtualenv.
#: argv: base URL, API key, CSV path, rows to send; prints one JSON line.
BRAZE_CLIENT_WORKER = r"""
import asyncio, csv, json, sys, time, types

# braze-client 2.3.3 pins tenacity<6, whose import uses asyncio.coroutine (removed in Python 3.11)
if not hasattr(asyncio, "coroutine"):
    asyncio.coroutine = types.coroutine
from braze.client import BrazeClient

base_url, api_key, path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
client = BrazeClient(api_key=api_key, api_url=base_url)
sent = calls = failures = 0
started = time.perf_counter()
with open(path, newline="", encoding="utf-8") as handle:
    chunk = []
    for i, row in enumerate(csv.DictReader(handle)):
        if i >= limit:
            break
        chunk.append({"external_id": row["external_id"], "name": row["event_name"], "time": row["timestamp"],
                      "properties": {"product": row["product"], "price": row["price"]}})
        if len(chunk) == 75:
            response = client.user_track(events=chunk)
            calls += 1
            sent += len(chunk) if response["success"] else 0
            failures += 0 if response["success"] else 1
            chunk = []
    if chunk:
        response = client.user_track(events=chunk)
        calls += 1
        sent += len(chunk) if response["success"] else 0
        failures += 0 if response["success"] else 1
print(json.dumps({"sent": sent, "calls": calls, "failures": failures,
                  "seconds": time.perf_counter() - started, "worker_cpu": time.process_time()}))
"""


def ensure_alternatives_venv(path: Path) -> Path:
    """Create (once) a throwaway virtualenv holding ``braze-client``; return its Python.

    :param path: where the virtualenv lives (outside the project's environments).
    """
    python = path / "bin" / "python"
    check = [str(python), "-c", "import importlib.metadata as m; m.version('braze-client')"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating a throwaway virtualenv with braze-client in {path} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "braze-client"], check=True)
    return python


def csv_events(path: Path, limit: int) -> Iterator[dict[str, Any]]:
    """The first ``limit`` rows of the events CSV as Braze event objects (a DAG author's mapping).

    :param path: the CSV written by :func:`write_events_csv`.
    :param limit: how many rows.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if i >= limit:
                return
            yield {
                "external_id": row["external_id"],
                "name": row["event_name"],
                "time": row["timestamp"],
                "properties": {"product": row["product"], "price": row["price"]},
            }


def run_http_hook_loop(sandbox: SandboxProcess, path: Path, limit: int) -> dict[str, Any]:
    """POST the events 75 at a time through ``HttpHook(method="POST").run``, one call after another.

    :param sandbox: the sandbox to send to.
    :param path: the events CSV.
    :param limit: how many rows to send.
    """
    from airflow.providers.http.hooks.http import HttpHook

    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": sandbox.base_url})
    hook = HttpHook(method="POST", http_conn_id="bench_http")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {BENCH_API_KEY}"}
    sent = calls = 0
    started = time.perf_counter()
    chunk: list[dict[str, Any]] = []
    for event in csv_events(path, limit):
        chunk.append(event)
        if len(chunk) == CHUNK:
            hook.run("/users/track", data=json.dumps({"events": chunk}), headers=headers)
            sent, calls, chunk = sent + len(chunk), calls + 1, []
    if chunk:
        hook.run("/users/track", data=json.dumps({"events": chunk}), headers=headers)
        sent, calls = sent + len(chunk), calls + 1
    return {"sent": sent, "calls": calls, "seconds": time.perf_counter() - started}


def run_braze_client_loop(python: Path, sandbox: SandboxProcess, path: Path, limit: int) -> dict[str, Any]:
    """Run :data:`BRAZE_CLIENT_WORKER` in the throwaway virtualenv.

    :param python: the virtualenv's interpreter.
    :param sandbox: the sandbox to send to.
    :param path: the events CSV.
    :param limit: how many rows to send.
    """
    done = subprocess.run(
        [str(python), "-c", BRAZE_CLIENT_WORKER, sandbox.base_url, BENCH_API_KEY, str(path), str(limit)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_provider_events(work: Path, path: Path, workers: int) -> dict[str, Any]:
    """Send every row of ``path`` with ``BrazeEventExportOperator``.

    :param work: the work directory (state lives there).
    :param path: the events CSV.
    :param workers: the operator's ``max_workers``.
    """
    from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator

    op = BrazeEventExportOperator(
        task_id="events", source=str(path), state_path=str(work / "state"), max_workers=workers
    )
    started = time.perf_counter()
    result = op.execute(fake_context("events"))  # type: ignore[arg-type]
    return {"sent": result["sent"], "calls": result["requests"], "seconds": time.perf_counter() - started}


def write_members_csv(path: Path, members: int) -> Path:
    """A first snapshot: ``members`` profiles in audience 48213, split A.

    :param path: the file to write.
    :param members: how many profiles.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audience_id", "split_id", "external_id"])
        writer.writerows(["48213", "A", f"member-{i:09d}"] for i in range(members))
    return path


def run_provider_audience(work: Path, path: Path, workers: int) -> dict[str, Any]:
    """First run of ``BrazeAudienceMembershipOperator``: every member enters the split.

    :param work: the work directory (state lives there).
    :param path: the members CSV.
    :param workers: the operator's ``max_workers``.
    """
    from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator

    op = BrazeAudienceMembershipOperator(
        task_id="audience",
        source=str(path),
        state_path=str(work / "state"),
        snapshot_key="2026-11-01",
        update_existing_only=False,  # the benchmark's profiles do not exist yet
        max_workers=workers,
    )
    started = time.perf_counter()
    result = op.execute(fake_context("audience"))  # type: ignore[arg-type]
    return {
        "sent": result["entered"],
        "calls": result["requests"],
        "seconds": time.perf_counter() - started,
        "data_points": result["data_points"],
        "state_committed": result["state_committed"],
    }


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``).

    :param pid: the process.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(sandbox: SandboxProcess, run: Any, *args: Any) -> dict[str, Any]:
    """Run one contender; add the CPU seconds this process and the sandbox spent on it.

    :param sandbox: the sandbox (its CPU is read from ``/proc``).
    :param run: the contender's function.
    :param args: its arguments.
    """
    client, server = time.process_time(), process_cpu_seconds(sandbox.process.pid)
    figures: dict[str, Any] = run(*args)
    figures["client_cpu"] = figures.pop("worker_cpu", time.process_time() - client)
    figures["sandbox_cpu"] = process_cpu_seconds(sandbox.process.pid) - server
    return figures


def rate(figures: dict[str, Any]) -> float:
    """Objects per second of one contender.

    :param figures: ``sent`` and ``seconds``.
    """
    return float(figures["sent"]) / max(float(figures["seconds"]), 1e-9)


def main() -> None:
    """Run the four contenders against one sandbox and print their rates and ratios."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency per request")
    parser.add_argument("--provider-rows", type=int, default=1_000_000, help="events the provider sends")
    parser.add_argument("--audience-members", type=int, default=500_000, help="members entering the split")
    parser.add_argument("--alternative-rows", type=int, default=20_000, help="events each serial loop sends")
    parser.add_argument("--workers", type=int, default=32, help="the provider's max_workers")
    parser.add_argument(
        "--alternatives-venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aiq-braze-bench-alternatives-venv",
        help="throwaway virtualenv for braze-client (created on first use)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("airflow").setLevel(logging.WARNING)
    python = ensure_alternatives_venv(args.alternatives_venv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        work = Path(tmp)
        events = write_events_csv(work / "events.csv", max(args.provider_rows, args.alternative_rows))
        members = write_members_csv(work / "members.csv", args.audience_members)
        sandbox = SandboxProcess("--latency-ms", str(args.latency_ms))
        try:
            sandbox.use_as_default_connection()
            figures = {
                "provider: BrazeEventExportOperator": measured(
                    sandbox, run_provider_events, work, events, args.workers
                ),
                "provider: BrazeAudienceMembershipOperator": measured(
                    sandbox, run_provider_audience, work, members, args.workers
                ),
                "braze-client (PyPI) loop": measured(
                    sandbox, run_braze_client_loop, python, sandbox, events, args.alternative_rows
                ),
                "HttpHook.run loop": measured(
                    sandbox, run_http_hook_loop, sandbox, events, args.alternative_rows
                ),
            }
            stats = sandbox.stats()
        finally:
            sandbox.stop()
    load_after = os.getloadavg()
    print(f"sandbox latency {args.latency_ms:g} ms, rate limit 3,000 /users/track requests per 3 s")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    for name, fig in figures.items():
        extra = f"  data points {fig['data_points']:,}" if "data_points" in fig else ""
        print(
            f"{name:45s} {fig['sent']:>9,} objects in {fig['calls']:>6,} requests, {fig['seconds']:7.1f} s"
            f" = {rate(fig):>9,.0f} /s; CPU s: client {fig['client_cpu']:.1f},"
            f" sandbox {fig['sandbox_cpu']:.1f}{extra}"
        )
    best_alternative = max(rate(figures["braze-client (PyPI) loop"]), rate(figures["HttpHook.run loop"]))
    print(f"faster alternative: {best_alternative:,.0f} events/s")
    events_ratio = rate(figures["provider: BrazeEventExportOperator"]) / best_alternative
    audience_ratio = rate(figures["provider: BrazeAudienceMembershipOperator"]) / best_alternative
    print(f"ratio, provider events   / faster alternative: {events_ratio:.1f}x (target: at least 20x)")
    print(f"ratio, provider audience / faster alternative: {audience_ratio:.1f}x")
    print(
        f"sandbox: {stats['counters'].get('events_recorded', 0):,} events recorded, "
        f"{stats['data_points']:,} data points, requests {stats['requests'].get('/users/track', {})}"
    )


if __name__ == "__main__":
    main()
