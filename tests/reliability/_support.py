"""Helpers of the reliability suite: input files, ledgers, dry-run batches, sandbox counts."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow.parquet as pq

from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.braze_sandbox import connection_env, create_users  # noqa: F401 (the suite imports them from here)
from tests.operators.conftest import read_jsonl, write_csv

EVENTS_HEADER = ["event_name", "external_id", "timestamp", "plan"]
EVENTS_CLASS = "airflow_provider_aiq_braze.operators.events.BrazeEventExportOperator"
CAMPAIGNS_CLASS = "airflow_provider_aiq_braze.operators.campaigns.BrazeCampaignTriggerOperator"
AUDIENCE_CLASS = "airflow_provider_aiq_braze.operators.audience.BrazeAudienceMembershipOperator"


def write_events(path: Path, n: int, start: int = 0) -> Path:
    """``n`` events, one per user ``u<i>``: an event's count at Braze is its user's count."""
    rows = [
        ["viewed", f"u{i}", f"2026-11-28T10:{i % 60:02d}:00Z", f"p{i % 7}"] for i in range(start, start + n)
    ]
    return write_csv(path, EVENTS_HEADER, rows)


def write_recipients(path: Path, users: list[str]) -> Path:
    """A recipients file of one column, ``external_id``."""
    return write_csv(path, ["external_id"], [[u] for u in users])


def write_members(path: Path, users: Iterable[str], audience: str = "12", split: str = "1") -> Path:
    """A membership snapshot of one split."""
    return write_csv(path, ["audience_id", "split_id", "external_id"], [[audience, split, u] for u in users])


def context(task_id: str, run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    """The piece of task context the operators read."""
    ti = SimpleNamespace(dag_id="dag", task_id=task_id, run_id=run_id, map_index=-1, try_number=try_number)
    return {"ti": ti}


def assert_invariant(result: dict[str, Any]) -> None:
    """rows_read == sent + rejected + skipped + uncertain, and nothing failed."""
    assert result["failed"] == 0, result
    assert (
        result["rows_read"] == result["sent"] + result["rejected"] + result["skipped"] + result["uncertain"]
    ), result


def ledger_outcomes(state: Path) -> dict[str, dict[str, Any]]:
    """The last record of every batch in the (one) ledger under ``state``, by digest."""
    ledgers = list((state / "ledger").rglob("*.jsonl"))
    assert len(ledgers) <= 1, ledgers
    last: dict[str, dict[str, Any]] = {}
    for ledger in ledgers:
        for record in read_jsonl(str(ledger)):
            if record.get("reset"):
                last.clear()
            elif "digest" in record:
                last[record["digest"]] = record
    return last


def uncertain_digests(state: Path) -> set[str]:
    """Batches whose outcome is unknown: last recorded ``uncertain`` or still ``sending``."""
    return {d for d, r in ledger_outcomes(state).items() if r["state"] in ("sending", "uncertain")}


def accepted_digests(state: Path) -> set[str]:
    """Batches Braze accepted, per the ledger."""
    return {d for d, r in ledger_outcomes(state).items() if r["state"] == "accepted"}


def batch_identifiers(dry_run_path: str, array: str, key: str) -> dict[str, list[str]]:
    """The identifiers of every batch of a dry run, by the SHA-256 of its body (the ledger's key).

    :param dry_run_path: the ``dry_run_path`` of a dry run's result.
    :param array: ``events``, ``attributes`` or ``recipients``.
    :param key: the identifier field (``external_id``, ``external_user_id``).
    """
    bodies = Path(dry_run_path.removeprefix("file://")).read_text(encoding="utf-8").splitlines()
    return {
        hashlib.sha256(body.encode()).hexdigest(): [obj[key] for obj in json.loads(body)[array]]
        for body in bodies
    }


def event_counts(sandbox: BrazeSandbox) -> Counter[str]:
    """Events recorded at the sandbox, per ``external_id``."""
    return Counter(e["external_id"] for e in sandbox.state.events())


def message_counts(sandbox: BrazeSandbox) -> Counter[str]:
    """Messages sent by the sandbox, per ``external_id``."""
    return Counter(m["external_id"] for m in sandbox.state.messages())


def attribute_values(sandbox: BrazeSandbox, attribute: str) -> dict[str, Any]:
    """``external_id`` → value of one custom attribute, for profiles that have it."""
    return {
        p["external_id"]: p["attributes"][attribute]
        for p in sandbox.state.profiles()
        if p.get("external_id") and attribute in p.get("attributes", {})
    }


def committed_members(
    state: Path, audience: str = "12", split: str = "1", namespace: str = "braze_default"
) -> tuple[str | None, set[str]]:
    """The committed snapshot key and members of one split (``(None, set())`` when none)."""
    directory = state / "audiences" / namespace / audience / split
    manifest = directory / "manifest.json"
    if not manifest.exists():
        return None, set()
    info = json.loads(manifest.read_text())
    table = pq.read_table(directory / info["data_file"])
    return info["snapshot_key"], set(table.column("identifier").to_pylist())


def fork_operator(
    class_path: str, kwargs: dict[str, Any], env: dict[str, str], *, run_id: str, try_number: int
) -> int:
    """Run an operator's ``execute`` in a forked child (no interpreter start-up: a trial costs ms).

    The child inherits the imported modules; it points ``braze_default`` at the sandbox through
    ``env`` and exits with 0 on success, 1 on an exception. Returns the child's pid.
    """
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # pragma: no cover - runs in the child
        os.environ.update(env)
        tempfile.tempdir = None  # honour the child's TMPDIR
        module, _, name = class_path.rpartition(".")
        import importlib

        operator = getattr(importlib.import_module(module), name)(**kwargs)
        operator.execute(context(operator.task_id, run_id, try_number))
        code = 0
    finally:
        os._exit(code)


def kill_when(pid: int, ready: Callable[[], bool], timeout: float = 60.0) -> bool:
    """SIGKILL the child once ``ready()`` holds; return whether it was killed before it finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
        if ready():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return True
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("the child neither finished nor reached the kill point in time")
