"""Real Airflow runs: a temporary AIRFLOW_HOME on SQLite and ``airflow dags test``."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).parent / "dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@dataclass
class AirflowHome:
    """A migrated Airflow home whose dags folder holds ``tests/e2e/dags``."""

    path: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of an ``airflow`` command in this home."""
        return {
            **os.environ,
            "AIRFLOW_HOME": str(self.path),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.path / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra,
        }

    def dags_test(self, dag_id: str, logical_date: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``airflow dags test`` and return the finished process (output captured)."""
        return subprocess.run(
            [AIRFLOW, "dags", "test", dag_id, logical_date],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def xcom(self, dag_id: str, task_id: str, run_id_like: str = "%") -> list[Any]:
        """The ``return_value`` XComs of a task, oldest first."""
        with sqlite3.connect(self.path / "airflow.db") as db:
            rows = db.execute(
                "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
                "AND run_id LIKE ? ORDER BY timestamp",
                (dag_id, task_id, run_id_like),
            ).fetchall()
        values = []
        for (value,) in rows:
            text = value.decode() if isinstance(value, bytes) else value
            values.append(json.loads(text) if isinstance(text, str) else text)
        return values

    def files_containing(self, needle: str) -> list[Path]:
        """Every file under the home whose bytes contain ``needle``."""
        hits = []
        for path in self.path.rglob("*"):
            if path.is_file() and needle.encode() in path.read_bytes():
                hits.append(path)
        return hits


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowHome]:
    """An Airflow home migrated once per test session."""
    home = AirflowHome(tmp_path_factory.mktemp("airflow_home"))
    shutil.copytree(DAGS, home.path / "dags")
    migrated = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=home.env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    yield home
