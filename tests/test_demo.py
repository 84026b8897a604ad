"""``make demo`` end to end: a subprocess, its report, and nothing left running afterwards."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from airflow_provider_aiq_braze.demo import DEMO_API_KEY

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "demo-home"
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_aiq_braze.demo", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]

    # what Braze received, as printed
    assert "FAILED" not in output
    for check in (
        "three audience syncs ran",
        "data points spent = the sum of the deltas",
        "Braze profiles match the 2025-06-03 snapshot in every split",
        "every valid event arrived once",
        "the invalid event rows were rejected",
        "each segment member messaged exactly once",
    ):
        assert f"[ok] {check}" in output
    assert re.search(r"3 nightly syncs spent (\d+) data points; a full re-sync every night: (\d+)", output)
    assert re.search(r"u-\d{5}: AIQ_\d+_\d+=(True|False)", output)
    assert "braze_audience_braze_default: 3 event(s)" in output
    assert DEMO_API_KEY not in output

    # nothing left running: the sandbox's port is closed, no process refers to the demo home
    port = int(re.search(r"Braze sandbox at http://127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    leftovers = []
    for process in psutil.process_iter(["cmdline"]):
        if str(home) in " ".join(process.info["cmdline"] or []):
            leftovers.append(process.info["cmdline"])
    assert leftovers == []

    # the files it staged and the state it kept are in the home, the home is marked as the demo's
    assert (home / ".aiq-braze-demo").exists()
    assert sorted(p.name for p in (home / "staging" / "audiences").iterdir()) == [
        "2025-06-01",
        "2025-06-02",
        "2025-06-03",
    ]


def test_demo_refuses_to_wipe_a_directory_it_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_aiq_braze.demo", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "refusing to wipe it" in done.stdout + done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
