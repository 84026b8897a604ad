"""The staged batches every operator reads, and the readers' manners (no process-wide changes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.staging import (
    ROW_NUMBER_COLUMN,
    StagedRow,
    json_cells_column,
    locate,
    read_record_batches,
    read_rows,
    read_staged_batches,
)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_json_lines_batches_keep_every_field_their_types_and_the_objects(tmp_path: Path) -> None:
    rows = [
        {"a": "x", "b": "y"},
        {"a": "x", "b": 2},  # a number: marked, the row is not exact
        {"a": "x"},  # fewer fields, same order: exact
        {"b": "y", "a": "x"},  # another order: kept whole, not exact
        {"a": "x", "b": None, "c": "new"},  # a new field: a new column
        {"a": [1, {"k": True}], "c": "z"},
    ]
    [file] = locate(str(_write_jsonl(tmp_path / "r.jsonl", rows)))
    rejects: list[StagedRow] = []
    [staged] = list(read_staged_batches(file, on_reject=rejects.append))
    assert not rejects
    assert staged.columns.schema.names == ["a", "b", "c"]
    assert staged.columns.column("b").to_pylist() == ["y", "2", None, "y", None, None]
    assert staged.columns.column("a").to_pylist()[5] == '[1,{"k":true}]'
    assert staged.json_cells["b"].to_pylist() == [False, True, False, False, False, False]
    assert staged.json_cells["a"].to_pylist() == [False, False, False, False, False, True]
    assert "c" not in staged.json_cells
    assert isinstance(staged.exact, pa.Array)
    assert staged.exact.to_pylist() == [True, False, True, False, True, False]
    assert staged.rows() == rows  # the objects themselves: types and key order
    assert [list(r) for r in staged.rows()] == [list(r) for r in rows]
    assert staged.row_numbers() == [1, 2, 3, 4, 5, 6]
    with_marks = staged.with_json_cells()
    assert with_marks.column(json_cells_column("b")).to_pylist() == staged.json_cells["b"].to_pylist()
    assert ROW_NUMBER_COLUMN not in with_marks.schema.names


def test_json_lines_text_only_batches_are_exact(tmp_path: Path) -> None:
    rows = [{"a": f"x{i}", "b": None if i % 3 else "y"} for i in range(50)]
    [file] = locate(str(_write_jsonl(tmp_path / "r.jsonl", rows)))
    batches = list(read_staged_batches(file, on_reject=pytest.fail, batch_size=20))
    assert [b.num_rows for b in batches] == [20, 20, 10]
    assert all(b.exact is True and not b.json_cells for b in batches)
    assert [n for b in batches for n in b.row_numbers()] == list(range(1, 51))


def test_json_lines_rejects_and_numbering_are_those_of_read_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": "1"}\n\n[1]\n{"a": \n{"\\u0000x": "1"}\n{"a": "2"}\n', encoding="utf-8")
    [file] = locate(str(path))
    rejects: list[StagedRow] = []
    [staged] = list(read_staged_batches(file, on_reject=rejects.append))
    assert staged.row_numbers() == [1, 5]
    assert [(r.row_number, r.error) for r in rejects][:2] == [
        (2, "expected a JSON object, found array (line 3)"),
        (3, "invalid JSON at column 7: Expecting value (line 4)"),
    ]
    assert rejects[2].row_number == 4 and "NUL" in (rejects[2].error or "")
    assert [r.row_number for r in read_rows(file)] == [1, 2, 3, 4, 5]


def test_fixed_columns_read_only_those(tmp_path: Path) -> None:
    rows = [{"a": "1", "b": True, "z": "ignored"}, {"b": 3}]
    [file] = locate(str(_write_jsonl(tmp_path / "r.jsonl", rows)))
    [staged] = list(read_staged_batches(file, on_reject=pytest.fail, columns=["b", "a"]))
    assert staged.columns.schema.names == ["b", "a"]
    assert staged.columns.to_pylist() == [{"b": "true", "a": "1"}, {"b": "3", "a": None}]
    assert staged.json_cells["b"].to_pylist() == [True, True]


def test_csv_and_parquet_batches_are_those_of_read_record_batches(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,\n2,x\n", encoding="utf-8")
    [file] = locate(str(path))
    [staged] = list(read_staged_batches(file, on_reject=pytest.fail))
    [batch] = list(read_record_batches(file, row_number_column=ROW_NUMBER_COLUMN))
    assert staged.batch.equals(batch) and staged.exact is True and staged.objects is None
    assert staged.rows() == [r.data for r in read_rows(file)]


def test_reading_csv_leaves_the_process_field_limit_alone(tmp_path: Path) -> None:
    """``csv.field_size_limit`` is process-wide: the readers raise it only while they parse."""
    path = tmp_path / "big.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "note"])
        for i in range(2000):
            writer.writerow([f"u{i}", "x" * (300_000 if i == 700 else 5) + '"'])  # quoted: the Python path
    [file] = locate(str(path))
    before = csv.field_size_limit()
    assert before < 300_000
    seen = []
    for row in read_rows(file):  # between rows, other code sees the process's own limit
        seen.append(csv.field_size_limit())
        assert row.data is not None
    assert set(seen) == {before}
    assert sum(b.num_rows for b in read_record_batches(file)) == 2000
    assert csv.field_size_limit() == before
