"""JSON Lines files: appended and flushed per line locally, parts (never rewrites) on object stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.delivery.ledger import ACCEPTED, Ledger
from airflow_provider_aiq_braze.storage import JsonlWriter, parts_dir, read_jsonl, storage_path
from tests.storage.conftest import Store


def test_many_flushes_read_back_in_order(store: Store) -> None:
    path = store.path("ledger/run.jsonl")
    writer = JsonlWriter(path, append=True)
    for i in range(120):
        writer.write({"i": i, "text": "é" * (i % 5)})
        if i % 3 == 2:
            writer.flush()
    writer.close()
    assert [record["i"] for record in read_jsonl(path)] == list(range(120))
    if store.kind == "s3":
        assert writer.parts_written == 40
        assert not path.exists()  # only parts: the object itself is never written
        assert len(parts_dir(path).fs.ls(parts_dir(path).path)) == 40
    else:
        assert writer.parts_written == 0
        assert len(Path(path.path).read_text().splitlines()) == 120


def test_object_store_uploads_each_line_once(store: Store) -> None:
    """Quadratic rewrites would upload ~n²/2 lines for n flushes; parts upload each line once."""
    if store.kind != "s3":
        pytest.skip("uploads are counted on the S3 server")
    assert store.bucket is not None
    path = store.path("ledger/counted.jsonl")
    writer = JsonlWriter(path, append=True)
    payload = 0
    for i in range(200):
        record = {"digest": f"{i:064x}", "state": "accepted"}
        payload += len(json.dumps(record, separators=(",", ":"))) + 1
        writer.write(record)
        writer.flush()
    writer.close()
    seen = store.bucket.requests("ledger/counted.jsonl")
    assert seen["PUT"] == 200
    assert payload <= seen["bytes"]["PUT"] <= payload * 1.05
    assert len(list(read_jsonl(path))) == 200


def test_appending_writers_continue_after_existing_parts(store: Store) -> None:
    path = store.path("ledger/appended.jsonl")
    for run in range(3):
        writer = JsonlWriter(path, append=True)
        for i in range(4):
            writer.write({"run": run, "i": i})
            writer.flush()
        writer.close()
    assert [(r["run"], r["i"]) for r in read_jsonl(path)] == [(run, i) for run in range(3) for i in range(4)]


def test_a_fresh_writer_starts_the_file_afresh(store: Store) -> None:
    path = store.path("rejects/try-1.rejects.jsonl")
    for run in range(2):
        writer = JsonlWriter(path)
        writer.write({"run": run})
        writer.flush()
        writer.write({"run": run, "second": True})
        writer.close()
    assert list(read_jsonl(path)) == [{"run": 1}, {"run": 1, "second": True}]


def test_object_written_whole_is_read_before_the_parts(store: Store) -> None:
    """A ledger written whole by an earlier version stays the start of the file."""
    if store.kind != "s3":
        pytest.skip("parts exist on object stores only")
    path = store.path("ledger/legacy.jsonl")
    path.write_bytes(b'{"i": 0}\n{"i": 1}\n')
    writer = JsonlWriter(path, append=True)
    writer.write({"i": 2})
    writer.close()
    assert [r["i"] for r in read_jsonl(path)] == [0, 1, 2]


def test_torn_local_last_line_is_ignored_and_not_glued_to_the_next(tmp_path: Path) -> None:
    file = tmp_path / "ledger.jsonl"
    file.write_text('{"i": 0}\n{"i": 1, "torn')  # a writer killed in the middle of a line
    path = storage_path(file)
    assert [r["i"] for r in read_jsonl(path)] == [0]
    writer = JsonlWriter(path, append=True)
    writer.write({"i": 2})
    writer.close()
    assert [r["i"] for r in read_jsonl(path)] == [0, 2]


def test_ledger_on_object_storage_survives_reopening(store: Store) -> None:
    path = store.path("ledger/dag/task/events-abc.jsonl")
    batches = [Batch(seq=i, group="g", items=[], body=b'{"n":%d}' % i) for i in range(5)]
    ledger = Ledger(path, run_id="r1")
    for batch in batches:
        ledger.intend(batch)
        ledger.flush()
        ledger.record(batch, ACCEPTED)
        ledger.flush()
    ledger.close()
    again = Ledger(path, run_id="r2", try_number=2)
    assert {d: e.outcome for d, e in again.entries.items()} == {b.digest: ACCEPTED for b in batches}
    again.close()
    assert len(list(read_jsonl(path))) == 10  # reopening copied nothing
