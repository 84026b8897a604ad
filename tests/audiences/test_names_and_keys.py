"""Attribute names checked against the applied state, renames, and snapshot keys that are not dates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_aiq_braze.audiences import DeltaPlan, SnapshotKeyError, SnapshotStore
from tests.audiences._support import members, updates

Run = Callable[..., DeltaPlan]
EXT = "external_id"


def test_an_attribute_owned_by_another_split_of_the_applied_state_is_refused(
    run: Run, store: SnapshotStore
) -> None:
    run(members("1_2", "3", "u1"), "2026-11-01").commit(store)
    # day 2: audience 1 split 2_3 maps to the same AIQ_1_2_3; an unrelated split goes through
    plan = run(members("1", "2_3", "u2") + members("7", "1", "u3"), "2026-11-02")
    assert updates(plan) == {(EXT, "u3"): {"AIQ_7_1": True}}
    [reject] = list(plan.iter_rejects())
    assert reject.reason.startswith("invalid membership attribute for audience '1' split '2_3': ")
    assert "attribute 'AIQ_1_2_3' is already written by audience '1_2' split '3'" in reject.reason
    assert "Renaming an attribute" in reject.reason
    assert plan.counts.splits["1/2_3"].status == "rejected"
    plan.commit(store)
    # the owner itself keeps writing it
    again = run(members("1_2", "3", "u1", "u4"), "2026-11-03")
    assert updates(again) == {(EXT, "u4"): {"AIQ_1_2_3": True}}


def test_renaming_a_split_attribute_needs_a_full_run(run: Run, store: SnapshotStore) -> None:
    run(members("A", "1", "u1", "u2"), "2026-11-01").commit(store)
    renamed = run(
        members("A", "1", "u1", "u3"), "2026-11-02", attribute_template="SEG_{audience_id}_{split_id}"
    )
    assert updates(renamed) == {}
    reason = next(iter(renamed.iter_rejects())).reason
    assert "its state was applied as attribute 'AIQ_A_1', and this run would write 'SEG_A_1'" in reason
    assert "mode='full'" in reason
    full = run(
        members("A", "1", "u1", "u3"),
        "2026-11-02",
        attribute_template="SEG_{audience_id}_{split_id}",
        mode="full",
    )
    assert updates(full) == {
        (EXT, "u1"): {"SEG_A_1": True},
        (EXT, "u2"): {"SEG_A_1": False},
        (EXT, "u3"): {"SEG_A_1": True},
    }
    full.commit(store)
    manifest = store.manifest("A", "1")
    assert manifest is not None and manifest.attribute == "SEG_A_1"


def _legacy_state(tmp_path: Path, store: SnapshotStore, key: str) -> None:
    """A split applied by an earlier version with a key that is not a date."""
    path = tmp_path / "legacy.parquet"
    pq.write_table(pa.table({"identifier_kind": [EXT], "identifier": ["u1"]}), path)
    store.commit("A", "1", str(path), snapshot_key=key, attribute="AIQ_A_1", members=1, base=None)


def test_an_applied_key_that_is_not_a_date_is_reported_with_the_fix(
    run: Run, store: SnapshotStore, tmp_path: Path
) -> None:
    _legacy_state(tmp_path, store, "None")
    plan = run(members("A", "1", "u2") + members("B", "1", "u3"), "2026-11-02")
    assert updates(plan) == {(EXT, "u3"): {"AIQ_B_1": True}}  # the other split is applied
    [skipped] = plan.skipped_splits
    assert skipped.needs_force and skipped.applied_key == "None"
    assert skipped.reason == (
        "the applied snapshot key 'None' is not a date or date-time (written by an earlier version, e.g. "
        "from an unset template parameter), so no snapshot can be ordered against it: run once with "
        "force=True to apply snapshot 2026-11-02 over it"
    )
    forced = run(members("A", "1", "u2"), "2026-11-02", force=True)
    assert updates(forced) == {(EXT, "u1"): {"AIQ_A_1": False}, (EXT, "u2"): {"AIQ_A_1": True}}
    forced.commit(store)
    after = run(members("A", "1", "u2"), "2027-01-01T00:00:00Z")
    assert after.skipped_splits == [] and updates(after) == {}


@pytest.mark.parametrize("key", ["None", "", "run-7", "20261102"])
def test_a_snapshot_key_that_is_not_a_date_is_refused_before_anything_is_read(run: Run, key: str) -> None:
    with pytest.raises(SnapshotKeyError, match=f"snapshot key '{key}' .* is not a date or date-time"):
        run(members("A", "1", "u1"), key)
