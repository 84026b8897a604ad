"""The ledger: outcomes survive a restart; a batch left 'sending' reads as uncertain."""

from __future__ import annotations

from airflow_provider_aiq_braze.delivery.batching import Batcher, BodyTemplate
from airflow_provider_aiq_braze.delivery.ledger import ACCEPTED, UNCERTAIN, Ledger
from airflow_provider_aiq_braze.delivery.records import Deliverable
from airflow_provider_aiq_braze.storage import storage_path


def _batches(n: int) -> list:
    batcher = Batcher(lambda g: BodyTemplate('{"events":[', "]}"), max_objects=2, max_bytes=10_000)
    items = [Deliverable("f", i, {"external_id": str(i)}) for i in range(2 * n)]
    return [b for it in items for b in batcher.add(it)] + list(batcher.flush())


def test_outcomes_are_read_back(tmp_path) -> None:
    path = storage_path(tmp_path / "ledger.jsonl")
    first, second, third = _batches(3)
    ledger = Ledger(path, run_id="r1")
    ledger.intend(first)
    ledger.record(first, ACCEPTED, rejected={1: "bad"}, dispatch_id="d1")
    ledger.intend(second)  # the process "dies" here: no outcome for the second batch
    ledger.close()

    reread = Ledger(path, run_id="r2", try_number=2)
    entry = reread.lookup(first)
    assert entry is not None and entry.outcome == ACCEPTED
    assert entry.rejected == {1: "bad"} and entry.info["dispatch_id"] == "d1"
    left_sending = reread.lookup(second)
    assert left_sending is not None and left_sending.outcome == UNCERTAIN
    assert reread.lookup(third) is None


def test_force_resets_earlier_outcomes(tmp_path) -> None:
    path = storage_path(tmp_path / "ledger.jsonl")
    (batch,) = _batches(1)
    ledger = Ledger(path, run_id="r1")
    ledger.record(batch, ACCEPTED)
    ledger.close()
    assert Ledger(path, run_id="r2", fresh=True).lookup(batch) is None
    # and a later run without force sees only what came after the reset
    assert Ledger(path, run_id="r3").lookup(batch) is None


def test_torn_last_line_is_ignored(tmp_path) -> None:
    path = storage_path(tmp_path / "ledger.jsonl")
    (batch,) = _batches(1)
    ledger = Ledger(path, run_id="r1")
    ledger.record(batch, ACCEPTED)
    ledger.close()
    with open(tmp_path / "ledger.jsonl", "a") as handle:
        handle.write('{"digest": "abc", "sta')
    assert Ledger(path, run_id="r2").lookup(batch).outcome == ACCEPTED
