"""Run the sandbox as a child process (so its CPU is not the caller's) and wait until it listens."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


class SandboxStartError(RuntimeError):
    """The sandbox process exited, or did not write its port in time."""


def start_sandbox_process(
    *args: str, port_file: Path, start_new_session: bool = False, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m airflow_provider_aiq_braze.sandbox --port 0 --port-file PORT_FILE ARGS``.

    :param args: further sandbox flags (``--api-key``, ``--latency-ms``, …).
    :param port_file: where the sandbox writes the port it listens on.
    :param start_new_session: run it in its own session (to stop it with everything it started).
    :param timeout: seconds to wait for the port.
    :return: the process and the sandbox's base URL (``http://127.0.0.1:PORT``).
    :raises SandboxStartError: when it exits or does not listen within ``timeout``; the process
        is killed first.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_aiq_braze.sandbox",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            *args,
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=start_new_session,
    )
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None:
            raise SandboxStartError(f"the Braze sandbox exited with status {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise SandboxStartError(f"the Braze sandbox did not start within {timeout:.0f} s")
        time.sleep(0.02)
    return process, f"http://127.0.0.1:{int(port_file.read_text())}"
