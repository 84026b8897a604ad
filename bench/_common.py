"""Shared pieces of the benchmarks: a sandbox in its own process, sample data, memory."""

from __future__ import annotations

import csv
import gzip
import os
import resource
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow_provider_aiq_braze.sandbox.process import start_sandbox_process

#: The key the benchmark sandboxes accept.
BENCH_API_KEY = "sk-bench-not-a-real-key"


class SandboxProcess:
    """The Braze sandbox in a child process (so its CPU is not the client's).

    :param args: extra sandbox flags, e.g. ``["--latency-ms", "50"]``.
    """

    def __init__(self, *args: str) -> None:
        self._dir = tempfile.mkdtemp(prefix="bench-sandbox-")
        self.process, self.base_url = start_sandbox_process(
            "--api-key", BENCH_API_KEY, "--log-limit", "1000", *args, port_file=Path(self._dir) / "port"
        )

    def use_as_default_connection(self) -> None:
        """Point ``braze_default`` at this sandbox through ``AIRFLOW_CONN_BRAZE_DEFAULT``."""
        os.environ["AIRFLOW_CONN_BRAZE_DEFAULT"] = (
            f'{{"conn_type": "braze", "host": "{self.base_url}", "password": "{BENCH_API_KEY}"}}'
        )

    def stats(self) -> dict[str, Any]:
        """The sandbox's ``/_sandbox/stats``."""
        import requests

        return dict(requests.get(f"{self.base_url}/_sandbox/stats", timeout=30).json())

    def stop(self) -> None:
        """Stop the child."""
        self.process.terminate()
        self.process.wait(timeout=30)


#: The columns of :func:`write_events_csv`.
EVENT_COLUMNS = ["event_name", "external_id", "braze_id", "timestamp", "product", "price"]


def write_events_csv(path: Path, rows: int, *, gz: bool = False) -> Path:
    """Write ``rows`` realistic event rows (5 columns + 2 properties).

    :param path: the file to write.
    :param rows: how many rows.
    :param gz: gzip the file.
    """
    opener: Any = gzip.open if gz else open
    with opener(path, "wt", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(EVENT_COLUMNS)
        for i in range(rows):
            writer.writerow(
                [
                    "viewed_product",
                    f"user-{i % 500_000}",
                    "",
                    f"2026-11-01T{i % 24:02d}:{i % 60:02d}:00Z",
                    f"sku-{i % 977}",
                    f"{(i % 100) + 0.99:.2f}",
                ]
            )
    return path


def fake_context(task_id: str, run_id: str = "bench") -> dict[str, Any]:
    """The piece of task context the operators read."""
    return {"ti": SimpleNamespace(dag_id="bench", task_id=task_id, run_id=run_id, map_index=-1, try_number=1)}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
