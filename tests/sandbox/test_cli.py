"""The command line: ``python -m airflow_provider_aiq_braze.sandbox``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from airflow_provider_aiq_braze.sandbox import SandboxStartError, start_sandbox_process
from airflow_provider_aiq_braze.sandbox.__main__ import build_parser, config_from_args, main

KEY = "sk-CLI-test-key-0001"


def _start(*args: str, port_file: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "airflow_provider_aiq_braze.sandbox",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        *args,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_port(process: subprocess.Popen[str], port_file: Path) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if port_file.exists():
            return int(port_file.read_text())
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("the sandbox did not start")


def test_help_lists_every_flag():
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_aiq_braze.sandbox", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for flag in (
        "--host",
        "--port",
        "--api-key",
        "--object-count-rule",
        "--latency-ms",
        "--jitter-ms",
        "--error-rate",
        "--reset-rate",
        "--drop-after-process-rate",
        "--seed",
        "--users-track-rate",
        "--messaging-rate",
        "--journal",
        "--properties-max-bytes",
        "--port-file",
        "--verbose",
        "--export-rate",
        "--campaign",
        "--refuse-id",
        "--refuse-prefix",
        "--hostile",
        "--hostile-rate",
        "--redirect-status",
    ):
        assert flag in result.stdout


def test_every_flag_is_documented():
    documented = (Path(__file__).parents[2] / "docs" / "sandbox.md").read_text()
    flags = [option for action in build_parser()._actions for option in action.option_strings]
    assert [f for f in flags if f.startswith("--") and f != "--help" and f"`{f}" not in documented] == []


def test_refusal_campaign_and_hostile_flags():
    args = build_parser().parse_args(
        [
            "--api-key",
            "k",
            "--refuse-id",
            "u1",
            "--refuse-id",
            "u2",
            "--refuse-prefix",
            "bot-",
            "--campaign",
            "camp-1",
            "--hostile",
            "truncated_body=2",
            "--hostile",
            "echo_key=1",
            "--hostile-rate",
            "unprocessable=0.25",
            "--redirect-status",
            "308",
            "--export-rate",
            "2500/60",
        ]
    )
    config = config_from_args(args)
    assert config.refusals.as_dict() == {"ids": ["u1", "u2"], "prefixes": ["bot-"]}
    assert config.campaigns == ("camp-1",)
    faults = config.faults
    assert (faults.truncated_body_requests, faults.echo_key_requests, faults.unprocessable_rate) == (
        2,
        1,
        0.25,
    )
    assert faults.redirect_status == 308
    assert (config.export_rate.requests, config.export_rate.seconds) == (2500, 60.0)


def test_cli_refuses_identifiers(tmp_path):
    port_file = tmp_path / "port"
    process = _start("--api-key", KEY, "--refuse-prefix", "bot-", port_file=port_file)
    try:
        port = _wait_for_port(process, port_file)
        response = requests.post(
            f"http://127.0.0.1:{port}/users/track",
            json={"events": [{"external_id": "bot-1", "name": "x", "time": "2024-05-01T00:00:00Z"}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
        )
        assert response.status_code == 400
        assert response.json()["errors"][0]["type"] == "provided external_id is blacklisted and disallowed"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def test_cli_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port_file = tmp_path / "port"
    process = _start(
        "--api-key", KEY, "--api-key", "sk-limited:users.export.ids", "--verbose", port_file=port_file
    )
    try:
        port = _wait_for_port(process, port_file)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"Braze sandbox listening on http://127.0.0.1:{port}"
        base = f"http://127.0.0.1:{port}"
        ok = requests.post(
            f"{base}/users/track",
            json={"attributes": [{"external_id": "u1", "a": 1}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
        )
        assert ok.status_code == 201
        limited = requests.post(
            f"{base}/users/track",
            json={"attributes": []},
            headers={"Authorization": "Bearer sk-limited"},
            timeout=10,
        )
        assert limited.status_code == 403
        stats = requests.get(f"{base}/_sandbox/stats", timeout=10).json()
        assert stats["data_points"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "/users/track" in stderr  # --verbose logs request lines ...
    assert KEY not in stderr  # ... never the Authorization header


def test_cli_sigint_also_stops(tmp_path):
    port_file = tmp_path / "port"
    process = _start("--api-key", KEY, port_file=port_file)
    _wait_for_port(process, port_file)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_main_requires_an_api_key(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--port", "0"])
    assert exit_.value.code == 2
    assert "--api-key" in capsys.readouterr().err


def test_flags_map_onto_the_config(tmp_path):
    args = build_parser().parse_args(
        [
            "--api-key",
            "k1",
            "--api-key",
            "k2:users.track,campaigns.list",
            "--object-count-rule",
            "combined-50",
            "--latency-ms",
            "5",
            "--jitter-ms",
            "2",
            "--error-rate",
            "0.1",
            "--reset-rate",
            "0.2",
            "--drop-after-process-rate",
            "0.05",
            "--seed",
            "7",
            "--users-track-rate",
            "10/1",
            "--messaging-rate",
            "5/60",
            "--journal",
            str(tmp_path / "j.jsonl"),
            "--properties-max-bytes",
            "1000",
            "--fault-endpoint",
            "/users/track",
        ]
    )
    config = config_from_args(args)
    assert config.api_keys == {"k1": None, "k2": frozenset({"users.track", "campaigns.list"})}
    assert config.object_count_rule.value == "combined-50"
    assert (config.faults.latency_ms, config.faults.jitter_ms) == (5, 2)
    assert (config.faults.error_rate, config.faults.reset_rate, config.faults.drop_after_process_rate) == (
        0.1,
        0.2,
        0.05,
    )
    assert config.faults.endpoints == ("/users/track",)
    assert config.seed == 7
    assert (config.users_track_rate.requests, config.users_track_rate.seconds) == (10, 1.0)
    assert (config.messaging_rate.requests, config.messaging_rate.seconds) == (5, 60.0)
    assert config.properties_max_bytes == 1000
    assert config.journal == tmp_path / "j.jsonl"


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", "k:no.such.permission"],
        ["--api-key", "k", "--error-rate", "2"],
        ["--api-key", "k", "--users-track-rate", "fast"],
        ["--api-key", "k", "--hostile", "bogus=1"],
        ["--api-key", "k", "--hostile", "empty_body"],
        ["--api-key", "k", "--hostile-rate", "empty_body=x"],
        ["--api-key", "k", "--hostile-rate", "empty_body=3"],
        ["--api-key", "k", "--redirect-status", "200"],
        ["--api-key", "k", "--refuse-prefix", ""],
    ],
)
def test_invalid_flag_values_are_usage_errors(argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_start_sandbox_process_waits_for_the_port_and_reports_a_failed_start(tmp_path: Path) -> None:
    process, base_url = start_sandbox_process("--api-key", KEY, port_file=tmp_path / "port")
    try:
        assert requests.get(f"{base_url}/_sandbox/stats", timeout=10).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    with pytest.raises(SandboxStartError, match="exited with status 2"):
        start_sandbox_process("--no-such-flag", port_file=tmp_path / "never")
