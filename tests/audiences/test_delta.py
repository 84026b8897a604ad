"""The membership delta on real DuckDB, real batches and real state directories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_provider_aiq_braze.audiences import DeltaPlan, SnapshotStore
from tests.audiences._support import batch, members, updates

Run = Callable[..., DeltaPlan]
EXT = "external_id"
BRAZE_ID = "5f0c1b2a3d4e5f6a7b8c9d0e"


def apply(plan: DeltaPlan, store: SnapshotStore) -> dict[tuple[str, str], dict[str, Any]]:
    """Deliver (collect) the plan's updates, then commit its state, as the operator does."""
    sent = updates(plan)
    plan.commit(store)
    return sent


def test_enter_exit_unchanged_across_three_snapshots(run: Run, store: SnapshotStore) -> None:
    first = run(members("A", "1", "u1", "u2", "u3"), "2026-11-01")
    assert apply(first, store) == {(EXT, u): {"AIQ_A_1": True} for u in ("u1", "u2", "u3")}
    assert first.counts.entered == 3 and first.counts.data_points == 3

    second = run(members("A", "1", "u2", "u3", "u4"), "2026-11-02")
    assert apply(second, store) == {(EXT, "u1"): {"AIQ_A_1": False}, (EXT, "u4"): {"AIQ_A_1": True}}
    split = second.counts.splits["A/1"]
    assert (split.entered, split.exited, split.unchanged, split.members) == (1, 1, 2, 3)
    assert second.counts.data_points == 2
    assert second.counts.full_resync_data_points == 3

    third = run(members("A", "1", "u1", "u4"), "2026-11-03")
    assert apply(third, store) == {
        (EXT, "u1"): {"AIQ_A_1": True},
        (EXT, "u2"): {"AIQ_A_1": False},
        (EXT, "u3"): {"AIQ_A_1": False},
    }
    assert (third.counts.entered, third.counts.exited, third.counts.unchanged) == (1, 2, 1)
    applied = store.load("A", "1")
    assert applied is not None and applied.snapshot_key == "2026-11-03" and applied.members == 2
    state = pq.read_table(applied.local_path).to_pylist()
    assert sorted(state, key=lambda r: r["identifier"]) == [
        {"identifier_kind": EXT, "identifier": "u1"},
        {"identifier_kind": EXT, "identifier": "u4"},
    ]


def test_exit_value_none_removes_the_attribute(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1", "u2"), "2026-11-01"), store)
    plan = run(members("A", "1", "u2"), "2026-11-02", exit_value=None)
    assert updates(plan) == {(EXT, "u1"): {"AIQ_A_1": None}}
    assert plan.counts.exited == 1


def test_first_run_without_state_sets_every_member_true(run: Run) -> None:
    plan = run(members("A", "1", "u1", "u2"), "2026-11-01")
    assert updates(plan) == {(EXT, "u1"): {"AIQ_A_1": True}, (EXT, "u2"): {"AIQ_A_1": True}}
    assert plan.skipped_splits == []
    assert [(s.audience_id, s.split_id, s.members) for s in plan.new_state_files] == [("A", "1", 2)]


def test_several_audiences_and_splits_in_one_input(run: Run, store: SnapshotStore) -> None:
    rows = members("A", "1", "u1", "u2") + members("A", "2", "u3") + members("B", "x", "u1")
    apply(run(rows, "2026-11-01"), store)
    assert store.splits() == [("A", "1"), ("A", "2"), ("B", "x")]

    rows = members("A", "1", "u1") + members("A", "2", "u3", "u4") + members("B", "x", "u1")
    plan = run(rows, "2026-11-02")
    assert updates(plan) == {(EXT, "u2"): {"AIQ_A_1": False}, (EXT, "u4"): {"AIQ_A_2": True}}
    assert {k: (s.entered, s.exited, s.unchanged) for k, s in plan.counts.splits.items()} == {
        "A/1": (0, 1, 1),
        "A/2": (1, 0, 1),
        "B/x": (0, 0, 1),
    }


def test_split_absent_from_a_multi_split_file_is_left_alone(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1") + members("A", "2", "u2"), "2026-11-01"), store)
    plan = run(members("A", "1", "u1"), "2026-11-02")
    assert updates(plan) == {}
    assert list(plan.counts.splits) == ["A/1"]
    plan.commit(store)
    applied = store.load("A", "2")
    assert applied is not None and applied.snapshot_key == "2026-11-01"


def test_audience_and_split_given_as_arguments(run: Run, store: SnapshotStore) -> None:
    rows = [{"external_id": "u1"}, {"external_id": "u2"}]
    opts = {"audience_id": "48213", "split_id": "A", "braze_id_col": None, "identifier_preference": [EXT]}
    plan = run(rows, "2026-11-01", input_options=opts)
    assert updates(plan) == {(EXT, "u1"): {"AIQ_48213_A": True}, (EXT, "u2"): {"AIQ_48213_A": True}}
    plan.commit(store)
    # an empty single-split snapshot: every member left
    empty = run([], "2026-11-02", input_options=opts)
    assert updates(empty) == {(EXT, "u1"): {"AIQ_48213_A": False}, (EXT, "u2"): {"AIQ_48213_A": False}}
    assert empty.counts.splits["48213/A"].members == 0


def test_changes_input(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1", "u2"), "2026-11-01"), store)
    rows = [
        {"audience_id": "A", "split_id": "1", "external_id": "u3", "member": "TRUE"},
        {"audience_id": "A", "split_id": "1", "external_id": "u1", "member": "no"},
        {"audience_id": "A", "split_id": "1", "external_id": "u2", "member": "1"},  # already a member
        {"audience_id": "A", "split_id": "1", "external_id": "u9", "member": "false"},  # never a member
        {"audience_id": "A", "split_id": "1", "external_id": "u8", "member": "maybe"},
    ]
    opts = {"input_kind": "changes", "member_col": "member"}
    plan = run(rows, "2026-11-02", input_options=opts)
    assert updates(plan) == {(EXT, "u3"): {"AIQ_A_1": True}, (EXT, "u1"): {"AIQ_A_1": False}}
    split = plan.counts.splits["A/1"]
    assert (split.entered, split.exited, split.unchanged, split.members, split.rejected) == (1, 1, 2, 2, 1)
    [reject] = list(plan.iter_rejects())
    assert reject.row == 5 and "'member' value 'maybe' is not a boolean" in reject.reason
    plan.commit(store)
    applied = store.load("A", "1")
    assert applied is not None
    assert sorted(r["identifier"] for r in pq.read_table(applied.local_path).to_pylist()) == ["u2", "u3"]

    full = run(rows[:4], "2026-11-03", input_options=opts, mode="full")
    assert updates(full) == {
        (EXT, "u3"): {"AIQ_A_1": True},
        (EXT, "u1"): {"AIQ_A_1": False},
        (EXT, "u2"): {"AIQ_A_1": True},
        (EXT, "u9"): {"AIQ_A_1": False},
    }


def test_attribute_columns_are_sent_only_when_changed(run: Run, store: SnapshotStore) -> None:
    opts = {"attribute_columns": ["tier", "score"]}
    rows = members("A", "1", "u1", tier="gold", score="10") + members(
        "A", "1", "u2", tier="silver", score="5"
    )
    first = run(rows, "2026-11-01", input_options=opts)
    assert apply(first, store) == {
        (EXT, "u1"): {"AIQ_A_1": True, "score": "10", "tier": "gold"},
        (EXT, "u2"): {"AIQ_A_1": True, "score": "5", "tier": "silver"},
    }
    assert first.counts.data_points == 6

    rows = members("A", "1", "u1", tier="gold", score="11") + members(
        "A", "1", "u2", tier="silver", score="5"
    )
    second = run(rows, "2026-11-02", input_options=opts)
    assert apply(second, store) == {(EXT, "u1"): {"score": "11"}}
    assert second.counts.attribute_updates == 1 and second.counts.data_points == 1

    # a missing value is not sent, and the state keeps the value Braze still holds
    rows = members("A", "1", "u1", tier="gold") + members("A", "1", "u2", tier="silver", score="5")
    rows[0]["score"] = None
    third = run(rows, "2026-11-03", input_options=opts)
    assert apply(third, store) == {}
    rows[0]["score"] = "11"
    fourth = run(rows, "2026-11-04", input_options=opts)
    assert updates(fourth) == {}


def test_attribute_value_too_long_is_rejected(run: Run) -> None:
    rows = members("A", "1", "u1", tier="x" * 256) + members("A", "1", "u2", tier="ok")
    plan = run(rows, "2026-11-01", input_options={"attribute_columns": ["tier"]})
    assert updates(plan) == {(EXT, "u2"): {"AIQ_A_1": True, "tier": "ok"}}
    [reject] = list(plan.iter_rejects())
    assert (reject.file, reject.row) == ("members.csv", 1)
    assert reject.reason == "attribute 'tier' is a string of 256 characters (Braze allows at most 255)"


def test_identifier_preference_and_rows_without_identifier(run: Run) -> None:
    rows = [
        {"audience_id": "A", "split_id": "1", "external_id": " u1 ", "braze_id": BRAZE_ID},
        {"audience_id": "A", "split_id": "1", "external_id": "", "braze_id": BRAZE_ID},
        {"audience_id": "A", "split_id": "1", "external_id": "  ", "braze_id": None},
        {"audience_id": "A", "split_id": "1", "external_id": None, "braze_id": "not-hex"},
        {"audience_id": "", "split_id": "1", "external_id": "u5", "braze_id": None},
        {"audience_id": "A", "split_id": None, "external_id": "u6", "braze_id": None},
    ]
    plan = run(rows, "2026-11-01")
    # a braze_id is any text (Braze documents no format; this used to reject 'not-hex')
    assert updates(plan) == {
        (EXT, "u1"): {"AIQ_A_1": True},
        ("braze_id", BRAZE_ID): {"AIQ_A_1": True},
        ("braze_id", "not-hex"): {"AIQ_A_1": True},
    }
    rejects = [(r.row, r.reason) for r in plan.iter_rejects()]
    assert rejects == [
        (3, "no identifier: 'external_id' and 'braze_id' are all empty"),
        (5, "audience id column 'audience_id' is empty"),
        (6, "split id column 'split_id' is empty"),
    ]
    assert plan.counts.rejected == 3 and plan.counts.rows_read == 6

    braze_first = run(rows[:2], "2026-11-01", input_options={"identifier_preference": ["braze_id", EXT]})
    assert updates(braze_first) == {("braze_id", BRAZE_ID): {"AIQ_A_1": True}}
    assert braze_first.counts.duplicates == 1  # both rows name the same braze_id


def test_duplicates_count_once_and_conflicts_are_rejected(run: Run) -> None:
    rows = members("A", "1", "u1", "u1", "u2", "u1", tier="t") + members("A", "1", "u2", tier="other")
    plan = run(rows, "2026-11-01", input_options={"attribute_columns": ["tier"]})
    assert updates(plan) == {
        (EXT, "u1"): {"AIQ_A_1": True, "tier": "t"},
        (EXT, "u2"): {"AIQ_A_1": True, "tier": "t"},
    }
    assert plan.counts.duplicates == 2
    [reject] = list(plan.iter_rejects())
    assert reject.row == 5 and reject.reason.startswith("conflicts with row 3 of members.csv")
    counts = plan.counts
    assert counts.rows_read == counts.rejected + counts.duplicates + counts.members


def test_invalid_attribute_template_rejects_the_split(run: Run) -> None:
    long_id = "x" * 260
    rows = members("A", "1", "u1") + members(long_id, "1", "u2")
    plan = run(rows, "2026-11-01")
    assert updates(plan) == {(EXT, "u1"): {"AIQ_A_1": True}}
    [reject] = list(plan.iter_rejects())
    assert reject.row == 2 and "attribute name is 266 characters long" in reject.reason
    assert plan.counts.splits[f"{long_id}/1"].status == "rejected"
    assert [s.audience_id for s in plan.new_state_files] == ["A"]

    dollar = run(members("A", "1", "u1"), "2026-11-01", attribute_template="${audience_id}_{split_id}")
    assert updates(dollar) == {}
    assert "starts with '$'" in next(iter(dollar.iter_rejects())).reason

    with pytest.raises(ValueError, match="attribute_template"):
        run(members("A", "1", "u1"), "2026-11-01", attribute_template="AIQ_{audience}")


def test_template_that_merges_splits_rejects_the_second(run: Run) -> None:
    plan = run(
        members("A", "1", "u1") + members("A", "2", "u2"),
        "2026-11-01",
        attribute_template="AIQ_{audience_id}",
    )
    assert updates(plan) == {(EXT, "u1"): {"AIQ_A": True}}
    [reject] = list(plan.iter_rejects())
    assert "is also the attribute of audience 'A' split '1'" in reject.reason


def test_full_mode_resends_everything(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1", "u2"), "2026-11-01"), store)
    plan = run(members("A", "1", "u2", "u3"), "2026-11-02", mode="full")
    assert updates(plan) == {
        (EXT, "u1"): {"AIQ_A_1": False},
        (EXT, "u2"): {"AIQ_A_1": True},
        (EXT, "u3"): {"AIQ_A_1": True},
    }
    counts = plan.counts
    assert (counts.entered, counts.exited, counts.unchanged, counts.resent, counts.data_points) == (
        1,
        1,
        1,
        1,
        3,
    )


def test_older_snapshot_is_skipped_unless_forced(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1"), "2026-11-03"), store)
    older = run(members("A", "1", "u2"), "2026-11-02")
    assert updates(older) == {}
    [skipped] = older.skipped_splits
    assert skipped.reason.startswith("snapshot 2026-11-02 is older than the applied 2026-11-03")
    assert skipped.rows == 1 and older.counts.skipped_rows == 1
    assert older.new_state_files == [] and older.commit(store) == []

    forced = run(members("A", "1", "u2"), "2026-11-02", force=True)
    assert updates(forced) == {(EXT, "u1"): {"AIQ_A_1": False}, (EXT, "u2"): {"AIQ_A_1": True}}
    assert forced.commit(store) == [("A", "1")]
    applied = store.load("A", "1")
    assert applied is not None and applied.snapshot_key == "2026-11-02"


def test_rerun_after_commit_sends_nothing(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1"), "2026-11-01"), store)
    apply(run(members("A", "1", "u2"), "2026-11-02T00:00:00Z"), store)
    again = run(members("A", "1", "u2"), "2026-11-02")  # the same instant, written differently
    assert updates(again) == {}
    assert "was already applied" in again.skipped_splits[0].reason
    forced = run(members("A", "1", "u2"), "2026-11-02", force=True)
    assert updates(forced) == {}


def test_crash_before_commit_recomputes_the_same_plan(run: Run, store: SnapshotStore) -> None:
    apply(run(members("A", "1", "u1", "u2", "u3"), "2026-11-01"), store)
    rows = members("A", "1", "u3", "u4", "u5") + members("B", "1", "u1")
    crashed = run(rows, "2026-11-02")
    first = list(crashed.iter_updates(batch_rows=2))
    # no commit: the task died after (part of) the delivery
    retry = run(list(reversed(rows)), "2026-11-02")
    assert list(retry.iter_updates(batch_rows=1000)) == first
    assert retry.counts.as_dict() == crashed.counts.as_dict() | {"splits": retry.counts.as_dict()["splits"]}
    assert [u.identifier for u in first] == ["u1", "u2", "u4", "u5"]


def test_a_user_in_two_splits_gets_one_update(run: Run) -> None:
    rows = members("A", "1", "u1") + members("B", "2", "u1") + members("A", "1", "u2")
    plan = run(rows, "2026-11-01")
    sent = list(plan.iter_updates(batch_rows=1))
    assert [(u.identifier, u.attributes) for u in sent] == [
        ("u1", {"AIQ_A_1": True, "AIQ_B_2": True}),
        ("u2", {"AIQ_A_1": True}),
    ]
    assert plan.counts.profiles == 2 and plan.counts.data_points == 3


def test_attribute_columns_across_splits_are_written_once(run: Run) -> None:
    rows = members("A", "1", "u1", tier="gold") + members("B", "2", "u1", tier="gold")
    plan = run(rows, "2026-11-01", input_options={"attribute_columns": ["tier"]})
    assert updates(plan) == {(EXT, "u1"): {"AIQ_A_1": True, "AIQ_B_2": True, "tier": "gold"}}
    assert plan.counts.data_points == 3


def test_updates_stream_in_identifier_order_across_batches(run: Run) -> None:
    ids = [f"u{i:03d}" for i in range(250)]
    batches = [
        batch(members("A", "1", *ids[:120]), file="a.csv"),
        batch(members("A", "1", *ids[120:]), file="b.csv"),
    ]
    plan = run(batches, "2026-11-01")
    streamed = [u.identifier for u in plan.iter_updates(batch_rows=7)]
    assert streamed == sorted(ids)


def test_missing_required_column_is_an_error(run: Run) -> None:
    with pytest.raises(ValueError, match="no column 'split_id'"):
        run([{"audience_id": "A", "external_id": "u1"}], "2026-11-01")
    with pytest.raises(ValueError, match="member_col"):
        run(members("A", "1", "u1"), "2026-11-01", input_options={"input_kind": "changes"})
