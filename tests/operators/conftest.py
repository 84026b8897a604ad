"""Fixtures for running operators against the sandbox.

``run_task`` calls ``execute`` with the one piece of context the operators read (the task
instance's identity): the narrow seam that lets these tests run without a metadata database.
Full runs under ``airflow dags test`` live in ``tests/e2e``.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import BaseOperator

from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.braze_sandbox import connection_env


@pytest.fixture
def sandbox(braze_sandbox: BrazeSandbox, monkeypatch: pytest.MonkeyPatch) -> BrazeSandbox:
    """A sandbox with ``braze_default`` pointing at it."""
    point_default_connection_at(braze_sandbox, monkeypatch)
    return braze_sandbox


def point_default_connection_at(sandbox: BrazeSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``braze_default`` an ``AIRFLOW_CONN_`` connection to the sandbox."""
    for name, value in connection_env(sandbox).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def run_task() -> Callable[..., dict[str, Any]]:
    """Run an operator's ``execute`` as task instance ``dag.<task_id>`` of ``run_id``, try ``try_number``."""

    def run(
        op: BaseOperator, *, run_id: str = "manual__1", try_number: int = 1, **context: Any
    ) -> dict[str, Any]:
        ti = SimpleNamespace(
            dag_id="dag", task_id=op.task_id, run_id=run_id, map_index=-1, try_number=try_number
        )
        return op.execute({"ti": ti, **context})

    return run


def write_csv(path: Path, header: list[str], rows: Iterable[list[Any]], *, gz: bool = False) -> Path:
    """Write a staged CSV file (gzip-compressed with ``gz``) with a header row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if gz else open)(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """Read a JSON Lines file given as a path or ``file://`` URI."""
    with open(path.removeprefix("file://"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def assert_invariant(result: dict[str, Any]) -> None:
    """rows_read == sent + rejected + skipped + uncertain."""
    assert (
        result["rows_read"] == result["sent"] + result["rejected"] + result["skipped"] + result["uncertain"]
    )
