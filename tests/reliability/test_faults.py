"""Every operator under the sandbox's seeded faults: 5xx, 429 storms, resets, lost and late answers, spikes.

Each scenario runs the operator (retried like Airflow would, up to a few tries, when a batch exhausts
its retries) with one sender, so the seeded fault pattern is the same on every run. Then:

- the accounting invariant holds on every completed run;
- events and campaign messages: every row not in an uncertain batch arrived exactly once, nothing
  arrived twice; after ``resend_uncertain=True`` every row arrived, and only rows of the batches the
  ledger reported uncertain may have arrived twice;
- audiences: the profiles' ``AIQ_*`` attributes converge to the last snapshot, and the committed
  state is that snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.reliability._support import (
    assert_invariant,
    attribute_values,
    batch_identifiers,
    committed_members,
    connection_env,
    context,
    create_users,
    event_counts,
    ledger_outcomes,
    message_counts,
    uncertain_digests,
    write_events,
    write_members,
    write_recipients,
)

#: The client's (connect, read) timeout: shorter than a stalled answer, longer than a latency spike.
TIMEOUT = [5.0, 1.0]

#: scenario → (sandbox fault settings, the fault counters that must show the faults were injected)
SCENARIOS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "5xx-10pct": ({"error_rate": 0.1}, ("error",)),
    "429-storm": ({"rate_limit_storm_requests": 3}, ("storm",)),
    "connection-resets": ({"reset_rate": 0.1}, ("reset",)),
    "dropped-after-processing": ({"drop_after_process_rate": 0.1}, ("drop",)),
    "stalled-after-processing": ({"stall_after_process_rate": 0.15, "stall_seconds": 2.5}, ("stall",)),
    "latency-spikes": ({"latency_ms": 2, "jitter_ms": 300}, ()),
    "all-at-once": (
        {
            "error_rate": 0.1,
            "reset_rate": 0.05,
            "drop_after_process_rate": 0.05,
            "rate_limit_storm_requests": 2,
            "jitter_ms": 40,
        },
        ("error", "reset", "drop", "storm"),
    ),
}
SEED = 20261128
MAX_TRIES = 8

pytestmark = [pytest.mark.timeout(180), pytest.mark.parametrize("scenario", list(SCENARIOS))]


@pytest.fixture
def faulty(
    braze_sandbox_factory: Callable[..., BrazeSandbox], monkeypatch: pytest.MonkeyPatch
) -> BrazeSandbox:
    """A sandbox behind ``braze_default``, with a short read timeout so stalled answers time out."""
    sandbox = braze_sandbox_factory()
    for name, value in connection_env(sandbox, timeout=TIMEOUT).items():
        monkeypatch.setenv(name, value)
    return sandbox


def inject(sandbox: BrazeSandbox, scenario: str) -> tuple[str, ...]:
    """Turn the scenario's faults on (seeded), for the Braze endpoints only."""
    settings, expected = SCENARIOS[scenario]
    sandbox.set_faults(clear=True, seed=SEED, **settings)
    return expected


def assert_injected(sandbox: BrazeSandbox, expected: tuple[str, ...]) -> None:
    """The scenario's faults really happened (a scenario that injects nothing proves nothing)."""
    faults = sandbox.state.stats()["faults"]
    for name in expected:
        assert faults.get(name, 0) > 0, f"no {name} fault was injected: {faults}"


def run_until_complete(
    make: Callable[..., Any], task_id: str, *, first_try: int = 1
) -> tuple[dict[str, Any], int]:
    """Run the task like Airflow with retries: a failed try (a batch out of retries) is tried again.

    Returns the completed run's result and its try number.
    """
    for try_number in range(first_try, first_try + MAX_TRIES):
        try:
            result = make().execute(context(task_id, try_number=try_number))
        except AirflowException as exc:
            assert "Braze" in str(exc), exc  # a delivery failure, not something else
            continue
        assert_invariant(result)
        return result, try_number
    raise AssertionError(f"no try of {MAX_TRIES} completed")


def uncertain_ids(state: Path, batches: dict[str, list[str]]) -> set[str]:
    """The identifiers in batches the ledger holds as uncertain."""
    return {i for digest in uncertain_digests(state) for i in batches[digest]}


def assert_reported_uncertain_matches_ledger(result: dict[str, Any], state: Path) -> None:
    """The result's uncertain rows are exactly the ledger's uncertain batches."""
    outcomes = ledger_outcomes(state)
    ledger_uncertain = {d: r for d, r in outcomes.items() if r["state"] in ("sending", "uncertain")}
    assert result["uncertain"] == sum(r["rows"] for r in ledger_uncertain.values())
    assert {b["digest"] for b in result["uncertain_batches"]} == {d[:16] for d in ledger_uncertain}


def test_events_under_faults(scenario: str, faulty: BrazeSandbox, tmp_path: Path) -> None:
    n = 1500
    source = str(write_events(tmp_path / "in" / "events.csv", n))
    all_ids = {f"u{i}" for i in range(n)}
    state = tmp_path / "state"

    def make(**kwargs: Any) -> BrazeEventExportOperator:
        kwargs.setdefault("state_path", str(state))
        return BrazeEventExportOperator(task_id="events", source=source, max_workers=1, **kwargs)

    dry = make(dry_run=True, state_path=str(tmp_path / "dry")).execute(context("events"))
    batches = batch_identifiers(dry["dry_run_path"], "events", "external_id")
    expected = inject(faulty, scenario)

    result, try_number = run_until_complete(make, "events")
    assert_injected(faulty, expected)
    assert_reported_uncertain_matches_ledger(result, state)
    maybe = uncertain_ids(state, batches)
    counts = event_counts(faulty)
    assert max(counts.values()) == 1, "an event reached Braze twice without being resent"
    assert all_ids - maybe <= set(counts), "a row outside the uncertain batches never reached Braze"
    assert set(counts) <= all_ids

    # the operator's way out of uncertainty: resend, after checking Braze; only those rows may double
    faulty.set_faults(clear=True)
    resent, _ = run_until_complete(lambda: make(resend_uncertain=True), "events", first_try=try_number + 1)
    assert resent["sent"] == len(maybe) and resent["uncertain"] == 0
    counts = event_counts(faulty)
    assert set(counts) == all_ids
    doubled = {i for i, c in counts.items() if c > 1}
    assert doubled <= maybe
    assert max(counts.values()) <= 2


def test_campaigns_under_faults(scenario: str, faulty: BrazeSandbox, tmp_path: Path) -> None:
    users = [f"u{i}" for i in range(1000)]
    create_users(faulty, users)
    source = str(write_recipients(tmp_path / "in" / "recipients.csv", users))
    state = tmp_path / "state"

    def make(**kwargs: Any) -> BrazeCampaignTriggerOperator:
        kwargs.setdefault("state_path", str(state))
        return BrazeCampaignTriggerOperator(
            task_id="campaign", source=source, campaign_id="camp-1", max_workers=1, **kwargs
        )

    dry = make(dry_run=True, state_path=str(tmp_path / "dry")).execute(context("campaign"))
    batches = batch_identifiers(dry["dry_run_path"], "recipients", "external_user_id")
    expected = inject(faulty, scenario)

    result, try_number = run_until_complete(make, "campaign")
    assert_injected(faulty, expected)
    assert_reported_uncertain_matches_ledger(result, state)
    maybe = uncertain_ids(state, batches)
    counts = message_counts(faulty)
    assert max(counts.values()) == 1, "a recipient was messaged twice without a resend"
    assert set(users) - maybe <= set(counts)
    # every dispatch Braze made for a batch the ledger calls accepted is in the result
    dispatched = set(result["campaigns"]["camp-1"]["dispatch_ids"])
    accepted = {r.get("dispatch_id") for r in ledger_outcomes(state).values() if r["state"] == "accepted"}
    assert dispatched == accepted - {None}

    faulty.set_faults(clear=True)
    resent, _ = run_until_complete(lambda: make(resend_uncertain=True), "campaign", first_try=try_number + 1)
    assert resent["sent"] == len(maybe) and resent["uncertain"] == 0
    counts = message_counts(faulty)
    assert set(counts) == set(users)
    assert {u for u, c in counts.items() if c > 1} <= maybe


def test_audience_converges_under_faults(scenario: str, faulty: BrazeSandbox, tmp_path: Path) -> None:
    users = [f"u{i}" for i in range(1500)]
    create_users(faulty, users)
    first, second = users[:1200], users[300:]
    state = tmp_path / "state"
    expected = inject(faulty, scenario)

    def sync(members: list[str], key: str, name: str) -> dict[str, Any]:
        source = str(write_members(tmp_path / name / "members.csv", members))

        def make() -> BrazeAudienceMembershipOperator:
            return BrazeAudienceMembershipOperator(
                task_id="audience", source=source, state_path=str(state), snapshot_key=key, max_workers=1
            )

        for attempt in range(MAX_TRIES):  # each completed run that could not commit recomputes the delta
            result, _ = run_until_complete(make, "audience", first_try=1 + attempt * MAX_TRIES)
            if result["state_committed"]:
                return result
            assert result["uncertain"] > 0
        raise AssertionError("the audience state was never committed")

    one = sync(first, "2026-11-01", "day1")
    assert one["entered"] == 1200
    two = sync(second, "2026-11-02", "day2")
    assert_injected(faulty, expected)
    # the second snapshot's delta is relative to the first one (committed): 300 left, 300 joined
    assert (two["entered"], two["exited"], two["snapshot_key"]) == (300, 300, "2026-11-02")
    values = attribute_values(faulty, "AIQ_12_1")
    assert {u for u, v in values.items() if v is True} == set(second)
    assert {u for u, v in values.items() if v is False} == set(first) - set(second)
    key, members = committed_members(state)
    assert key == "2026-11-02" and members == set(second)
