"""The fast JSON Lines path (Arrow's parser) reads exactly what the Python path reads: the same rows,
numbers, values, field order, rejects and errors, whatever the file holds."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.staging import StagedRow, StagingError, locate, read_staged_batches
from airflow_provider_aiq_braze.staging import jsonl_arrow as fast_module

Outcome = tuple[
    list[tuple[int, dict[str, Any], bool, dict[str, bool]]], list[tuple[int, str | None]], str | None
]


def _no_fast_path(*args: Any) -> Generator[Any, None, tuple[int, bool]]:
    return 0, False
    yield  # a generator that yields nothing


def _read(path: Path, **kwargs: Any) -> Outcome:
    """(row number, row, exact, marked cells) of every row, the rejects, the error if any."""
    [file] = locate(str(path))
    rejects: list[StagedRow] = []
    rows: list[tuple[int, dict[str, Any], bool, dict[str, bool]]] = []
    error = None
    try:
        for staged in read_staged_batches(file, on_reject=rejects.append, **kwargs):
            exact = [True] * staged.num_rows if staged.exact is True else staged.exact.to_pylist()
            marks = {name: cells.to_pylist() for name, cells in staged.json_cells.items()}
            for i, (number, row) in enumerate(zip(staged.row_numbers(), staged.rows(), strict=True)):
                marked = {name: cells[i] for name, cells in marks.items() if cells[i]}
                rows.append((number, row, exact[i], marked))
    except StagingError as exc:
        error = str(exc)
    return rows, [(r.row_number, r.error) for r in rejects], error


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Read a file with and without the fast path; assert both agree; return how many rows the fast
    path read."""

    def check(path: Path, **kwargs: Any) -> int:
        taken: list[int] = []
        real = fast_module.arrow_jsonl_batches

        def recording(*args: Any) -> Generator[Any, None, tuple[int, bool]]:
            result = yield from real(*args)
            taken.append(result[0])
            return result

        with monkeypatch.context() as m:
            m.setattr("airflow_provider_aiq_braze.staging.jsonl.arrow_jsonl_batches", recording)
            fast = _read(path, **kwargs)
        with monkeypatch.context() as m:
            m.setattr("airflow_provider_aiq_braze.staging.jsonl.arrow_jsonl_batches", _no_fast_path)
            slow = _read(path, **kwargs)
        assert fast[2] == slow[2], "errors differ"
        assert fast[1] == slow[1], "rejects differ"
        assert [r[:2] for r in fast[0]] == [r[:2] for r in slow[0]], "rows differ"
        assert [list(r[1]) for r in fast[0]] == [list(r[1]) for r in slow[0]], "field order differs"
        assert [r[2:] for r in fast[0]] == [r[2:] for r in slow[0]], "exactness or marks differ"
        return sum(taken)

    return check


def _lines(rows: list[Any], *, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    return "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + end for r in rows
    ).encode()


PLAIN = [
    {"event_name": "viewed", "external_id": f"u{i}", "timestamp": "2026-11-28T10:00:00Z"} for i in range(300)
]


def test_plain_files_take_the_fast_path(tmp_path: Path, compare: Any) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(_lines(PLAIN))
    assert compare(path) == 300


CASES: dict[str, list[Any]] = {
    "nulls": [{"a": "1", "b": None}, {"a": None, "b": "2"}],
    "a number": [{"a": "1"}, {"a": 2}, {"a": "3"}],
    "a big number": [{"a": "1"}, {"a": 10**30}],
    "a boolean": [{"a": "1"}, {"a": True}],
    "nested": [{"a": "1"}, {"a": {"b": "c"}}, {"a": ["x"]}],
    "reordered": [{"a": "1", "b": "2"}, {"b": "2", "a": "1"}],
    "missing field": [{"a": "1", "b": "2"}, {"a": "1"}, {"a": "1", "b": "2"}],
    "extra field": [{"a": "1"}, {"a": "1", "c": "3"}],
    "duplicate key": [{"a": "1"}, '{"a": "1", "a": "2"}'],
    "escapes": [{"a": 'say "hi"'}, {"a": "back\\slash"}, {"a": "tab\there"}],
    "unicode escapes": ['{"a": "caf\\u00e9"}', '{"\\u0061": "x"}'],
    "non-ascii": [{"a": "café 日本"}, {"a": "ok"}],
    "invalid json": [{"a": "1"}, '{"a": ', {"a": "3"}],
    "not an object": [{"a": "1"}, "[1, 2]", '"text"', "null"],
    "two objects on a line": [{"a": "1"}, '{"a": "1"}{"a": "2"}'],
    "trailing text": [{"a": "1"}, '{"a": "1"} x'],
    "blank lines": [{"a": "1"}, "", "   ", {"a": "2"}],
    "spaces": ['{ "a" : "1" , "b":"2" }', '  {"a":"1","b":"2"}  '],
    "empty object": ["{}", {"a": "1"}],
    "timestamp-like": [{"t": "2026-11-28T10:00:00Z", "d": "2026-11-28"}],
    "numbers as text": [{"a": "1.5", "b": "1e20", "c": "true"}],
    "key with dot and space": [{"a.b": "1", "c d": "2", "[x]": "3"}],
    "nan": ['{"a": NaN}', {"a": "1"}],
    "control char": ['{"a": "x\x01y"}'],
    "nul byte": ['{"a": "x\x00y"}'],
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("crlf", [False, True])
def test_odd_content_reads_the_same(name: str, crlf: bool, tmp_path: Path, compare: Any) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(_lines(PLAIN[:5] + CASES[name] + PLAIN[:5], crlf=crlf))
    compare(path)


def test_bom_invalid_utf8_and_long_lines(
    tmp_path: Path, compare: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + _lines(PLAIN[:10]))
    assert compare(path) == 10
    path.write_bytes(_lines(PLAIN[:10]) + b'{"event_name": "caf\xe9"}\n' + _lines(PLAIN[:10]))
    compare(path)
    monkeypatch.setattr("airflow_provider_aiq_braze.staging.jsonl.JSONL_LINE_LIMIT", 200)
    path.write_bytes(_lines([*PLAIN[:10], {"event_name": "x" * 300}, *PLAIN[:10]]))
    compare(path)


@pytest.mark.parametrize("block", [64, 1000, 1 << 20])
def test_chunk_boundaries(block: int, tmp_path: Path, compare: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_module, "ARROW_JSONL_BLOCK", block)
    rng = random.Random(block)
    rows: list[Any] = []
    for i in range(400):
        rows.append(rng.choice(PLAIN))
        if i in (150, 300):
            rows.append(rng.choice([v for values in CASES.values() for v in values]))
    path = tmp_path / "e.jsonl"
    path.write_bytes(_lines(rows))
    compare(path, batch_size=97)


@pytest.mark.parametrize(
    ("columns", "required", "any_of"),
    [
        (["external_id", "braze_id", "audience_id"], ["audience_id"], [["external_id", "braze_id"]]),
        (["external_id", "missing"], [], [["external_id", "braze_id"]]),
        (None, ["event_name"], [["external_id", "braze_id"]]),
        (None, ["nope"], []),
    ],
)
def test_columns_and_required_fields(
    columns: list[str] | None, required: list[str], any_of: list[list[str]], tmp_path: Path, compare: Any
) -> None:
    rows: list[Any] = []
    for i, extra in zip(range(60), itertools.cycle([{}, {"n": 5}, {"braze_id": "b"}]), strict=False):
        row: dict[str, Any] = {"audience_id": "A", "external_id": f"u{i}", **extra}
        if i == 40:
            del row["audience_id"]
        if i == 45:
            del row["external_id"]
        rows.append(row)
    path = tmp_path / "m.jsonl"
    path.write_bytes(_lines(rows))
    compare(path, columns=columns, required_columns=required, any_of_columns=any_of)


def test_a_column_the_first_object_lacks_is_still_read(tmp_path: Path, compare: Any) -> None:
    rows = [{"external_id": f"u{i}", **({"braze_id": f"b{i}"} if i % 3 else {})} for i in range(30)]
    rows[10]["braze_id"] = 7  # a number: the Python path takes over there, and marks it
    path = tmp_path / "m.jsonl"
    path.write_bytes(_lines(rows))
    compare(path, columns=["external_id", "braze_id"], any_of_columns=[["external_id", "braze_id"]])
    [file] = locate(str(path))
    values = [
        v
        for staged in read_staged_batches(file, on_reject=pytest.fail, columns=["braze_id"])
        for v in staged.columns.column("braze_id").to_pylist()
    ]
    assert values[:3] == [None, "b1", "b2"]


def test_a_uniform_file_with_sparse_columns_in_fixed_mode(tmp_path: Path, compare: Any) -> None:
    rows = [{"audience_id": "A", "split_id": "1", "external_id": f"u{i}", "score": i} for i in range(100)]
    path = tmp_path / "m.jsonl"
    path.write_bytes(_lines(rows))
    taken = compare(
        path,
        columns=["audience_id", "split_id", "external_id", "braze_id"],
        required_columns=["audience_id", "split_id"],
        any_of_columns=[["external_id", "braze_id"]],
    )
    assert taken == 100  # other fields may hold anything: only the columns read must be text
    assert pa.types.is_string(pa.array(["x"]).type)
