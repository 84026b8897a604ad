"""Snapshot state on real directories (and an fsspec in-memory filesystem as a remote store)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.audiences import (
    DeltaInput,
    SnapshotKeyError,
    SnapshotStore,
    StateConflict,
    StateError,
    checked_snapshot_key,
    compare_snapshot_keys,
    compute_delta,
    is_older,
    parse_snapshot_key,
)
from tests.audiences._support import batch, members, updates


def members_file(tmp_path: Path, *ids: str) -> str:
    path = tmp_path / f"members-{uuid.uuid4().hex[:6]}.parquet"
    table = pa.table({"identifier_kind": ["external_id"] * len(ids), "identifier": list(ids)})
    pq.write_table(table, path)
    return str(path)


@pytest.mark.parametrize(
    ("new", "applied", "order"),
    [
        ("2026-11-02", "2026-11-03", -1),
        ("2026-11-03", "2026-11-03T00:00:00+00:00", 0),
        ("2026-11-03T00:00:00Z", "2026-11-03T01:00:00+01:00", 0),
        ("2026-11-03T10:00:00", "2026-11-03T09:59:59+00:00", 1),
        ("2026-11-03 10:00", "2026-11-03T10:00:00.000001Z", -1),
        ("2026-11-03T10:00:00+0100", "2026-11-03T09:00:00z", 0),
    ],
)
def test_snapshot_key_order(new: str, applied: str, order: int) -> None:
    assert compare_snapshot_keys(new, applied) == order
    assert is_older(new, applied) is (order < 0)


@pytest.mark.parametrize(
    "key", ["None", "", "run-0002", "2026-11-9", "20261103", "2026-02-30", "2026-11-03T25:00", "2026-W45-2"]
)
def test_keys_that_are_not_dates_cannot_be_ordered(key: str) -> None:
    assert parse_snapshot_key(key) is None
    with pytest.raises(SnapshotKeyError, match=f"snapshot key '{key}' is not a date or date-time"):
        compare_snapshot_keys(key, "2026-11-03")
    with pytest.raises(SnapshotKeyError) as info:
        checked_snapshot_key(key, "the snapshot_key argument")
    assert f"snapshot key '{key}' (from the snapshot_key argument) is not a date or date-time" in str(
        info.value
    )
    assert "2026-11-03T03:00:00Z" in str(info.value) and "Nothing was sent" in str(info.value)


def test_a_key_that_is_no_string_is_refused() -> None:
    with pytest.raises(SnapshotKeyError, match=r"snapshot key None \(from the run's data interval\)"):
        checked_snapshot_key(None, "the run's data interval")


def test_commit_and_load_round_trip(tmp_path: Path) -> None:
    store = SnapshotStore(ObjectStoragePath(str(tmp_path / "state")), "workspace/prod")
    assert store.load("A", "1") is None and store.splits() == []
    store.commit(
        "aud/1",
        "..",
        members_file(tmp_path, "u1", "u2"),
        snapshot_key="2026-11-01",
        attribute="AIQ_x",
        members=2,
        base=None,
    )
    applied = store.load("aud/1", "..")
    assert applied is not None
    assert (applied.snapshot_key, applied.attribute, applied.members) == ("2026-11-01", "AIQ_x", 2)
    assert pq.read_table(applied.local_path).column("identifier").to_pylist() == ["u1", "u2"]
    assert store.splits() == [("aud/1", "..")]
    manifest = json.loads((store.split_dir("aud/1", "..") / "manifest.json").read_bytes())
    assert manifest["format_version"] == 1 and manifest["data_file"] == os.path.basename(applied.local_path)


def test_commit_is_a_compare_and_swap(tmp_path: Path) -> None:
    store = SnapshotStore(f"file://{tmp_path}/state", "ns")
    assert store.is_local and store.conditional
    first = store.commit(
        "A", "1", members_file(tmp_path, "u1"), snapshot_key="2026-11-03", attribute="a", members=1, base=None
    )
    # two runs read the same state; the first to commit wins, the second changes nothing
    read_by_one, read_by_two = store.manifest("A", "1"), store.manifest("A", "1")
    assert read_by_one == first
    store.commit(
        "A",
        "1",
        members_file(tmp_path, "u2"),
        snapshot_key="2026-11-04",
        attribute="a",
        members=1,
        base=read_by_one,
    )
    with pytest.raises(StateConflict, match=r"computed against snapshot 2026-11-03, now snapshot 2026-11-04"):
        store.commit(
            "A",
            "1",
            members_file(tmp_path, "u3"),
            snapshot_key="2026-11-02",
            attribute="a",
            members=1,
            base=read_by_two,
        )
    with pytest.raises(StateConflict, match="now snapshot 2026-11-04"):  # a first commit that was not first
        store.commit(
            "A",
            "1",
            members_file(tmp_path, "u3"),
            snapshot_key="2026-11-05",
            attribute="a",
            members=1,
            base=None,
        )
    applied = store.load("A", "1")
    assert applied is not None and applied.snapshot_key == "2026-11-04"
    assert pq.read_table(applied.local_path).column("identifier").to_pylist() == ["u2"]
    data_files = [
        p.name for p in Path(store.split_dir("A", "1").path).iterdir() if p.name.startswith("members-")
    ]
    assert data_files == [applied.data_file]  # the losers' data files were removed


def test_a_crash_mid_commit_leaves_the_previous_state_readable(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "state"), "ns")
    store.commit(
        "A", "1", members_file(tmp_path, "u1"), snapshot_key="2026-11-01", attribute="a", members=1, base=None
    )
    directory = Path(store.split_dir("A", "1").path)
    # what a crash leaves: a partial data file and a half-written manifest under temp names
    (directory / "members-deadbeef.parquet").write_bytes(b"PAR1 partial")
    (directory / ".manifest.json.tmp-deadbeef").write_text('{"format_version": 1, "snapsh')
    applied = store.load("A", "1")
    assert applied is not None and applied.snapshot_key == "2026-11-01"
    assert pq.read_table(applied.local_path).column("identifier").to_pylist() == ["u1"]
    # the next commit cleans the leftovers and the replaced data file
    store.commit(
        "A",
        "1",
        members_file(tmp_path, "u2"),
        snapshot_key="2026-11-02",
        attribute="a",
        members=1,
        base=store.manifest("A", "1"),
    )
    names = sorted(p.name for p in directory.iterdir())
    # (manifest.json.lock is the lock file of the compare-and-swap: never removed, see storage.conditional)
    assert names[:2] == ["manifest.json", "manifest.json.lock"]
    assert len(names) == 3 and names[2].startswith("members-")
    applied = store.load("A", "1")
    assert applied is not None and pq.read_table(applied.local_path).column("identifier").to_pylist() == [
        "u2"
    ]


def test_a_manifest_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "state"), "ns")
    store.commit(
        "A", "1", members_file(tmp_path, "u1"), snapshot_key="2026-11-01", attribute="a", members=1, base=None
    )
    applied = store.load("A", "1")
    assert applied is not None
    os.remove(applied.local_path)
    with pytest.raises(StateError, match="does not exist"):
        store.load("A", "1")


@pytest.fixture
def memory_root() -> ObjectStoragePath:
    """A remote-like root on fsspec's in-memory filesystem, attached the way Airflow attaches stores."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    try:
        root = ObjectStoragePath(f"memory://bucket/{uuid.uuid4().hex}/state")
    except TypeError as exc:  # Airflow 3.1's ObjectStoragePath refuses non-local protocols here
        pytest.skip(f"ObjectStoragePath does not accept memory:// on this Airflow: {exc}")
    return root


def test_state_on_a_non_local_filesystem(memory_root: ObjectStoragePath, tmp_path: Path) -> None:
    store = SnapshotStore(memory_root, "ns", local_dir=str(tmp_path / "downloads"))
    assert not store.is_local
    work = tmp_path / "work"
    work.mkdir()
    first = compute_delta(
        DeltaInput(batches=[batch(members("A", "1", "u1", "u2"))]),
        store,
        work_dir=str(work),
        snapshot_key="2026-11-01",
    )
    with first:
        assert len(updates(first)) == 2
        assert first.commit(store) == [("A", "1")]
    applied = store.load("A", "1")
    assert applied is not None and applied.local_path.startswith(str(tmp_path / "downloads"))
    second = compute_delta(
        DeltaInput(batches=[batch(members("A", "1", "u2", "u3"))]),
        store,
        work_dir=str(work),
        snapshot_key="2026-11-02",
    )
    with second:
        assert updates(second) == {
            ("external_id", "u1"): {"AIQ_A_1": False},
            ("external_id", "u3"): {"AIQ_A_1": True},
        }
        second.commit(store)
    files = sorted(p.name for p in store.split_dir("A", "1").iterdir())
    assert len(files) == 2 and files[0] == "manifest.json"
    assert store.splits() == [("A", "1")]
