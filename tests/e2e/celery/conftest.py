"""The docker-compose stack run natively for one test module: PostgreSQL and Redis from Debian's
packages, the Braze sandbox, ``airflow-init``, the api-server, scheduler, dag-processor, triggerer
and two Celery workers (concurrency 2), each a separate process with its container's environment
read from ``docker-compose.yaml`` (see ``compose.py``), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.celery.compose import Container, NativeCompose, load_compose
from tests.e2e.celery.services import (
    INSTALL_HINT,
    free_port,
    missing_services,
    running_postgres,
    running_redis,
)

#: What ``docs/docker-compose.md`` puts in ``.env``.
ENV_FILE = {"AIRFLOW_UID": str(os.getuid())}
#: Set on top of every Airflow container's environment: the compose file's 300 s would make the test
#: wait five minutes for Airflow to notice the killed worker's tasks.
TIMING = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30"}
WORKERS = ("airflow-worker-1", "airflow-worker-2")
WORKER_CONCURRENCY = 2
START_TIMEOUT = 300


@dataclass
class Stack:
    """The running stack and clients for its REST API and the sandbox's admin API."""

    compose: NativeCompose
    api_url: str
    sandbox_url: str
    sandbox_key: str
    journal: Path
    staging: Path
    containers: dict[str, Container] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2<path>``; fail on an error status; return the JSON answer."""
        answer = self.session.request(method, f"{self.api_url}/api/v2{path}", timeout=60, **kwargs)
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
        return answer.json() if answer.content else None

    def sandbox(self, what: str, **kwargs: Any) -> Any:
        """One admin API answer of the sandbox (``/_sandbox/<what>``)."""
        method = "POST" if "json" in kwargs else "GET"
        answer = requests.request(method, f"{self.sandbox_url}/_sandbox/{what}", timeout=60, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def braze(self, endpoint: str, body: dict[str, Any]) -> None:
        """A Braze REST call to the sandbox with the compose file's key."""
        answer = requests.post(
            f"{self.sandbox_url}{endpoint}",
            json=body,
            headers={"Authorization": f"Bearer {self.sandbox_key}"},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text

    def wait(self, what: str, check: Any, timeout: float, interval: float = 2.0) -> Any:
        """Poll ``check`` until it returns something true (HTTP errors count as not yet)."""

        def guarded() -> Any:
            try:
                return check()
            except (requests.RequestException, AssertionError):
                return None

        return self.compose.wait(what, guarded, timeout, interval)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run without a logical date; its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def unpause(self, *dag_ids: str) -> None:
        for dag_id in dag_ids:
            self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """Wait until a run has finished; its state."""
        state: str = self.wait(
            f"{dag_id} {run_id} to finish",
            lambda: (s := self.run_state(dag_id, run_id)) in ("success", "failed") and s,
            timeout,
        )
        return state

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 100}
        )["task_instances"]
        return found

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        found: list[dict[str, Any]] = self.api("GET", path)["task_instances"]
        return found

    def result(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        """A task's ``return_value`` XCom."""
        entry = self.api(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index},
        )
        value = entry["value"]
        while isinstance(value, str):
            value = json.loads(value)
        return value


def _login(stack: Stack, user: str, password: str) -> None:
    """A JWT from the FAB auth manager, as the UI gets one."""
    answer = stack.session.post(
        f"{stack.api_url}/auth/token", json={"username": user, "password": password}, timeout=60
    )
    assert answer.status_code in (200, 201), answer.text
    stack.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The compose stack, started in ``depends_on`` order, every health check of the file passing.

    Its folder is its own (not pytest's ``tmp_path``, which other pytest sessions of the same user
    prune while this one runs); it is removed afterwards unless ``AIQ_E2E_KEEP`` is set.
    """
    missing = missing_services()
    if missing:
        message = f"{', '.join(missing)} not installed: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="aiq-e2e-compose-"))
    (root / "logs").mkdir()
    try:
        yield from _stack(root)
    finally:
        if not os.environ.get("AIQ_E2E_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def _stack(root: Path) -> Iterator[Stack]:
    postgres_env = load_compose()["services"]["postgres"]["environment"]
    with (
        running_postgres(
            user=postgres_env["POSTGRES_USER"],
            password=postgres_env["POSTGRES_PASSWORD"],
            database=postgres_env["POSTGRES_DB"],
            log=root / "logs" / "postgres.log",
        ) as postgres,
        running_redis(root / "logs" / "redis.log") as redis_port,
    ):
        api_port, sandbox_port, health_port = free_port(), free_port(), free_port()
        addresses = {
            ("postgres", 5432): postgres.port,
            ("redis", 6379): redis_port,
            ("airflow-apiserver", 8080): api_port,
            ("sandbox", 4010): sandbox_port,
        }
        native = NativeCompose(root, variables=ENV_FILE, addresses=addresses, overrides=TIMING)
        with native.running():
            yield _start(native, api_port, sandbox_port, health_port)


def _start(native: NativeCompose, api_port: int, sandbox_port: int, health_port: int) -> Stack:
    containers = {
        "sandbox": native.container("sandbox", "sandbox", published={4010: sandbox_port}),
        "airflow-init": native.container("airflow-init", "airflow-init"),
        # one host, two cores: one api-server worker process instead of Airflow's default four
        "airflow-apiserver": native.container(
            "airflow-apiserver", "airflow-apiserver", {8080: api_port}, {"AIRFLOW__API__WORKERS": "1"}
        ),
        "airflow-scheduler": native.container(
            "airflow-scheduler",
            "airflow-scheduler",
            {8974: health_port},
            {
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
            },
        ),
        "airflow-dag-processor": native.container("airflow-dag-processor", "airflow-dag-processor"),
        "airflow-triggerer": native.container("airflow-triggerer", "airflow-triggerer"),
        **{worker: native.container("airflow-worker", worker) for worker in WORKERS},
    }
    sandbox = containers["sandbox"]
    key = sandbox.service.command()[sandbox.service.command().index("--api-key") + 1]
    journal = native.root / "braze-journal.jsonl"
    stack = Stack(
        compose=native,
        api_url=f"http://127.0.0.1:{api_port}",
        sandbox_url=f"http://127.0.0.1:{sandbox_port}",
        sandbox_key=key,
        journal=journal,
        staging=native.project / "staging",
        containers=containers,
    )
    # the same flags again, last wins: listen on 127.0.0.1 and the local port; journal every request
    native.start(sandbox, ["--host", "127.0.0.1", "--port", str(sandbox_port), "--journal", str(journal)])
    native.wait("the sandbox's health check", lambda: native.healthy(sandbox), START_TIMEOUT)
    native.run_init(containers["airflow-init"])
    native.start(containers["airflow-apiserver"], ["--host", "127.0.0.1", "--port", str(api_port)])
    for name in ("airflow-scheduler", "airflow-dag-processor"):
        native.start(containers[name])
    native.start(containers["airflow-triggerer"], ["--skip-serve-logs"])
    native.wait(
        "the api-server's health check",
        lambda: native.healthy(containers["airflow-apiserver"]),
        START_TIMEOUT,
    )
    for worker in WORKERS:  # log serving skipped: it listens on every interface, and logs/ is shared
        native.start(
            containers[worker],
            [
                "--concurrency", str(WORKER_CONCURRENCY), "--celery-hostname", f"celery@{worker}",
                "--skip-serve-logs",
            ],
        )  # fmt: skip
    for name in ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", *WORKERS):
        native.wait(f"{name}'s health check", lambda n=name: native.healthy(containers[n]), START_TIMEOUT, 3)
    init = containers["airflow-init"].env
    _login(stack, init["_AIRFLOW_WWW_USER_USERNAME"], init["_AIRFLOW_WWW_USER_PASSWORD"])
    return stack
