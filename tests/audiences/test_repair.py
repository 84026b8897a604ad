"""Pending markers: a run interrupted after it started writing is repaired by the next run.

Each test delivers (collects) part of a plan without committing it, as a run killed mid-delivery
or one that lost the namespace's lease would, then checks what the next plan writes.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow.parquet as pq

from airflow_provider_aiq_braze.audiences import DeltaPlan, SnapshotStore
from tests.audiences._support import members, updates

Run = Callable[..., DeltaPlan]
EXT = "external_id"


def _interrupted(plan: DeltaPlan, store: SnapshotStore, writer: str = "ledger-of-the-killed-run") -> None:
    """What a run does before it dies: store its marker, send (some of) its writes, never commit."""
    assert plan.publish_pending(store, writer) is not None
    updates(plan)


def test_the_next_run_rewrites_what_a_newer_interrupted_run_wrote(run: Run, store: SnapshotStore) -> None:
    first = run(members("A", "1", "u1", "u2", "u3"), "2026-11-01")
    first.commit(store)
    # the nightly of 11-03 wrote u1/u2 false and u4 true, then died before its commit
    _interrupted(run(members("A", "1", "u3", "u4"), "2026-11-03"), store)
    # a backfill of 11-02 (newer than the applied 11-01) runs next
    backfill = run(members("A", "1", "u1", "u2", "u5"), "2026-11-02")
    assert updates(backfill) == {
        (EXT, "u3"): {"AIQ_A_1": False},  # the delta from 11-01
        (EXT, "u5"): {"AIQ_A_1": True},
        (EXT, "u1"): {"AIQ_A_1": True},  # repairs: what the dead run may have changed
        (EXT, "u2"): {"AIQ_A_1": True},
        (EXT, "u4"): {"AIQ_A_1": False},
    }
    counts = backfill.counts.splits["A/1"]
    assert (counts.entered, counts.exited, counts.repaired, counts.data_points) == (1, 1, 3, 5)
    backfill.commit(store)
    assert store.pending() == [] and store.applied_key("A", "1") == "2026-11-02"


def test_an_older_snapshot_still_repairs_its_split(run: Run, store: SnapshotStore) -> None:
    run(members("A", "1", "u1"), "2026-11-03").commit(store)
    _interrupted(run(members("A", "1", "u2"), "2026-11-04"), store)
    older = run(members("A", "1", "u1", "u3"), "2026-11-02")
    # skipped (older than the applied 11-03), but the profiles the dead run wrote go back to 11-03
    assert updates(older) == {(EXT, "u1"): {"AIQ_A_1": True}, (EXT, "u2"): {"AIQ_A_1": False}}
    [skipped] = older.skipped_splits
    assert "older than the applied 2026-11-03" in skipped.reason and "rewritten" in skipped.reason
    assert older.counts.repaired == 2 and older.counts.skipped_rows == 2 and older.new_state_files == []
    assert older.commit(store) == []
    assert store.pending() == [] and store.applied_key("A", "1") == "2026-11-03"


def test_a_split_named_only_by_a_marker_is_repaired_not_computed(run: Run, store: SnapshotStore) -> None:
    run(members("A", "1", "u1") + members("B", "1", "u1", "u2"), "2026-11-01").commit(store)
    _interrupted(run(members("A", "1", "u1") + members("B", "1", "u3"), "2026-11-02"), store)
    # the next file covers only audience A: B keeps its applied members, and the dead run's writes to
    # B are undone; B is not computed (absence from a file never empties a split)
    plan = run(members("A", "1", "u1", "u4"), "2026-11-03")
    assert updates(plan) == {
        (EXT, "u4"): {"AIQ_A_1": True},
        (EXT, "u1"): {"AIQ_B_1": True},
        (EXT, "u2"): {"AIQ_B_1": True},
        (EXT, "u3"): {"AIQ_B_1": False},
    }
    assert [(s.audience_id, s.reason) for s in plan.skipped_splits] == [
        (
            "B",
            "not in this run's input; the profiles an interrupted run may have changed are rewritten to "
            "the applied state",
        )
    ]
    assert [(s.audience_id, s.split_id) for s in plan.new_state_files] == [("A", "1")]
    plan.commit(store)
    assert store.applied_key("B", "1") == "2026-11-01" and store.pending() == []


def test_changes_input_repairs_profiles_no_change_row_names(run: Run, store: SnapshotStore) -> None:
    opts = {"input_kind": "changes", "member_col": "member"}

    def change(user: str, member: str) -> dict[str, str]:
        return {"audience_id": "A", "split_id": "1", "external_id": user, "member": member}

    run([change("u1", "true"), change("u2", "true")], "2026-11-01", input_options=opts).commit(store)
    _interrupted(run([change("u1", "false"), change("u3", "true")], "2026-11-02", input_options=opts), store)
    plan = run([change("u4", "true")], "2026-11-03", input_options=opts)
    assert updates(plan) == {
        (EXT, "u4"): {"AIQ_A_1": True},
        (EXT, "u1"): {"AIQ_A_1": True},  # still a member in the applied state
        (EXT, "u3"): {"AIQ_A_1": False},  # never applied
    }
    plan.commit(store)
    applied = store.load("A", "1")
    assert applied is not None
    assert sorted(pq.read_table(applied.local_path).column("identifier").to_pylist()) == ["u1", "u2", "u4"]


def test_a_retry_of_the_same_plan_writes_nothing_more(run: Run, store: SnapshotStore) -> None:
    run(members("A", "1", "u1", "u2"), "2026-11-01").commit(store)
    killed = run(members("A", "1", "u2", "u3"), "2026-11-02")
    _interrupted(killed, store)
    retry = run(members("A", "1", "u2", "u3"), "2026-11-02")
    assert list(retry.iter_updates()) == list(killed.iter_updates())
    assert retry.counts.repaired == 0


def test_markers_of_splits_this_run_cannot_repair_are_kept(run: Run, store: SnapshotStore) -> None:
    long_id = "x" * 260  # its attribute name is too long for Braze: the split is rejected
    _interrupted(run(members("A", "1", "u1"), "2026-11-01"), store)
    plan = run(members("A", "1", "u1") + members(long_id, "1", "u2"), "2026-11-02")
    before = {m.name for m in store.pending()}
    # the marker also names a profile of the rejected split (written by hand: a run cannot)
    plan._con.execute(
        "INSERT INTO markers SELECT ?, '1', 'external_id', 'u9', filename FROM markers LIMIT 1", [long_id]
    )
    plan.commit(store)
    [kept] = store.pending()
    assert kept.name not in before
    assert pq.read_table(kept.local_path).to_pylist() == [
        {"audience_id": long_id, "split_id": "1", "identifier_kind": EXT, "identifier": "u9"}
    ]


def test_full_mode_resends_its_own_splits_and_repairs_only_the_others(run: Run, store: SnapshotStore) -> None:
    run(members("A", "1", "u1") + members("B", "1", "u2", "u3"), "2026-11-01").commit(store)
    _interrupted(run(members("B", "1", "u3", "u4"), "2026-11-02"), store)
    plan = run(members("A", "1", "u1"), "2026-11-03", mode="full")
    assert updates(plan) == {
        (EXT, "u1"): {"AIQ_A_1": True},  # full: every member of the computed split
        (EXT, "u2"): {"AIQ_B_1": True},  # B only where the dead run wrote, not every member
        (EXT, "u4"): {"AIQ_B_1": False},
    }
    assert (plan.counts.resent, plan.counts.repaired) == (1, 2)
