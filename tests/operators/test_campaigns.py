"""BrazeCampaignTriggerOperator against the sandbox over HTTP: properties, batching, at most once."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from tests.braze_sandbox import connection_env, create_users
from tests.operators.conftest import assert_invariant, point_default_connection_at, read_jsonl, write_csv


def _op(tmp_path: Path, source: Path, **kwargs: object) -> BrazeCampaignTriggerOperator:
    kwargs.setdefault("campaign_id", "camp-1")
    return BrazeCampaignTriggerOperator(
        task_id="campaign", source=str(source), state_path=str(tmp_path / "state"), **kwargs
    )


def _messages(sandbox) -> list[dict]:
    return [m for d in sandbox.state.dispatches() for m in d["messages"]]


def test_trigger_properties_reach_the_sandbox(tmp_path, sandbox, run_task) -> None:
    create_users(sandbox, ["u1", "u2"])
    source = write_csv(
        tmp_path / "r.csv",
        ["external_id", "first_offer", "trigger_properties"],
        [["u1", "10%", ""], ["u2", "", '{"first_offer": "20%", "tier": 2}']],
    )
    result = run_task(_op(tmp_path, source, trigger_properties={"journey": "winback", "first_offer": "5%"}))
    assert result["sent"] == 2 and result["requests"] == 1
    by_user = {m["external_id"]: m["trigger_properties"] for m in _messages(sandbox)}
    # a recipient's own properties override the top-level ones
    assert by_user["u1"] == {"journey": "winback", "first_offer": "10%"}
    assert by_user["u2"] == {"journey": "winback", "first_offer": "20%", "tier": 2}
    (dispatch,) = sandbox.state.dispatches()
    assert result["campaigns"]["camp-1"]["dispatch_ids"] == [dispatch["dispatch_id"]]
    assert_invariant(result)


def test_batches_of_fifty_and_campaigns_never_mixed(tmp_path, sandbox, run_task) -> None:
    users = [f"u{i}" for i in range(130)]
    create_users(sandbox, users)
    rows = [[u, "camp-a" if i % 2 else "camp-b"] for i, u in enumerate(users)]
    source = write_csv(tmp_path / "r.csv", ["external_id", "campaign_id"], rows)
    result = run_task(_op(tmp_path, source, campaign_id=None))
    assert result["sent"] == 130
    dispatches = sandbox.state.dispatches()
    assert sorted(len(d["messages"]) for d in dispatches) == [15, 15, 50, 50]
    for dispatch in dispatches:
        expected = {u for u, c in rows if c == dispatch["campaign_id"]}
        assert {m["external_id"] for m in dispatch["messages"]} <= expected
    assert {c: v["recipients_sent"] for c, v in result["campaigns"].items()} == {"camp-a": 65, "camp-b": 65}
    assert sum(len(v["dispatch_ids"]) for v in result["campaigns"].values()) == 4
    assert_invariant(result)


def test_braze_id_recipients_and_duplicates(tmp_path, sandbox, run_task) -> None:
    create_users(sandbox, ["u1", "u2"])
    braze_id = sandbox.state.profile("u2")["braze_id"]
    source = write_csv(
        tmp_path / "r.csv",
        ["external_id", "braze_id"],
        [["u1", ""], ["", braze_id], ["u1", ""], ["", ""]],
    )
    result = run_task(_op(tmp_path, source, max_reject_ratio=1.0))
    assert (result["sent"], result["skipped"], result["rejected"]) == (2, 1, 1)
    assert result["skipped_reasons"] == {"duplicate recipient for the same campaign in this run": 1}
    assert Counter(m["external_id"] for m in _messages(sandbox)) == {"u1": 1, "u2": 1}
    (reject,) = read_jsonl(result["rejects_path"])
    assert reject["row"] == 4 and "no identifier" in reject["reason"]
    body_recipients = sandbox.state.dispatches()[0]
    assert body_recipients["campaign_id"] == "camp-1"
    assert_invariant(result)


def test_uncertain_batch_is_reported_and_not_resent(
    tmp_path, braze_sandbox_factory, monkeypatch, run_task
) -> None:
    sandbox = braze_sandbox_factory()
    point_default_connection_at(sandbox, monkeypatch)
    users = [f"u{i}" for i in range(100)]
    create_users(sandbox, users)
    sandbox.set_faults(drop_after_process_requests=1)  # the first campaign request is processed, then dropped
    source = write_csv(tmp_path / "r.csv", ["external_id"], [[u] for u in users])
    result = run_task(_op(tmp_path, source, max_workers=1))
    assert (result["sent"], result["uncertain"]) == (50, 50)
    assert len(result["uncertain_batches"]) == 1
    again = run_task(_op(tmp_path, source), try_number=2)
    assert (again["sent"], again["skipped"], again["uncertain"]) == (0, 50, 50)
    # Braze processed the dropped request: everyone was messaged exactly once
    assert Counter(m["external_id"] for m in _messages(sandbox)) == dict.fromkeys(users, 1)
    assert_invariant(again)


def test_dry_run_writes_exact_bodies(tmp_path, sandbox, run_task) -> None:
    users = [f"u{i}" for i in range(60)]
    create_users(sandbox, users)
    source = write_csv(tmp_path / "r.csv", ["external_id", "offer"], [[u, "x"] for u in users])
    dry = run_task(_op(tmp_path, source, dry_run=True, send_id="send-1", trigger_properties={"a": 1}))
    bodies = Path(dry["dry_run_path"].removeprefix("file://")).read_text().splitlines()
    assert [len(json.loads(b)["recipients"]) for b in bodies] == [50, 10]
    first = json.loads(bodies[0])
    assert first["campaign_id"] == "camp-1" and first["send_id"] == "send-1"
    assert first["trigger_properties"] == {"a": 1}
    assert first["recipients"][0] == {"external_user_id": "u0", "trigger_properties": {"offer": "x"}}
    assert sandbox.state.dispatches() == []
    real = run_task(_op(tmp_path, source, send_id="send-1", trigger_properties={"a": 1}))
    accepted = {r["digest"] for r in read_jsonl(real["ledger_path"]) if r["state"] == "accepted"}
    assert accepted == {hashlib.sha256(b.encode()).hexdigest() for b in bodies}


def test_created_send_id_is_reused_by_a_retry(tmp_path, sandbox, run_task) -> None:
    users = [f"u{i}" for i in range(80)]
    create_users(sandbox, users)
    source = write_csv(tmp_path / "r.csv", ["external_id"], [[u] for u in users])
    first = run_task(_op(tmp_path, source, create_send_id=True))
    again = run_task(_op(tmp_path, source, create_send_id=True), try_number=2)
    assert len(sandbox.state.send_ids()) == 1
    assert first["send_ids"] == again["send_ids"] and len(first["send_ids"]) == 1
    assert (again["sent"], again["skipped"]) == (0, 80)
    assert {d["send_id"] for d in sandbox.state.dispatches()} == set(first["send_ids"].values())


def test_killed_mid_run_then_retried_messages_nobody_twice(tmp_path, braze_sandbox_factory) -> None:
    from tests.operators.operator_process import kill_when, start

    sandbox = braze_sandbox_factory()
    users = [f"u{i}" for i in range(2000)]
    create_users(sandbox, users)
    sandbox.set_faults(latency_ms=20)
    source = write_csv(tmp_path / "r.csv", ["external_id"], [[u] for u in users])
    kwargs = {
        "task_id": "campaign",
        "source": str(source),
        "state_path": str(tmp_path / "state"),
        "campaign_id": "camp-1",
        "max_workers": 4,
    }
    env = connection_env(sandbox)
    spec = {
        "class": f"{BrazeCampaignTriggerOperator.__module__}.BrazeCampaignTriggerOperator",
        "kwargs": kwargs,
    }
    child = start({**spec, "run_id": "asset_triggered__1", "try_number": 1}, env)
    assert kill_when(child, lambda: len(sandbox.state.dispatches()) >= 10), "finished before the kill"
    child = start({**spec, "run_id": "asset_triggered__1", "try_number": 2}, env)
    assert child.wait(timeout=120) == 0
    messaged = Counter(m["external_id"] for m in _messages(sandbox))
    assert max(messaged.values()) == 1, "a recipient was messaged twice"
    ledger = next((tmp_path / "state" / "ledger").rglob("campaigns-*.jsonl"))
    last = {r["digest"]: r for r in read_jsonl(str(ledger)) if "digest" in r}
    uncertain_rows = sum(r["rows"] for r in last.values() if r["state"] in ("sending", "uncertain"))
    assert 2000 - uncertain_rows <= len(messaged) <= 2000
    # every dispatch Braze made is recorded in the ledger, except those of uncertain batches
    recorded = {r.get("dispatch_id") for r in last.values() if r["state"] == "accepted"}
    made = {d["dispatch_id"] for d in sandbox.state.dispatches()}
    assert len(made - recorded) <= len([r for r in last.values() if r["state"] in ("sending", "uncertain")])
