"""Run one operator's ``execute`` in a child process, so a test can SIGKILL it mid-run.

Usage: ``python -m tests.operators.operator_process '<json spec>'`` where the spec holds
``class`` (dotted path), ``kwargs``, ``run_id`` and ``try_number``. The result is printed as JSON,
and written to the spec's ``result_path`` when given (``{"error": "..."}`` when ``execute`` raised).
With ``wait_for`` (a path), ``execute`` starts only once that file exists, so a test can start
several children at the same moment after their imports.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def main() -> None:
    spec = json.loads(sys.argv[1])
    module, _, name = spec["class"].rpartition(".")
    operator = getattr(importlib.import_module(module), name)(**spec["kwargs"])
    ti = SimpleNamespace(
        dag_id="dag",
        task_id=operator.task_id,
        run_id=spec["run_id"],
        map_index=-1,
        try_number=spec["try_number"],
    )
    result_path = spec.get("result_path")
    if spec.get("wait_for"):
        deadline = time.monotonic() + 120
        while not os.path.exists(spec["wait_for"]) and time.monotonic() < deadline:
            time.sleep(0.005)
    try:
        result = operator.execute({"ti": ti, **spec.get("context", {})})
    except BaseException as exc:
        if result_path:
            Path(result_path).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        raise
    if result_path:
        Path(result_path).write_text(json.dumps(result, default=str))
    print(json.dumps(result, default=str))


def start(
    spec: dict[str, Any], env: dict[str, str], *, log_path: str | None = None
) -> subprocess.Popen[bytes]:
    """Start the child process.

    :param spec: what to run.
    :param env: extra environment (the Braze connection).
    :param log_path: a file for the child's output (the task log); discarded when omitted.
    """
    root = Path(__file__).resolve().parents[2]
    output: Any = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (the child owns it)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.operators.operator_process", json.dumps(spec)],
            cwd=root,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT if log_path else subprocess.DEVNULL,
        )
    finally:
        if log_path:
            output.close()


def kill_when(process: subprocess.Popen[bytes], ready: Any, timeout: float = 60.0) -> bool:
    """SIGKILL the child once ``ready()`` is true; return whether it was killed mid-run.

    :param process: the child.
    :param ready: a predicate polled every 5 ms.
    :param timeout: give up waiting after this many seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if ready():
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.005)
    process.wait()
    return False


if __name__ == "__main__":
    main()
