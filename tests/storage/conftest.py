"""Fixtures of the storage tests: the same test on local files and on the test S3 server.

``store`` is parametrized ``local`` / ``s3``: ``store.uri("a/b.jsonl")`` is a location under a fresh
root (a temporary directory, or a fresh bucket of :func:`tests.conftest.s3_server`), and
``store.path(...)`` its ``ObjectStoragePath``. ``Worker`` runs ``tests/storage/worker.py`` in a
separate process and collects what it prints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import storage_path
from tests.conftest import S3Bucket

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Store:
    """Where a test writes: a local directory or an S3 bucket.

    :param kind: ``local`` or ``s3``.
    :param root: the root URI.
    :param conn_id: the connection (S3 only).
    :param bucket: the bucket (S3 only), to count requests.
    """

    kind: str
    root: str
    conn_id: str | None = None
    bucket: S3Bucket | None = None

    def uri(self, name: str) -> str:
        """The location of ``name`` under the root."""
        return f"{self.root}/{name}"

    def path(self, name: str) -> ObjectStoragePath:
        """The ``ObjectStoragePath`` of ``name`` under the root."""
        return storage_path(self.uri(name), self.conn_id)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A fresh local directory, or a fresh bucket on the test S3 server."""
    if request.param == "local":
        return Store("local", f"file://{tmp_path}")
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return Store("s3", bucket.root, bucket.conn_id, bucket)


class Worker:
    """``python -m tests.storage.worker <args>`` in its own process; its events as they come."""

    def __init__(self, **args: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.worker", json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not an event (a log line of a library)
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def first(self, *names: str, timeout: float = 120) -> dict[str, Any]:
        """The first event named one of ``names``, waiting for it (fails on timeout or exit)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self.events:
                    if event["event"] in names:
                        return event
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"worker exited without {names}: {self.events} {self.stderr()}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no {names} within {timeout} s: {self.events}")
                self._changed.wait(0.1)

    def named(self, name: str) -> list[dict[str, Any]]:
        """Every event of that name so far."""
        with self._changed:
            return [event for event in self.events if event["event"] == name]

    def finish(self, timeout: float = 120) -> list[dict[str, Any]]:
        """Wait for the process to end; its events."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        assert self.process.returncode == 0, self.stderr()
        return self.events

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read()[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture
def workers() -> Any:
    """Start :class:`Worker` processes; every one still running is killed at the end of the test."""
    started: list[Worker] = []

    def start(**args: Any) -> Worker:
        worker = Worker(**args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
