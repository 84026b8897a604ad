"""Batch boundaries: object and byte limits, groups, determinism."""

from __future__ import annotations

import json

import pytest

from airflow_provider_aiq_braze.delivery.batching import Batcher, BodyTemplate, OversizedObjectError
from airflow_provider_aiq_braze.delivery.records import Deliverable

TEMPLATE = BodyTemplate('{"events":[', "]}")


def _items(n: int, *, size: int = 10, group: str = "") -> list[Deliverable]:
    return [
        Deliverable("f.csv", i + 1, {"external_id": f"u{i}", "name": "x" * size}, group=group)
        for i in range(n)
    ]


def _batch_all(batcher: Batcher, items: list[Deliverable]) -> list:
    batches = [b for item in items for b in batcher.add(item)]
    return batches + list(batcher.flush())


def test_object_limit_cuts_batches_and_bodies_are_valid_json() -> None:
    batches = _batch_all(Batcher(lambda g: TEMPLATE, max_objects=75, max_bytes=4_000_000), _items(200))
    assert [len(b.items) for b in batches] == [75, 75, 50]
    body = json.loads(batches[0].body)
    assert len(body["events"]) == 75
    assert body["events"][0] == {"external_id": "u0", "name": "xxxxxxxxxx"}
    assert [b.seq for b in batches] == [0, 1, 2]


def test_byte_limit_cuts_before_exceeding() -> None:
    max_bytes = 1000
    batches = _batch_all(
        Batcher(lambda g: TEMPLATE, max_objects=75, max_bytes=max_bytes), _items(50, size=100)
    )
    assert all(len(b.body) <= max_bytes for b in batches)
    assert sum(len(b.items) for b in batches) == 50
    assert len(batches) > 1
    # each batch except the last is full: adding the next object would have crossed the limit
    first_next = batches[1].items[0]
    assert len(batches[0].body) + 1 + len(json.dumps(first_next.obj, separators=(",", ":"))) > max_bytes


def test_same_input_gives_same_digests() -> None:
    first = _batch_all(Batcher(lambda g: TEMPLATE, max_objects=10, max_bytes=10_000), _items(35))
    second = _batch_all(Batcher(lambda g: TEMPLATE, max_objects=10, max_bytes=10_000), _items(35))
    assert [b.digest for b in first] == [b.digest for b in second]
    assert len({b.digest for b in first}) == 4


def test_groups_are_never_mixed() -> None:
    items = [it for pair in zip(_items(5, group="a"), _items(5, group="b"), strict=True) for it in pair]
    templates = {g: BodyTemplate(f'{{"campaign_id":"{g}","recipients":[', "]}") for g in "ab"}
    batches = _batch_all(Batcher(templates.__getitem__, max_objects=3, max_bytes=10_000), items)
    for batch in batches:
        assert {item.group for item in batch.items} == {batch.group}
        assert json.loads(batch.body)["campaign_id"] == batch.group
    assert sorted(len(b.items) for b in batches) == [2, 2, 3, 3]


def test_object_larger_than_a_request_is_refused() -> None:
    batcher = Batcher(lambda g: TEMPLATE, max_objects=75, max_bytes=100)
    with pytest.raises(OversizedObjectError, match="does not fit"):
        list(batcher.add(_items(1, size=200)[0]))
