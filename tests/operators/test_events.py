"""BrazeEventExportOperator against the sandbox over HTTP: formats, rejects, ledger, uncertain, dry run."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.exceptions import AirflowException

from airflow_provider_aiq_braze.contracts.events import EventContract
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from tests.braze_sandbox import connection_env
from tests.operators.conftest import assert_invariant, read_jsonl, write_csv

HEADER = ["event_name", "external_id", "braze_id", "timestamp", "plan"]


def _rows(n: int, start: int = 0) -> list[list[str]]:
    return [
        ["viewed", f"u{i}", "", f"2026-11-28T10:{i % 60:02d}:00Z", f"p{i}"] for i in range(start, start + n)
    ]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _op(tmp_path: Path, source: str, **kwargs: object) -> BrazeEventExportOperator:
    return BrazeEventExportOperator(
        task_id="events", source=source, state_path=str(tmp_path / "state"), **kwargs
    )


def test_csv_rows_become_events(tmp_path, sandbox, run_task) -> None:
    write_csv(tmp_path / "in" / "part-0.csv", HEADER, _rows(100))
    write_csv(tmp_path / "in" / "part-1.csv", HEADER, _rows(60, start=100))
    result = run_task(_op(tmp_path, str(tmp_path / "in" / "*.csv")))
    assert result["rows_read"] == 160 and result["sent"] == 160 and result["rejected"] == 0
    assert result["requests"] == 3  # batches run across file boundaries: 75 + 75 + 10
    events = sandbox.state.events()
    assert len(events) == 160
    first = next(e for e in events if e["external_id"] == "u7")
    assert first["name"] == "viewed"
    assert _when(first["time"]) == _when("2026-11-28T10:07:00Z")
    assert first["properties"] == {"plan": "p7"}
    assert_invariant(result)


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "parquet", "csv.gz"])
def test_each_format(tmp_path, sandbox, run_task, kind: str) -> None:
    records = [
        {"event_name": "bought", "external_id": f"u{i}", "timestamp": 1793527200 + i, "properties": {"n": i}}
        for i in range(10)
    ]
    path = tmp_path / f"events.{kind}"
    if kind.startswith("jsonl"):
        text = "".join(json.dumps(r) + "\n" for r in records)
        path.write_bytes(gzip.compress(text.encode()) if kind.endswith(".gz") else text.encode())
    elif kind == "parquet":
        table = pa.Table.from_pylist([{**r, "properties": json.dumps(r["properties"])} for r in records])
        pq.write_table(table, path)
    else:
        rows = [["bought", f"u{i}", "", str(1793527200 + i), str(i)] for i in range(10)]
        write_csv(path, HEADER, rows, gz=True)
    result = run_task(_op(tmp_path, str(path)))
    assert result["sent"] == 10, result
    events = sorted(sandbox.state.events(), key=lambda e: e["time"])
    assert _when(events[3]["time"]) == _when("2026-11-01T10:00:03Z")
    expected = {"n": 3} if kind != "csv.gz" else {"plan": "3"}
    assert events[3]["properties"] == expected


def test_invalid_rows_are_rejected_with_reasons(tmp_path, sandbox, run_task) -> None:
    rows = [
        *_rows(5),
        ["", "u9", "", "2026-11-28T10:00:00Z", "x"],
        ["viewed", "", "", "2026-11-28T10:00:00Z", "x"],
        ["viewed", "u10", "", "not a time", "x"],
        ["$viewed", "u11", "", "2026-11-28T10:00:00Z", "x"],
        ["viewed", "u12", "", "2026-11-28T10:00:00Z", "y" * 300],
    ]
    write_csv(tmp_path / "e.csv", HEADER, rows)
    result = run_task(_op(tmp_path, str(tmp_path / "e.csv"), max_reject_ratio=1.0))
    assert (result["sent"], result["rejected"]) == (5, 5)
    rejects = read_jsonl(result["rejects_path"])
    assert [r["row"] for r in rejects] == [6, 7, 8, 9, 10]
    reasons = [r["reason"] for r in rejects]
    assert "event name ('event_name') is empty" in reasons[0]
    assert "no identifier" in reasons[1]
    assert "not ISO 8601" in reasons[2]
    assert "starts with '$'" in reasons[3]
    assert "300 characters" in reasons[4]
    assert rejects[1]["file"].endswith("e.csv") and rejects[1]["data"]["event_name"] == "viewed"
    assert len(sandbox.state.events()) == 5
    assert_invariant(result)


def test_minor_errors_map_back_to_their_rows(tmp_path, braze_sandbox_factory, monkeypatch, run_task) -> None:
    # Braze refuses two users the operator cannot know about in advance: per-item minor errors
    from tests.operators.conftest import point_default_connection_at

    sandbox = braze_sandbox_factory(refuse_ids=["u3", "u77"])
    point_default_connection_at(sandbox, monkeypatch)
    rows = _rows(80)
    write_csv(tmp_path / "e.csv", HEADER, rows)
    result = run_task(_op(tmp_path, str(tmp_path / "e.csv")))
    assert (result["sent"], result["rejected"]) == (78, 2)
    rejects = read_jsonl(result["rejects_path"])
    # batches finish in any order: the rejects file follows completion, not input order
    assert sorted((r["row"], r["data"]["external_id"]) for r in rejects) == [(4, "u3"), (78, "u77")]
    assert all(r["reason"].startswith("Braze rejected: ") for r in rejects)
    assert all(set(r["data"]) == set(HEADER) for r in rejects)  # the row as read, nothing added
    assert {e["external_id"] for e in sandbox.state.events()} == {f"u{i}" for i in range(80)} - {"u3", "u77"}
    assert_invariant(result)


def test_rerun_sends_nothing_and_force_sends_again(tmp_path, sandbox, run_task) -> None:
    write_csv(tmp_path / "e.csv", HEADER, _rows(200))
    first = run_task(_op(tmp_path, str(tmp_path / "e.csv")))
    again = run_task(_op(tmp_path, str(tmp_path / "e.csv")), run_id="backfill__2026-11-28")
    assert first["sent"] == 200
    assert (again["sent"], again["skipped"], again["requests"]) == (0, 200, 0)
    assert again["skipped_reasons"] == {"already delivered": 200}
    assert len(sandbox.state.events()) == 200
    forced = run_task(_op(tmp_path, str(tmp_path / "e.csv"), force=True), run_id="manual__3")
    assert forced["sent"] == 200 and len(sandbox.state.events()) == 400
    assert_invariant(again)


def test_uncertain_batches_are_reported_and_not_resent(
    tmp_path, braze_sandbox_factory, monkeypatch, run_task
) -> None:
    from tests.operators.conftest import point_default_connection_at

    sandbox = braze_sandbox_factory(drop_after_process_requests=2, seed=1)
    point_default_connection_at(sandbox, monkeypatch)
    write_csv(tmp_path / "e.csv", HEADER, _rows(300))
    result = run_task(_op(tmp_path, str(tmp_path / "e.csv"), max_workers=1))
    assert result["uncertain"] == 150 and len(result["uncertain_batches"]) == 2
    assert result["sent"] == 150
    # Braze processed the dropped requests: every event arrived once
    assert len(sandbox.state.events()) == 300
    rerun = run_task(_op(tmp_path, str(tmp_path / "e.csv")), try_number=2)
    assert (rerun["sent"], rerun["skipped"], rerun["uncertain"]) == (0, 150, 150)
    assert len(sandbox.state.events()) == 300
    resent = run_task(_op(tmp_path, str(tmp_path / "e.csv"), resend_uncertain=True), try_number=3)
    assert (resent["sent"], resent["skipped"]) == (150, 150)
    assert len(sandbox.state.events()) == 450  # the resend duplicated what Braze had processed
    for result_ in (result, rerun, resent):
        assert_invariant(result_)


def test_dry_run_writes_the_exact_bodies_and_sends_nothing(tmp_path, sandbox, run_task) -> None:
    write_csv(tmp_path / "e.csv", HEADER, _rows(160))
    dry = run_task(_op(tmp_path, str(tmp_path / "e.csv"), dry_run=True))
    assert dry["dry_run"] is True and dry["sent"] == 160 and dry["requests"] == 3
    assert sandbox.state.requests() == {} or sum(sandbox.state.requests().values()) == 0
    bodies = [line for line in Path(dry["dry_run_path"].removeprefix("file://")).read_text().splitlines()]
    assert len(bodies) == 3
    assert [len(json.loads(b)["events"]) for b in bodies] == [75, 75, 10]
    # a real run sends byte-for-byte the same bodies: the ledger keys batches by the body's SHA-256
    real = run_task(_op(tmp_path, str(tmp_path / "e.csv")))
    assert real["sent"] == 160
    sent_digests = {r["digest"] for r in read_jsonl(real["ledger_path"]) if r["state"] == "accepted"}
    assert sent_digests == {hashlib.sha256(b.encode()).hexdigest() for b in bodies}


def test_too_many_rejects_fail_after_delivering_valid_rows(tmp_path, sandbox, run_task) -> None:
    rows = _rows(10) + [["", "u", "", "2026-11-28T10:00:00Z", "x"]] * 2
    write_csv(tmp_path / "e.csv", HEADER, rows)
    with pytest.raises(AirflowException, match=r"2 of 12 rows were rejected .* max_reject_ratio=5.0%"):
        run_task(_op(tmp_path, str(tmp_path / "e.csv")))
    assert len(sandbox.state.events()) == 10


def test_missing_source_is_a_clear_error(tmp_path, sandbox, run_task) -> None:
    with pytest.raises(AirflowException) as info:
        run_task(_op(tmp_path, str(tmp_path / "nothing" / "*.csv")))
    assert "nothing" in str(info.value)


def test_killed_mid_run_then_retried_resends_no_accepted_batch(tmp_path, braze_sandbox_factory) -> None:
    from tests.operators.operator_process import kill_when, start

    sandbox = braze_sandbox_factory(latency_ms=20)
    write_csv(tmp_path / "e.csv", HEADER, _rows(3000))
    kwargs = {
        "task_id": "events",
        "source": str(tmp_path / "e.csv"),
        "state_path": str(tmp_path / "state"),
        "max_workers": 4,
    }
    env = connection_env(sandbox)
    child = start(
        {
            "class": f"{BrazeEventExportOperator.__module__}.BrazeEventExportOperator",
            "kwargs": kwargs,
            "run_id": "scheduled__2026-11-28",
            "try_number": 1,
        },
        env,
    )
    killed = kill_when(child, lambda: len(sandbox.state.events()) >= 1000)
    assert killed, "the child finished before it could be killed"
    delivered_before_retry = len(sandbox.state.events())
    assert delivered_before_retry < 3000

    child = start(
        {
            "class": f"{BrazeEventExportOperator.__module__}.BrazeEventExportOperator",
            "kwargs": kwargs,
            "run_id": "scheduled__2026-11-28",
            "try_number": 2,
        },
        env,
    )
    assert child.wait(timeout=120) == 0
    ledger = next((tmp_path / "state" / "ledger").rglob("*.jsonl"))
    last = {}
    for record in read_jsonl(str(ledger)):
        last[record.get("digest")] = record
    uncertain_rows = sum(r["rows"] for r in last.values() if r.get("state") in ("sending", "uncertain"))
    counts: dict[str, int] = {}
    for event in sandbox.state.events():
        counts[event["external_id"]] = counts.get(event["external_id"], 0) + 1
    assert max(counts.values()) == 1, "an event was delivered twice"
    # every row arrived, except rows of batches in flight at the kill, which arrived at most once
    assert 3000 - uncertain_rows <= len(counts) <= 3000
    assert uncertain_rows <= 4 * 2 * 75  # at most the batches that were in flight


def test_columnar_and_row_paths_send_the_same_bodies(tmp_path, run_task, mocker) -> None:
    # rows the columnar path takes, rows it defers (epoch and offset times, escapes, padding) and rejects
    rows = _rows(300)
    rows[5][3] = "1764324000"
    rows[6][3] = "2026-11-28T11:00:00+01:00"
    rows[7][4] = 'quote " and \\ backslash'
    rows[8][1] = " padded "
    rows[9][0] = "$reserved"
    rows[10][1] = ""
    rows[11][4] = "ü" * 256
    rows[12][3] = "2026-02-30T00:00:00Z"
    rows[13][2] = "5f1e2d3c4b5a69788796a5b4"
    rows[13][1] = ""
    write_csv(tmp_path / "e.csv", HEADER, rows)
    to_event = mocker.spy(EventContract, "to_event")
    columnar = run_task(_op(tmp_path / "a", str(tmp_path / "e.csv"), dry_run=True))
    assert to_event.call_count == 8  # only the unusual rows went row by row
    mocker.patch.object(EventContract, "encode_batch", lambda self, batch, ignore=(): [None] * batch.num_rows)
    row_by_row = run_task(_op(tmp_path / "b", str(tmp_path / "e.csv"), dry_run=True))
    assert to_event.call_count == 8 + 300
    for result in (columnar, row_by_row):
        assert (result["sent"], result["rejected"]) == (296, 4)
    assert (
        Path(columnar["dry_run_path"].removeprefix("file://")).read_bytes()
        == Path(row_by_row["dry_run_path"].removeprefix("file://")).read_bytes()
    )
    assert read_jsonl(columnar["rejects_path"]) == read_jsonl(row_by_row["rejects_path"])
