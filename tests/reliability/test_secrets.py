"""The API key appears nowhere: logs, exceptions, XComs, rendered fields, rejects, ledgers, state, dry runs.

Every operator runs (for real and as a dry run) and the hook fails in every way it can (401, 403,
5xx until it gives up, an unreachable host, an endpoint that is not Braze's REST endpoint, a
connection test of each) with the recognisable ``TEST_API_KEY``. Everything the runs produced is
then scanned for it: the stdlib log records (``caplog``, DEBUG and up, before any masking), the
process's stdout/stderr (``capfd``: Airflow's task logger writes there), every exception's full
formatted traceback, every returned dict, every rendered template field and every file under the
state folder.
"""

from __future__ import annotations

import json
import logging
import socket
import traceback
from pathlib import Path
from typing import Any

import pytest

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.braze.errors import BrazeError
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from tests.conftest import TEST_API_KEY
from tests.reliability._support import context, create_users, write_events, write_members, write_recipients

pytestmark = pytest.mark.timeout(120)

#: The key in forms a careless log line could carry it.
NEEDLES = (TEST_API_KEY, f"Bearer {TEST_API_KEY}", TEST_API_KEY[8:])


def assert_clean(text: str, where: str) -> None:
    """No form of the key in ``text``."""
    for needle in NEEDLES:
        assert needle not in text, f"the API key leaked into {where}"


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def formatted(exc: BaseException) -> str:
    """The exception as a task log shows it, with its causes and context."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


def operators(tmp_path: Path, **extra: Any) -> list[Any]:
    """One operator of each kind, with templated fields, over small staged inputs."""
    events = write_events(tmp_path / "in" / "events.csv", 160)
    recipients = write_recipients(tmp_path / "in" / "recipients.csv", [f"u{i}" for i in range(60)])
    members = write_members(tmp_path / "in" / "members.csv", [f"u{i}" for i in range(100)])
    state = str(tmp_path / "state")
    common: dict[str, Any] = {"state_path": state, **extra}
    return [
        BrazeEventExportOperator(task_id="events", source=str(events), **common),
        BrazeCampaignTriggerOperator(
            task_id="campaign",
            source=str(recipients),
            campaign_id="{{ params.campaign }}",
            trigger_properties='{"run": "{{ run_id }}"}',
            **common,
        ),
        BrazeAudienceMembershipOperator(
            task_id="audience",
            source=str(members),
            snapshot_key="{{ ds }}",
            update_existing_only=False,
            **common,
        ),
    ]


def render(op: Any) -> dict[str, Any]:
    """Render the operator's template fields as a task run would; return their values."""
    ctx: dict[str, Any] = {
        **context(op.task_id),
        "ds": "2026-11-28",
        "run_id": "scheduled__2026-11-28",
        "params": {"campaign": "camp-1"},
    }
    op.render_template_fields(ctx)
    return {name: getattr(op, name) for name in op.template_fields}


def test_operators_never_expose_the_key(
    sandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    assert sandbox.api_key == TEST_API_KEY
    caplog.set_level(logging.DEBUG)
    create_users(sandbox, [f"u{i}" for i in range(60)])
    outputs: list[Any] = []
    for dry_run in (True, False):
        for op in operators(tmp_path, dry_run=dry_run):
            fields = render(op)
            outputs.append(fields)
            result = op.execute(context(op.task_id, run_id="scheduled__2026-11-28"))
            assert result["rows_read"] > 0 and result["dry_run"] is dry_run
            outputs.append(result)
    assert len(sandbox.state.events()) == 160 and len(sandbox.state.messages()) == 60
    state_files = files_under(tmp_path / "state")
    kinds = {Path(p).suffix for p in state_files}
    assert {".jsonl", ".parquet", ".json"} <= kinds, kinds  # ledgers, dry runs, audience state
    for path, data in state_files.items():
        assert TEST_API_KEY.encode() not in data, f"the API key is in {path}"
    assert_clean(json.dumps(outputs, default=str), "an XCom result or a rendered template field")
    assert_clean(caplog.text, "the log records")
    out, err = capfd.readouterr()
    assert "Invariant holds" in out + err  # the task log was captured
    assert_clean(out + err, "stdout/stderr")


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_hook_failures_never_expose_the_key(
    braze_sandbox_factory,
    braze_connection,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    other_key = braze_sandbox_factory(api_key="sk-some-other-key")
    no_permission = braze_sandbox_factory(permissions=["sends.id.create"])
    failing = braze_sandbox_factory(error_rate=1.0, seed=1)
    cases = {
        "401": braze_connection("braze_401", host=other_key.base_url),
        "403": braze_connection("braze_403", host=no_permission.base_url),
        "5xx": braze_connection("braze_5xx", host=failing.base_url),
        "unreachable": braze_connection("braze_down", host=f"http://127.0.0.1:{closed_port()}"),
        "dashboard-url": braze_connection("braze_dashboard", host="https://dashboard-01.braze.com"),
        "not-a-url": braze_connection("braze_garbage", host="rest.iad-01.braze.com/ /x"),
        "quoted-key": braze_connection("braze_quoted", host=other_key.base_url, password=f'"{TEST_API_KEY}"'),
    }
    texts: list[str] = []
    for name, conn_id in cases.items():
        hook = BrazeHook(braze_conn_id=conn_id, backoff_base=0.01, backoff_max=0.05, max_attempts=3)
        with pytest.raises(BrazeError) as info:
            hook.track_users(events=[{"external_id": "u1", "name": "viewed", "time": "2026-11-28T10:00:00Z"}])
        texts.append(formatted(info.value))
        ok, message = BrazeHook(braze_conn_id=conn_id, backoff_base=0.01, max_attempts=2).test_connection()
        assert not ok, name
        texts.append(message)
    assert "401" in texts[0] and "403" in texts[2] and ("500" in texts[4] or "503" in texts[4])
    for text in texts:
        assert_clean(text, "a hook error message")
    assert_clean(caplog.text, "the log records")
    out, err = capfd.readouterr()
    assert_clean(out + err, "stdout/stderr")


@pytest.mark.parametrize("status", ["401", "403"])
def test_operator_failures_never_expose_the_key(
    status: str,
    braze_sandbox_factory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    if status == "401":
        sandbox = braze_sandbox_factory(api_key="sk-some-other-key")
    else:
        sandbox = braze_sandbox_factory(permissions=["sends.id.create"])
    conn = {"conn_type": "braze", "host": sandbox.base_url, "password": TEST_API_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", json.dumps(conn))
    texts = []
    for op in operators(tmp_path):
        render(op)  # as a task run would (the audience's snapshot_key must be a time stamp)
        with pytest.raises(AirflowException) as info:
            op.execute(context(op.task_id))
        assert status in str(info.value), str(info.value)
        texts.append(formatted(info.value))
    for text in texts:
        assert_clean(text, "a task failure")
    for path, data in files_under(tmp_path / "state").items():
        assert TEST_API_KEY.encode() not in data, f"the API key is in {path}"
    assert_clean(caplog.text, "the log records")
    out, err = capfd.readouterr()
    assert_clean(out + err, "stdout/stderr")


def test_braze_echoing_the_key_never_reaches_rejects_ledger_result_or_logs(
    braze_connection,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A hostile Braze repeats the key in every text it controls; none of it is stored or logged."""
    from tests.hooks.scripted_server import Recorded, Reply, ScriptedServer

    caplog.set_level(logging.DEBUG)
    key = TEST_API_KEY

    seen: list[str] = []

    def echo(request: Recorded) -> Reply:
        body = request.json()
        seen.append(request.path)
        array = "recipients" if "recipients" in body else "events"
        count = len(body[array])
        errors = [{"type": f"'{key}' is not a valid id", "input_array": array, "index": 0}, f"plain {key}"]
        if len(seen) == 1:  # the first batch: every object refused, 400 per item
            refused = [
                {"type": f"refused with {key}", "input_array": array, "index": i} for i in range(count)
            ]
            return Reply(400, {"message": f"Valid data must be provided {key}", "errors": refused})
        return Reply(201, {"message": f"success {key}", "dispatch_id": f"dispatch-{key}", "errors": errors})

    with ScriptedServer() as server:
        server.respond_with(echo)
        braze_connection("braze_default", host=server.url, password=f"  {key}\n")
        events = write_events(tmp_path / "in" / "events.csv", 25)
        recipients = write_recipients(tmp_path / "in" / "recipients.csv", [f"u{i}" for i in range(20)])
        common: dict[str, Any] = {
            "state_path": str(tmp_path / "state"),
            "max_workers": 1,
            "max_reject_ratio": 1,
        }
        results = [
            BrazeEventExportOperator(task_id="events", source=str(events), batch_size=10, **common).execute(
                context("events")
            ),
            BrazeCampaignTriggerOperator(
                task_id="campaign", source=str(recipients), campaign_id="c1", batch_size=10, **common
            ).execute(context("campaign")),
        ]
    assert results[0]["rejected"] == 10 + 1 + 1 and results[1]["rejected"] == 2  # Braze's refusals were kept
    assert results[1]["campaigns"]["c1"]["dispatch_ids"] == ["dispatch-***"] * 2
    state_files = files_under(tmp_path / "state")
    assert any("rejects" in p for p in state_files) and any("ledger" in p for p in state_files)
    for path, data in state_files.items():
        assert key.encode() not in data, f"the API key is in {path}"
    rejects = b"".join(data for path, data in state_files.items() if "rejects" in path)
    assert b"refused with ***" in rejects and b"is not a valid id" in rejects
    assert_clean(json.dumps(results, default=str), "an XCom result")
    assert_clean(caplog.text, "the log records")
    out, err = capfd.readouterr()
    assert_clean(out + err, "stdout/stderr")
