"""A backfill of the nightly audience refresh, started through the REST API as the UI does, run by
a real scheduler, dag-processor and api-server (LocalExecutor, SQLite) against the Braze sandbox.

Three days of snapshots with churn are staged; the backfill applies them in order; afterwards the
sandbox's profiles hold the last day's membership, every exit applied, and Braze was billed exactly
the deltas (not three full re-syncs).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_aiq_braze.demo_data import DemoData, generate
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_ID = "aiq_braze_audience_refresh"
#: Bounded waits (polling; no assertion on durations).
START_TIMEOUT = 120
BACKFILL_TIMEOUT = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process group started with ``start_new_session=True``; kill it if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # children of the group that outlived their parent (task runners, api workers)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


class RunningAirflow:
    """Scheduler, dag-processor and api-server in one Airflow home, plus a REST client."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home, self.env, self.port = home, env, port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.session = requests.Session()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *command: str) -> None:
        log = (self.home / f"{command[0]}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [AIRFLOW, *command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)
        self.session.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.home.glob("*.log"))
        )

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                assert process.poll() is None, f"{process.args} exited\n{self.logs()}"
            try:
                value = check()
            except requests.RequestException:
                value = None
            if value:
                return value
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kwargs)

    def login(self) -> None:
        """Get a JWT as the UI does with the simple auth manager in all-admins mode."""
        answer = self.session.get(f"{self.url}/auth/token", timeout=30)
        assert answer.status_code in (200, 201), answer.text
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, DemoData]:
    staging = tmp_path / "staging"
    return staging, generate(staging, users=300, events=10, bulk_events=10, segment_size=5)


@pytest.fixture
def airflow(
    tmp_path: Path, braze_sandbox: BrazeSandbox, staged: tuple[Path, DemoData]
) -> Iterator[RunningAirflow]:
    home = tmp_path / "airflow_home"
    home.mkdir()
    shutil.copytree(ROOT / "dags", home / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    port = _free_port()
    connection = {"conn_type": "braze", "host": braze_sandbox.base_url, "password": braze_sandbox.api_key}
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        # Airflow 3.1 with PyJWT >= 2.10 refuses tokens without a string issuer
        "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-e2e",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_BRAZE_DEFAULT": json.dumps(connection),
        "AIQ_STAGING_PATH": str(staged[0]),
        "AIQ_STATE_PATH": str(tmp_path / "state"),
    }
    migrated = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert migrated.returncode == 0, migrated.stdout[-3000:] + migrated.stderr[-3000:]
    running = RunningAirflow(home, env, port)
    try:
        running.start("api-server", "--host", "127.0.0.1", "--port", str(port))
        running.start("scheduler")
        running.start("dag-processor")
        yield running
    finally:
        running.stop()
    for process in running.processes:
        assert process.poll() is not None


def _seed(sandbox: BrazeSandbox, users: list[str]) -> int:
    """Create the users in Braze first: the sync only updates existing profiles."""
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    for start in range(0, len(users), 75):
        attributes = [{"external_id": uid, "first_name": uid} for uid in users[start : start + 75]]
        answer = requests.post(
            f"{sandbox.base_url}/users/track", json={"attributes": attributes}, headers=headers, timeout=30
        )
        assert answer.status_code == 201, answer.text
    return sandbox.state.data_points


def _expected_data_points(data: DemoData) -> int:
    """Attribute writes of applying each day's delta: entries, then exits (set to false)."""
    total, before = 0, {name: set() for name in data.final_membership()}  # type: dict[str, set[str]]
    for day in data.days:
        now = data.membership[day]
        total += sum(len(now[name] ^ before[name]) for name in now)
        before = now
    return total


def test_backfill_from_the_api_applies_each_day_in_order(
    airflow: RunningAirflow, braze_sandbox: BrazeSandbox, staged: tuple[Path, DemoData]
) -> None:
    _, data = staged
    seed_points = _seed(braze_sandbox, data.users)

    airflow.wait_for("the api-server", lambda: airflow.api("GET", "/monitor/health").ok, START_TIMEOUT)
    airflow.login()
    airflow.wait_for("the DAG to be parsed", lambda: airflow.api("GET", f"/dags/{DAG_ID}").ok, START_TIMEOUT)
    unpaused = airflow.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
    assert unpaused.status_code == 200, unpaused.text

    window = {
        "dag_id": DAG_ID,
        "from_date": "2025-06-01T00:00:00Z",
        "to_date": "2025-06-03T23:59:59Z",
        "run_backwards": False,
        "max_active_runs": 1,
        "reprocess_behavior": "none",
        "dag_run_conf": {},
    }
    dry_run = airflow.api("POST", "/backfills/dry_run", json=window)
    assert dry_run.status_code == 200, dry_run.text
    assert [b["logical_date"][:10] for b in dry_run.json()["backfills"]] == [d.isoformat() for d in data.days]

    # On SQLite, Airflow answers 503 "Database is locked" when the scheduler writes at the same
    # moment, and asks to try again: do what a user clicking "Run backfill" again would do.
    for _ in range(10):
        created = airflow.api("POST", "/backfills", json=window)
        if created.status_code != 503 or "Database is locked" not in created.text:
            break
        time.sleep(1)
    assert created.status_code == 200, created.text
    backfill_id = created.json()["id"]

    def finished_runs() -> list[dict[str, Any]] | None:
        runs = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]
        ours = [r for r in runs if r.get("run_type") == "backfill"]
        if len(ours) == len(data.days) and all(r["state"] in ("success", "failed") for r in ours):
            return ours
        return None

    runs = airflow.wait_for("the backfill runs", finished_runs, BACKFILL_TIMEOUT)
    assert sorted(r["state"] for r in runs) == ["success"] * len(data.days), airflow.logs()
    intervals = sorted(r["data_interval_start"][:10] for r in runs)
    assert intervals == [d.isoformat() for d in data.days]
    airflow.wait_for(
        "the backfill to be marked complete",
        lambda: airflow.api("GET", f"/backfills/{backfill_id}").json().get("completed_at"),
        60,
    )

    # Braze now holds the last day's membership; those who left got false; the rest nothing
    ever = {
        name: set().union(*(data.membership[d][name] for d in data.days)) for name in data.final_membership()
    }
    for name, members in data.final_membership().items():
        for uid in data.users:
            value = braze_sandbox.state.profile(uid)["attributes"].get(name)  # type: ignore[index]
            if uid in members:
                assert value is True, (uid, name)
            elif uid in ever[name]:
                assert value is False, (uid, name)
            else:
                assert value is None, (uid, name)
    # billed exactly the deltas of the three days
    assert braze_sandbox.state.data_points - seed_points == _expected_data_points(data)
    assert len(braze_sandbox.state.profiles()) == len(data.users)  # no profile created by the sync
