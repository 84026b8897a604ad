"""read_record_batches() on CSV and JSON Lines: string columns, rejects, schema and row numbers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.staging import StagedRow, StagingError, read_record_batches

from ._util import one

CSV = 'id,name,score\n1,Ada,3\n2,,4\n3,Bob\n4,"Cy, Jr",\n5,Di,7\n'


@pytest.mark.parametrize("name", ["p.csv", "p.csv.gz"])
def test_csv_batches_are_strings_with_nulls(stage: Callable[..., Path], name: str) -> None:
    rejects: list[StagedRow] = []
    batches = list(read_record_batches(one(stage(name, CSV)), batch_size=2, on_reject=rejects.append))
    assert all(b.num_rows <= 2 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.schema == pa.schema([("id", pa.string()), ("name", pa.string()), ("score", pa.string())])
    assert table.to_pylist() == [
        {"id": "1", "name": "Ada", "score": "3"},
        {"id": "2", "name": None, "score": "4"},
        {"id": "4", "name": "Cy, Jr", "score": None},
        {"id": "5", "name": "Di", "score": "7"},
    ]
    assert [(r.row_number, r.error) for r in rejects] == [
        (3, "expected 3 fields as in the header, found 2 (line 4)")
    ]


def test_csv_columns_order_missing_and_row_numbers(stage: Callable[..., Path]) -> None:
    batches = list(
        read_record_batches(
            one(stage("p.csv", CSV)),
            columns=["score", "nope", "id"],
            on_reject=lambda row: None,
            row_number_column="__row",
        )
    )
    [batch] = batches
    assert batch.schema.names == ["score", "nope", "id", "__row"]
    assert batch.schema.field("__row").type == pa.int64()
    assert batch.to_pylist() == [
        {"score": "3", "nope": None, "id": "1", "__row": 1},
        {"score": "4", "nope": None, "id": "2", "__row": 2},
        {"score": None, "nope": None, "id": "4", "__row": 4},
        {"score": "7", "nope": None, "id": "5", "__row": 5},
    ]


def test_rejects_raise_without_a_handler(stage: Callable[..., Path]) -> None:
    with pytest.raises(StagingError, match=r"p\.csv: row 3: expected 3 fields"):
        list(read_record_batches(one(stage("p.csv", CSV))))


def test_header_only_and_bad_arguments(stage: Callable[..., Path]) -> None:
    file = one(stage("h.csv", "id,name\n"))
    assert list(read_record_batches(file)) == []
    with pytest.raises(StagingError, match="batch_size must be at least 1"):
        read_record_batches(file, batch_size=0)
    with pytest.raises(StagingError, match="clashes"):
        read_record_batches(file, columns=["id"], row_number_column="id")


def test_many_batches_at_most_batch_size(stage: Callable[..., Path]) -> None:
    body = "id,v\n" + "".join(f"{i},{i % 7 or ''}\n" for i in range(1, 10_001))
    batches = list(
        read_record_batches(one(stage("many.csv.gz", body)), batch_size=3000, row_number_column="n")
    )
    assert len(batches) >= 4
    assert all(0 < b.num_rows <= 3000 for b in batches)
    table = pa.Table.from_batches(batches)
    assert table.column("n").to_pylist() == list(range(1, 10_001))
    assert table.column("id").to_pylist() == [str(i) for i in range(1, 10_001)]
    assert table.column("v").null_count == len([i for i in range(1, 10_001) if i % 7 == 0])


def test_jsonl_batches_stringify_values(stage: Callable[..., Path]) -> None:
    content = (
        '{"id": "u1", "n": 3, "ok": true, "props": {"a": [1, "é"]}, "none": null}\n'
        '{"id": "u2", "n": 1.5}\n'
        "not json\n"
        '{"id": "u3", "extra": 1}\n'
    )
    rejects: list[StagedRow] = []
    [batch] = list(read_record_batches(one(stage("e.jsonl", content)), on_reject=rejects.append))
    assert batch.schema == pa.schema([(n, pa.string()) for n in ["id", "n", "ok", "props", "none"]])
    assert batch.to_pylist() == [
        {"id": "u1", "n": "3", "ok": "true", "props": '{"a":[1,"é"]}', "none": None},
        {"id": "u2", "n": "1.5", "ok": None, "props": None, "none": None},
    ]
    assert [r.row_number for r in rejects] == [3, 4]
    assert rejects[1].error is not None and rejects[1].error.startswith("field(s) extra are not among")
    [chosen] = list(
        read_record_batches(one(stage("e.jsonl", content)), columns=["extra", "id"], on_reject=lambda r: None)
    )
    assert chosen.to_pylist() == [
        {"extra": None, "id": "u1"},
        {"extra": None, "id": "u2"},
        {"extra": "1", "id": "u3"},
    ]
