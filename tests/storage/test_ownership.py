"""Ledger leases with real processes, on local files and on a real S3 server.

Each worker process prints ``acquired`` once it owns the lease and ``releasing`` just before it lets
go, calling ``check()`` in between: the intervals ``[acquired, releasing]`` of different workers
must never overlap (the workers run on this host, so their ``time.time()`` stamps are comparable).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import time
from typing import Any

import pytest

from airflow_provider_aiq_braze.delivery.ownership import (
    LeaseHeld,
    LeaseLost,
    LeaseSettings,
    LedgerLease,
    OwnerId,
    lease_path,
)
from airflow_provider_aiq_braze.storage import ConditionalWritesUnsupported, read_versioned, storage_path
from tests.storage.conftest import Store

#: Short enough for a test, long enough for a busy 2-core machine to renew in time.
TTL = 3.0


def settings(**overrides: Any) -> dict[str, Any]:
    return {"ttl": TTL, "wait": 60.0, "poll_interval": 0.1, "grace": 0.5, "max_clock_skew": 0.5, **overrides}


def lease_uri(store: Store) -> str:
    return store.uri("ledger/dag/task/events-abc.jsonl.lease")


def lease_worker(workers: Any, store: Store, *, hold: float | None, **overrides: Any) -> Any:
    """A process holding the test lease for ``hold`` seconds (``None``: until killed)."""
    return workers(
        command="lease",
        uri=lease_uri(store),
        conn_id=store.conn_id,
        settings=settings(**overrides),
        hold=hold,
    )


def owned_intervals(all_events: list[list[dict[str, Any]]]) -> list[tuple[float, float]]:
    intervals = []
    for events in all_events:
        names = [e["event"] for e in events]
        assert "lost" not in names, events
        start = next(e["t"] for e in events if e["event"] == "acquired")
        end = next(e["t"] for e in events if e["event"] == "releasing")
        intervals.append((start, end))
    return sorted(intervals)


@pytest.mark.parametrize("instances", [2, 3])
def test_concurrent_instances_own_the_ledger_one_at_a_time(
    store: Store, workers: Any, instances: int
) -> None:
    started = [lease_worker(workers, store, hold=1.0) for _ in range(instances)]
    intervals = owned_intervals([worker.finish() for worker in started])
    assert len(intervals) == instances
    for (_, end), (next_start, _) in itertools.pairwise(intervals):
        assert end < next_start, intervals
    assert read_versioned(storage_path(lease_uri(store), store.conn_id)) is None  # released


def test_second_instance_fails_fast_naming_the_holder(store: Store, workers: Any) -> None:
    holder = workers(
        command="lease", uri=lease_uri(store), conn_id=store.conn_id, settings=settings(), hold=None
    )
    holder.first("acquired")
    second = lease_worker(workers, store, hold=1.0, wait=0.0)
    message = second.first("held")["message"]
    assert f"{socket.gethostname()} pid {holder.process.pid}, try 1" in message
    assert "nothing was sent" in message
    assert not second.named("acquired")


def test_sigkilled_owner_is_taken_over_after_its_ttl(store: Store, workers: Any) -> None:
    owner = workers(
        command="lease", uri=lease_uri(store), conn_id=store.conn_id, settings=settings(), hold=None
    )
    owner.first("acquired")
    waiter = workers(
        command="lease", uri=lease_uri(store), conn_id=store.conn_id, settings=settings(), hold=0.5
    )
    waiter.first("start")
    time.sleep(0.5)  # the waiter is polling the held lease
    assert not waiter.named("acquired")
    killed_at = time.time()
    owner.kill()  # SIGKILL: no release, no renewal
    acquired = waiter.first("acquired")
    assert acquired["t"] > killed_at
    events = waiter.finish()
    assert [e["event"] for e in events if e["event"] != "check_ok"] == [
        "start",
        "acquired",
        "releasing",
        "released",
    ]


def test_owner_taken_over_while_paused_finds_out_at_check(store: Store, workers: Any) -> None:
    """A frozen owner (SIGSTOP: a long GC pause, a suspended VM) must not send after a takeover."""
    owner = lease_worker(workers, store, hold=None)
    owner.first("check_ok")
    os.kill(owner.process.pid, signal.SIGSTOP)
    try:
        taker = lease_worker(workers, store, hold=None)
        taken_at = taker.first("acquired")["t"]
    finally:
        os.kill(owner.process.pid, signal.SIGCONT)
    lost = owner.first("lost")
    assert "taken over" in lost["message"] or "not renewed in time" in lost["message"]
    last_ok = max(e["checked"] for e in owner.named("check_ok"))
    assert last_ok < taken_at  # the owner's last successful check came before the takeover
    current = read_versioned(storage_path(lease_uri(store), store.conn_id))
    assert current is not None
    assert json.loads(current[0])["owner"]["token"] == taker.first("acquired")["token"]
    assert taker.process.poll() is None and not taker.named("lost")  # the taker still owns it


def test_check_release_and_context_manager_in_process(store: Store) -> None:
    path = lease_path(store.path("ledger/dag/task/events-abc.jsonl"))
    lease = LedgerLease(path, owner=OwnerId.current(label="run 1"), settings=LeaseSettings(**settings()))
    with pytest.raises(LeaseLost, match="not held"):
        lease.check()
    with lease:
        lease.check()
        assert lease.held
        held = read_versioned(path)
        assert held is not None and json.loads(held[0])["owner"]["label"] == "run 1"
        other = LedgerLease(path, owner=OwnerId.current(), settings=LeaseSettings(**settings(wait=0.0)))
        with pytest.raises(LeaseHeld, match="run 1"):
            other.acquire()
    assert not lease.held
    with pytest.raises(LeaseLost, match="released"):
        lease.check()
    assert read_versioned(path) is None


def test_renewals_keep_the_lease_past_its_ttl(tmp_path: Any) -> None:
    path = storage_path(tmp_path / "x.lease")
    lease = LedgerLease(path, owner=OwnerId.current(), settings=LeaseSettings(ttl=0.6, poll_interval=0.1))
    lease.acquire()
    try:
        first = read_versioned(path)
        deadline = time.monotonic() + 10
        while read_versioned(path) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        renewed = read_versioned(path)
        assert renewed is not None and renewed != first
        assert json.loads(renewed[0])["renewals"] >= 1
        lease.check()
    finally:
        lease.release()


def test_storage_without_conditional_writes_is_refused_unless_opted_out(caplog: Any) -> None:
    import fsspec
    from airflow.sdk.io.store import attach

    attach(protocol="memory", fs=fsspec.filesystem("memory"))
    try:
        path = storage_path("memory://bucket/ledger.jsonl.lease")
    except Exception:
        pytest.skip("this Airflow cannot represent memory:// URIs")
    with pytest.raises(ConditionalWritesUnsupported, match="require_exclusive=False"):
        LedgerLease(path, owner=OwnerId.current()).acquire()
    unguarded = LedgerLease(path, owner=OwnerId.current(), settings=LeaseSettings(require_exclusive=False))
    unguarded.acquire()
    unguarded.check()  # runs unguarded: nothing to lose
    unguarded.release()
    assert "exclusivity not guaranteed" in caplog.text
