"""Audience runs of one state namespace in real concurrent processes, on local storage and on S3.

A backfill beside the nightly run, three snapshots at once, two instances of one snapshot, and runs
SIGKILLed at random points followed by other runs: afterwards every profile in the sandbox equals
the newest applied snapshot, and every run that finished accounts for each of its rows.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aiq_braze.audiences import SnapshotStore
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.braze_sandbox import connection_env
from tests.conftest import S3Bucket
from tests.operators.conftest import assert_invariant, write_csv
from tests.operators.operator_process import kill_when, start

ATTRIBUTE = "AIQ_A1_S1"
USERS = [f"u{i:03d}" for i in range(240)]
#: Three days of one split, each far enough from the others that applying them in the wrong order,
#: or against the wrong base, leaves profiles visibly wrong.
SNAPSHOTS = {
    "2026-11-01": USERS[0:120],
    "2026-11-02": USERS[60:180],
    "2026-11-03": USERS[100:140] + USERS[180:240],
}
OPERATOR = f"{BrazeAudienceMembershipOperator.__module__}.BrazeAudienceMembershipOperator"


@dataclass
class Setup:
    """Where the runs keep their state and what they send to.

    :param tmp: a folder for inputs, results and logs.
    :param sandbox: the Braze stand-in (``latency_ms`` set, so requests overlap).
    :param state: ``state_path`` (and ``state_conn_id``) of the runs.
    :param store: the applied state the runs share, as the test reads it.
    """

    tmp: Path
    sandbox: BrazeSandbox
    state: dict[str, str]
    store: SnapshotStore

    def source(self, key: str) -> str:
        path = self.tmp / "staging" / key / "members.csv"
        if not path.exists():
            write_csv(
                path, ["audience_id", "split_id", "external_id"], [["A1", "S1", u] for u in SNAPSHOTS[key]]
            )
        return str(path)

    def start(
        self, key: str, name: str, *, try_number: int = 1, run_id: str | None = None, gate: str | None = None
    ) -> Any:
        """Start the sync of ``key`` in a child process (its result and log under ``name``); with
        ``gate``, it runs once :meth:`open` opened that gate."""
        kwargs = {
            "task_id": "sync_membership",
            "source": self.source(key),
            "snapshot_key": key,
            "update_existing_only": False,
            "batch_size": 10,
            "max_workers": 1,
            "state_lease_ttl": 4,
            "state_lease_wait": 90,
            "progress_interval": 3600,
            **self.state,
        }
        spec = {
            "class": OPERATOR,
            "kwargs": kwargs,
            "run_id": run_id or f"scheduled__{key}",
            "try_number": try_number,
            "result_path": str(self.tmp / f"{name}.json"),
            "wait_for": str(self.tmp / f"gate-{gate}") if gate else None,
        }
        return start(spec, connection_env(self.sandbox), log_path=str(self.tmp / f"{name}.log"))

    def open(self, gate: str) -> None:
        """Let the children waiting at ``gate`` run."""
        (self.tmp / f"gate-{gate}").touch()

    def result(self, name: str) -> dict[str, Any]:
        """The result of a finished run (its invariant checked)."""
        result: dict[str, Any] = json.loads((self.tmp / f"{name}.json").read_text())
        assert "error" not in result, f"{name} failed: {result['error']}\n{self.log(name)}"
        assert_invariant(result)
        return result

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")[-4000:]

    def run(self, key: str, name: str, **options: Any) -> dict[str, Any]:
        """Run the sync of ``key`` to its end in a child process; its result."""
        child = self.start(key, name, **options)
        assert child.wait(timeout=180) == 0, f"{name} failed:\n{self.log(name)}"
        return self.result(name)

    def applied_key(self) -> str | None:
        return self.store.applied_key("A1", "S1")

    def requests(self) -> int:
        return sum(self.sandbox.state.requests("/users/track").values())

    def assert_profiles_match(self, key: str) -> None:
        """Every profile equals snapshot ``key``: members ``true``, nobody else ``true``."""
        members = set(SNAPSHOTS[key])
        flags = {
            p["external_id"]: p["attributes"][ATTRIBUTE]
            for p in self.sandbox.state.profiles()
            if ATTRIBUTE in p["attributes"]
        }
        wrong = sorted(u for u, value in flags.items() if (value is True) != (u in members))
        missing = sorted(u for u in members if u not in flags)
        assert not wrong and not missing, f"profiles not at snapshot {key}: wrong {wrong}, missing {missing}"


@pytest.fixture(params=["local", "s3"])
def setup(
    request: pytest.FixtureRequest, tmp_path: Path, braze_sandbox_factory: Callable[..., BrazeSandbox]
) -> Setup:
    sandbox = braze_sandbox_factory(latency_ms=100)
    if request.param == "local":
        state = {"state_path": str(tmp_path / "state")}
        root: Any = str(tmp_path / "state" / "audiences")
    else:
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        state = {"state_path": bucket.root, "state_conn_id": bucket.conn_id}
        root = bucket.path("audiences")
    return Setup(tmp_path, sandbox, state, SnapshotStore(root, "braze_default"))


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("first", ["2026-11-01", "2026-11-02"], ids=["backfill-first", "nightly-first"])
def test_a_backfill_beside_the_nightly_run_ends_at_the_newest_snapshot(setup: Setup, first: str) -> None:
    second = "2026-11-02" if first == "2026-11-01" else "2026-11-01"
    one = setup.start(first, "first", gate="first")
    two = setup.start(second, "second", gate="second")
    setup.open("first")
    _wait_for(lambda: setup.requests() > 0, "the first run to send")
    setup.open("second")  # while the first one is sending
    assert one.wait(timeout=180) == 0, setup.log("first")
    assert two.wait(timeout=180) == 0, setup.log("second")
    first_result, second_result = setup.result("first"), setup.result("second")
    assert setup.applied_key() == "2026-11-02"
    setup.assert_profiles_match("2026-11-02")
    if first == "2026-11-01":  # the nightly waited, then computed against the backfill's commit
        assert (second_result["entered"], second_result["exited"]) == (60, 60)
    else:  # the backfill waited, then found a newer snapshot applied and sent nothing
        assert second_result["sent"] == 0 and second_result["state_committed"] is True
        assert "older than the applied 2026-11-02" in second_result["skipped_splits"][0]["reason"]
        assert first_result["entered"] == 120
    assert not list(setup.store.pending())


def test_three_snapshots_at_once_end_at_the_newest(setup: Setup) -> None:
    children = {key: setup.start(key, key, gate="all") for key in reversed(SNAPSHOTS)}
    setup.open("all")
    for key, child in children.items():
        assert child.wait(timeout=240) == 0, setup.log(key)
    results = {key: setup.result(key) for key in SNAPSHOTS}
    assert setup.applied_key() == "2026-11-03"
    setup.assert_profiles_match("2026-11-03")
    # each run computed against whatever was applied when it got its turn: data points spent are
    # exactly the writes the runs report
    assert setup.sandbox.state.data_points == sum(r["data_points"] for r in results.values())
    assert not list(setup.store.pending())


def test_two_instances_of_one_snapshot_send_it_once(setup: Setup) -> None:
    one = setup.start("2026-11-02", "one", gate="both")
    two = setup.start("2026-11-02", "two", try_number=2, gate="both")
    setup.open("both")
    assert one.wait(timeout=180) == 0, setup.log("one")
    assert two.wait(timeout=180) == 0, setup.log("two")
    results = [setup.result("one"), setup.result("two")]
    assert sorted(r["sent"] for r in results) == [0, 120]
    assert setup.sandbox.state.data_points == 120
    setup.assert_profiles_match("2026-11-02")


def _kill_points(seed: int, count: int) -> Iterator[tuple[str, str, int]]:
    """(killed key, next key, requests before the kill) — the killed run is the newer or the older one."""
    rng = random.Random(seed)
    for i in range(count):
        killed, following = ("2026-11-03", "2026-11-02") if i % 2 == 0 else ("2026-11-02", "2026-11-03")
        yield killed, following, rng.randint(0, 18)


@pytest.mark.parametrize("seed", [20261102])
def test_runs_killed_at_random_points_are_repaired_by_the_next_run(setup: Setup, seed: int) -> None:
    state_path, root = setup.state["state_path"].rstrip("/"), setup.store.root
    rounds = 2  # the killed run is the newer one, then the older one
    for n, (killed, following, after_requests) in enumerate(_kill_points(seed, rounds)):
        setup.sandbox.reset()
        setup.state["state_path"] = f"{state_path}/round-{n}"
        setup.store = SnapshotStore(root.parent / f"round-{n}" / "audiences", "braze_default")
        setup.run("2026-11-01", f"base-{n}")
        setup.assert_profiles_match("2026-11-01")

        before = setup.requests()
        child = setup.start(killed, f"killed-{n}")
        kill_when(child, lambda at=before + after_requests: setup.requests() >= at, timeout=120)

        # the next run (another snapshot) takes the dead run's lease over and repairs its writes
        setup.run(following, f"following-{n}")
        applied = setup.applied_key()
        assert applied in (following, max(killed, following)), f"round {n}: applied {applied}"
        setup.assert_profiles_match(str(applied))

        # the killed run's retry ends at the newest snapshot
        setup.run(killed, f"retry-{n}", try_number=2)
        assert setup.applied_key() == max(killed, following)
        setup.assert_profiles_match(max(killed, following))
        assert not list(setup.store.pending()), f"round {n}: a pending marker was left behind"


def test_a_run_frozen_past_its_lease_stops_and_its_writes_are_repaired(setup: Setup) -> None:
    import os
    import signal

    if "state_conn_id" in setup.state:
        pytest.skip("the lease itself is the same on S3 (covered by the other tests); one storage is enough")
    setup.run("2026-11-01", "base")
    frozen = setup.start("2026-11-03", "frozen", gate="frozen")
    setup.open("frozen")
    _wait_for(lambda: setup.requests() >= 14, "the run to send")  # of the 18 requests it needs
    os.kill(frozen.pid, signal.SIGSTOP)  # a worker paused (swap, a stopped VM) past its lease's TTL
    try:
        # another run takes the lease over, rewrites what the frozen run wrote, and commits
        setup.run("2026-11-02", "takeover")
        assert setup.applied_key() == "2026-11-02"
        setup.assert_profiles_match("2026-11-02")
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    # the frozen run wakes up, finds its lease lost before its next request and stops, naming its
    # profiles again for the next run
    assert frozen.wait(timeout=120) != 0
    error = json.loads((setup.tmp / "frozen.json").read_text())["error"]
    assert "LeaseLost" in error or "lease" in error, error
    assert setup.applied_key() == "2026-11-02"
    assert list(setup.store.pending()), "the frozen run's profiles are not named for repair"
    # the next run of the namespace (here a re-run of the applied day) rewrites them
    again = setup.run("2026-11-02", "again", try_number=2)
    assert again["skipped_splits"] and again["repaired"] > 0
    setup.assert_profiles_match("2026-11-02")
    assert not list(setup.store.pending())
