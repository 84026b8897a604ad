"""SIGKILL the task at seeded random points, then run it again: nothing lost, nothing doubled, state honest.

Each trial forks the test process (the child inherits the imported modules, so a trial costs
milliseconds, not an interpreter start-up), runs the operator's ``execute`` in the child against a
sandbox with 10-20 ms latency, and SIGKILLs it once Braze has received a number of objects drawn
from ``random.Random(seed)``. The retry then runs in the test process, as try 2 of the same run.

Checked after the kill (before the retry) and after the retry:

- the ledger is never ahead of Braze: every batch it records as accepted reached Braze;
- events and campaigns: no row lost (every row outside the batches left uncertain arrived), none
  doubled (every identifier at most once: uncertain batches are not resent);
- audiences: the committed state's members are a subset of the profiles whose ``AIQ_*`` attribute
  is ``true`` (a commit never runs ahead of delivery), and the retry converges.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.reliability._support import (
    AUDIENCE_CLASS,
    CAMPAIGNS_CLASS,
    EVENTS_CLASS,
    accepted_digests,
    assert_invariant,
    attribute_values,
    batch_identifiers,
    committed_members,
    connection_env,
    context,
    create_users,
    event_counts,
    fork_operator,
    kill_when,
    ledger_outcomes,
    message_counts,
    uncertain_digests,
    write_events,
    write_members,
    write_recipients,
)

TRIALS = 10
SEED = 8128
RUN_ID = "scheduled__2026-11-28"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.parametrize("trial", range(TRIALS)),
]


def trial_rng(kind: str, trial: int) -> random.Random:
    """The seeded generator of one trial."""
    return random.Random(f"{SEED}-{kind}-{trial}")


def crash(
    class_path: str,
    kwargs: dict[str, Any],
    sandbox: BrazeSandbox,
    tmp_path: Path,
    ready: Callable[[], bool],
) -> bool:
    """Run the operator in a forked child and SIGKILL it once ``ready()``; whether it was killed."""
    env = {**connection_env(sandbox), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    pid = fork_operator(class_path, kwargs, env, run_id=RUN_ID, try_number=1)
    return kill_when(pid, ready)


def ids_of(digests: set[str], batches: dict[str, list[str]]) -> set[str]:
    """The identifiers in these batches."""
    return {i for d in digests for i in batches[d]}


def test_events_killed_and_retried(trial: int, braze_sandbox_factory, monkeypatch, tmp_path: Path) -> None:
    rng = trial_rng("events", trial)
    n = 3000
    kill_at = rng.randint(1, int(n * 0.8))
    sandbox = braze_sandbox_factory(latency_ms=rng.choice([10, 15, 20]))
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", connection_env(sandbox)["AIRFLOW_CONN_BRAZE_DEFAULT"])
    source = str(write_events(tmp_path / "in" / "events.csv", n))
    all_ids = {f"u{i}" for i in range(n)}
    kwargs = {"task_id": "events", "source": source, "state_path": str(tmp_path / "state")}
    kwargs["max_workers"] = rng.choice([1, 4, 8])
    dry = BrazeEventExportOperator(**{**kwargs, "state_path": str(tmp_path / "dry"), "dry_run": True})
    batches = batch_identifiers(dry.execute(context("events"))["dry_run_path"], "events", "external_id")

    killed = crash(
        EVENTS_CLASS, kwargs, sandbox, tmp_path, lambda: sandbox.state.counter("events_recorded") >= kill_at
    )
    assert killed, f"the task finished before {kill_at} events arrived"
    state = tmp_path / "state"
    received = event_counts(sandbox)
    assert ids_of(accepted_digests(state), batches) <= set(received), "the ledger is ahead of Braze"
    assert max(received.values()) == 1

    result = BrazeEventExportOperator(**kwargs).execute(context("events", RUN_ID, try_number=2))
    assert_invariant(result)
    maybe = ids_of(uncertain_digests(state), batches)
    assert result["uncertain"] == len(maybe) <= kwargs["max_workers"] * 75  # at most the requests in flight
    counts = event_counts(sandbox)
    assert max(counts.values()) == 1, "an event was delivered twice"
    assert all_ids - maybe <= set(counts), "a row was lost"
    assert result["skipped_reasons"].get("already delivered", 0) + result["sent"] == n - len(maybe)


def test_campaigns_killed_and_retried(trial: int, braze_sandbox_factory, monkeypatch, tmp_path: Path) -> None:
    rng = trial_rng("campaigns", trial)
    users = [f"u{i}" for i in range(2000)]
    kill_at = rng.randint(1, int(len(users) * 0.8))
    sandbox = braze_sandbox_factory()
    create_users(sandbox, users)
    sandbox.set_faults(latency_ms=rng.choice([10, 15, 20]))
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", connection_env(sandbox)["AIRFLOW_CONN_BRAZE_DEFAULT"])
    source = str(write_recipients(tmp_path / "in" / "recipients.csv", users))
    kwargs = {
        "task_id": "campaign",
        "source": source,
        "state_path": str(tmp_path / "state"),
        "campaign_id": "camp-1",
        "max_workers": rng.choice([1, 4, 8]),
    }
    dry = BrazeCampaignTriggerOperator(**{**kwargs, "state_path": str(tmp_path / "dry"), "dry_run": True})
    batches = batch_identifiers(
        dry.execute(context("campaign"))["dry_run_path"], "recipients", "external_user_id"
    )

    killed = crash(
        CAMPAIGNS_CLASS,
        kwargs,
        sandbox,
        tmp_path,
        lambda: sandbox.state.counter("recipients_messaged") >= kill_at,
    )
    assert killed, f"the task finished before {kill_at} recipients were messaged"
    state = tmp_path / "state"
    assert ids_of(accepted_digests(state), batches) <= set(message_counts(sandbox)), (
        "the ledger is ahead of Braze"
    )
    recorded = {r.get("dispatch_id") for r in ledger_outcomes(state).values() if r["state"] == "accepted"}
    assert recorded - {None} <= {d["dispatch_id"] for d in sandbox.state.dispatches()}

    result = BrazeCampaignTriggerOperator(**kwargs).execute(context("campaign", RUN_ID, try_number=2))
    assert_invariant(result)
    maybe = ids_of(uncertain_digests(state), batches)
    assert result["uncertain"] == len(maybe) <= kwargs["max_workers"] * 50  # at most the requests in flight
    counts = message_counts(sandbox)
    assert max(counts.values()) == 1, "a recipient was messaged twice"
    assert set(users) - maybe <= set(counts), "a recipient was lost"
    summary = result["campaigns"]["camp-1"]
    assert summary["recipients_sent"] + summary["recipients_sent_earlier"] == len(users) - len(maybe)


def test_audience_killed_and_retried(trial: int, braze_sandbox_factory, monkeypatch, tmp_path: Path) -> None:
    """Even trials: the first sync (everyone enters). Odd trials: a second snapshot (300 leave, 300 join)."""
    rng = trial_rng("audience", trial)
    users = [f"u{i}" for i in range(3300)]
    sandbox = braze_sandbox_factory()
    monkeypatch.setenv("AIRFLOW_CONN_BRAZE_DEFAULT", connection_env(sandbox)["AIRFLOW_CONN_BRAZE_DEFAULT"])
    state = tmp_path / "state"
    # a short lease: the retry takes the killed run's lease over after ~5 s instead of ~70 s
    common = {
        "task_id": "audience",
        "state_path": str(state),
        "update_existing_only": False,
        "state_lease_ttl": 4,
    }
    previous: set[str] = set()
    if trial % 2:
        previous = set(users[:3000])
        first = str(write_members(tmp_path / "day1" / "members.csv", users[:3000]))
        done = BrazeAudienceMembershipOperator(source=first, snapshot_key="2026-11-01", **common).execute(
            context("audience", "scheduled__2026-11-01")
        )
        assert done["state_committed"]
        members = set(users[300:])
    else:
        members = set(users[:3000])
    writes = len(members - previous) + len(previous - members)
    kill_at = rng.randint(1, writes)
    sandbox.set_faults(latency_ms=rng.choice([10, 15, 20]))
    source = str(write_members(tmp_path / "day2" / "members.csv", sorted(members)))
    kwargs = {**common, "source": source, "snapshot_key": "2026-11-02", "max_workers": rng.choice([1, 4, 8])}
    baseline = sandbox.state.data_points

    killed = crash(
        AUDIENCE_CLASS, kwargs, sandbox, tmp_path, lambda: sandbox.state.data_points - baseline >= kill_at
    )
    assert killed or kill_at == writes, "the task finished before the kill point"
    values = attribute_values(sandbox, "AIQ_12_1")
    key, committed = committed_members(state)
    assert committed <= {u for u, v in values.items() if v is True} | (previous - members), (
        "the committed state claims members Braze does not have"
    )
    if key == "2026-11-02":  # committed: then everything was delivered first
        assert committed == members
        assert {u for u, v in values.items() if v is True} == members
    else:
        assert key == ("2026-11-01" if previous else None)

    result = BrazeAudienceMembershipOperator(**kwargs).execute(context("audience", RUN_ID, try_number=2))
    assert_invariant(result)
    if key != "2026-11-02":
        assert result["state_committed"] is True
    values = attribute_values(sandbox, "AIQ_12_1")
    assert {u for u, v in values.items() if v is True} == members
    assert {u for u, v in values.items() if v is False} == previous - members
    assert committed_members(state) == ("2026-11-02", members)
