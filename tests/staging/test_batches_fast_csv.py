"""read_record_batches() on CSV: the Arrow fast path gives exactly what the Python path gives.

Each case reads a file twice, once as shipped and once with the fast path switched off (the Python
``csv`` path alone, as before the fast path existed), and compares rows, schema, row numbers,
rejects and errors. Batch boundaries may differ (only ``batch_size`` as an upper bound is kept).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from pytest_mock import MockerFixture

from airflow_provider_aiq_braze.staging import CSV_FIELD_LIMIT, StagedRow, StagingError, read_record_batches
from airflow_provider_aiq_braze.staging import csv_arrow as read_module

from ._util import one

HEADER = "id,name,score\n"


@dataclass
class Outcome:
    """What one read delivered: rows (with the schema), rejects, and the error that ended it."""

    schema: pa.Schema | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[StagedRow] = field(default_factory=list)
    error: str | None = None
    batch_sizes: list[int] = field(default_factory=list)


def _read(path: Path, **kwargs: Any) -> Outcome:
    out = Outcome()
    try:
        for batch in read_record_batches(one(path), on_reject=out.rejects.append, **kwargs):
            assert out.schema is None or batch.schema == out.schema
            out.schema = batch.schema
            out.rows.extend(batch.to_pylist())
            out.batch_sizes.append(batch.num_rows)
    except StagingError as exc:
        out.error = str(exc)
    return out


def _no_fast_path(*args: Any) -> Generator[pa.RecordBatch, None, tuple[int, bool]]:
    return 0, False
    yield  # makes this a generator (that yields nothing)


@pytest.fixture
def compare(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Outcome]:
    """Read a file with and without the fast path; assert both agree; return the outcome."""

    def check(path: Path, **kwargs: Any) -> Outcome:
        fast = _read(path, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(read_module, "arrow_csv_batches", _no_fast_path)
            slow = _read(path, **kwargs)
        assert fast.error == slow.error
        assert fast.rejects == slow.rejects
        if slow.error is None:
            assert fast.schema == slow.schema
            assert fast.rows == slow.rows
        else:  # how many rows come before the error depends on batching; the rows do not
            shorter, longer = sorted([fast.rows, slow.rows], key=len)
            assert longer[: len(shorter)] == shorter
        batch_size = kwargs.get("batch_size", 65536)
        assert all(0 < n <= batch_size for n in fast.batch_sizes)
        return fast

    return check


@pytest.fixture
def fast_path_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """The (rows yielded, finished) of each fast-path run, recorded as it returns."""
    results: list[tuple[int, bool]] = []
    real = read_module.arrow_csv_batches

    def recording(*args: Any) -> Generator[pa.RecordBatch, None, tuple[int, bool]]:
        result = yield from real(*args)
        results.append(result)
        return result

    monkeypatch.setattr(read_module, "arrow_csv_batches", recording)
    return results


def _rows(count: int, start: int = 1) -> Iterator[str]:
    for i in range(start, start + count):
        yield f"{i},user {i},{i % 7 or ''}\n"


SMALL_CASES = {
    "clean": HEADER + "".join(_rows(50)),
    "bom": "\ufeff" + HEADER + "".join(_rows(5)),
    "crlf": (HEADER + "".join(_rows(5))).replace("\n", "\r\n"),
    "lone_cr": (HEADER + "".join(_rows(5))).replace("\n", "\r"),
    "mixed_line_ends": "id,name,score\r\n1,a,b\r2,c,d\n3,e,f\r\n\r\n4,g,h",
    "blank_lines": "\n".join([HEADER.strip(), "", "1,a,b", "", "", "2,c,d", "\r", "3,e,f", "", ""]),
    "whitespace_kept": "id,name,score\n 1 ,  a,b \n\t2,c ,\t\n",
    "whitespace_only_line": "id,name,score\n1,a,b\n \n2,c,d\n",
    "empty_cells": "id,name,score\n1,,\n,,\n,x,\n",
    "no_final_newline": "id,name,score\n1,a,b\n2,c,d",
    "unicode": "id,name,score\n1,Zürich,日本\n2,\u2028,\x0c\n3,\ufeffx,\x85\n",
    "backslashes": "id,name,score\n1,a\\,b\\n\n",
    "quoted_header": '"id","name","score"\n1,a,b\n',
    "quoted_values": 'id,name,score\n1,"Cy, Jr",\n2,"say ""hi""",3\n',
    "malformed_quote": 'id,name,score\n1,"x"y,3\n2,b,c\n',
    "quote_in_unquoted_field": 'id,name,score\n1,x"y,3\n2,b,c\n',
    "newline_in_quotes": 'id,name,score\n1,"a\nb",3\n2,b,c\n',
    "wrong_width": "id,name,score\n1,a,b\n2,c\n3,d,e,f\n4,g,h\n",
    "trailing_comma": "id,name,score\n1,a,b,\n",
    "header_only": HEADER,
    "header_only_no_newline": HEADER.strip(),
    "header_then_blank_lines": HEADER + "\n\n\r\n",
    "one_column": "id\n1\n\n2\n \n3\n",
    "empty": "",
    "blank_first_line": "\nid,name\n1,2\n",
    "duplicate_header": "id,id\n1,2\n",
    "unnamed_column": "id,,x\n1,2,3\n",
    "unterminated_quote": 'id,name,score\n1,"abc,3\n2,b,c\n',
}


#: Cases Arrow reads to the end by itself (the others fall back to the Python path).
ALL_FAST = {
    "clean", "bom", "crlf", "lone_cr", "mixed_line_ends", "blank_lines", "whitespace_kept",
    "empty_cells", "no_final_newline", "unicode", "backslashes", "header_only",
    "header_then_blank_lines", "one_column",
}  # fmt: skip


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
@pytest.mark.parametrize("case", sorted(SMALL_CASES))
def test_small_files_match_python_path(
    stage: Callable[..., Path],
    compare: Callable[..., Outcome],
    fast_path_runs: list[tuple[int, bool]],
    case: str,
    suffix: str,
) -> None:
    path = stage(f"{case}{suffix}", SMALL_CASES[case])
    compare(path)
    compare(path, batch_size=2, row_number_column="n")
    compare(path, columns=["score", "missing", "id"], row_number_column="n")
    if case in ALL_FAST:
        assert len(fast_path_runs) == 3 and all(finished for _, finished in fast_path_runs)


@pytest.mark.parametrize(
    "content",
    [
        b"id,name,score\n1,a\x00b,c\n2,d,e\n",  # NUL byte: Arrow keeps it, the Python path rejects
        b"id,name,score\n1,a\xffb,c\n2,d,e\n",  # invalid UTF-8
        b"id,name,score\n1,a\xed\xa0\x80,c\n2,d,e\n",  # an encoded surrogate is not UTF-8
        b"id,name,score\n1,a,b\n2,d,\xc3",  # cut in the middle of a character, at the very end
        b"id,na\x00me,score\n1,a,b\n",  # bad header
    ],
)
def test_bad_bytes_match_python_path(
    stage: Callable[..., Path], compare: Callable[..., Outcome], content: bytes
) -> None:
    compare(stage("bad.csv", content), row_number_column="n")


def test_projection(stage: Callable[..., Path], compare: Callable[..., Outcome]) -> None:
    path = stage("p.csv", HEADER + "".join(_rows(20)))
    out = compare(path, columns=["score", "missing", "id"], row_number_column="n")
    assert out.schema == pa.schema(
        [("score", pa.string()), ("missing", pa.string()), ("id", pa.string()), ("n", pa.int64())]
    )
    assert out.rows[:2] == [
        {"score": "1", "missing": None, "id": "1", "n": 1},
        {"score": "2", "missing": None, "id": "2", "n": 2},
    ]
    assert compare(path, columns=["nope"]).rows[:1] == [{"nope": None}]
    assert compare(path, columns=["id", "id"]).schema == pa.schema([("id", pa.string())] * 2)
    assert compare(path, columns=[], row_number_column="n").rows[:2] == [{"n": 1}, {"n": 2}]
    assert compare(path, required_columns=["nope"]).error is not None
    assert compare(path, any_of_columns=[["a", "b"]]).error is not None


def test_fast_path_is_used_for_a_clean_file(stage: Callable[..., Path], mocker: MockerFixture) -> None:
    path = stage("clean.csv", HEADER + "".join(_rows(1000)))
    rows = mocker.spy(read_module, "csv_rows")
    arrow = mocker.spy(pa_csv, "read_csv")
    batches = list(read_record_batches(one(path), row_number_column="n"))
    assert sum(b.num_rows for b in batches) == 1000
    assert arrow.call_count == 1
    assert rows.call_count == 1  # for the header only
    assert rows.call_args.args[1] is None  # (the whole header, to compare with Arrow's)
    list(read_record_batches(one(stage("q.csv", HEADER + '1,"a",b\n'))))
    assert rows.call_count == 3  # header, then the whole file on the Python path


def test_large_clean_file(
    stage: Callable[..., Path], compare: Callable[..., Outcome], fast_path_runs: list[tuple[int, bool]]
) -> None:
    path = stage("big.csv.gz", HEADER + "".join(_rows(200_000)))  # ~4 MB: many chunks
    out = compare(path, row_number_column="n")
    assert fast_path_runs[0] == (200_000, True)
    assert len(out.batch_sizes) > 3
    assert [r["n"] for r in out.rows] == list(range(1, 200_001))
    sizes = _read(path, batch_size=7000).batch_sizes
    assert sum(sizes) == 200_000 and max(sizes) == 7000  # at most batch_size rows per batch


LATE = 80_000  # the row damaged in the big files, many chunks in

DAMAGE = {
    "malformed_quote": '1,"x"y,3\n',
    "good_quote": '1,"x, y",3\n',
    "wrong_width": "1,2\n",
    "nul": "1,a\x00,3\n",
    "invalid_utf8": b"1,a\xff,3\n",
    "long_field": "1," + "x" * (CSV_FIELD_LIMIT + 1) + ",3\n",
    "long_field_multibyte": "1," + "é" * CSV_FIELD_LIMIT + ",3\n",  # 1 Mi characters: fine
    "at_field_limit": "1," + "x" * CSV_FIELD_LIMIT + ",3\n",
    "blank_lines_then_wrong_width": "\n\r\n\n1\n",
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_switch_to_python_path_mid_file(
    stage: Callable[..., Path],
    compare: Callable[..., Outcome],
    fast_path_runs: list[tuple[int, bool]],
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
) -> None:
    monkeypatch.setattr(read_module, "ARROW_CSV_BLOCK", 1 << 14)  # chunks of 16 KiB
    bad = DAMAGE[damage]
    bad_bytes = bad if isinstance(bad, bytes) else bad.encode()
    before = (HEADER + "".join(_rows(LATE - 1)) + "\n\n").encode()  # blank lines are not counted
    after = "".join(_rows(20_000, start=LATE + 1)).encode()
    path = stage("big.csv", before + bad_bytes + after)
    out = compare(path, row_number_column="n", batch_size=10_000)
    done, finished = fast_path_runs[0]
    assert not finished  # (a 1 MiB line is longer than four small chunks: the fast path stops)
    assert 10_000 < done < LATE  # several Arrow batches, then the Python path
    if out.error is None:
        numbers = [r["n"] for r in out.rows]
        assert numbers == sorted(set(numbers))  # no row twice, none out of order
        assert numbers[: LATE - 1] == list(range(1, LATE))  # no row lost
        assert numbers[-1] == LATE + 20_000
    else:
        assert damage == "long_field" and "longer than" in out.error


@pytest.mark.parametrize(("extra", "finished"), [(0, True), (1, False)])
def test_field_limit(
    stage: Callable[..., Path],
    compare: Callable[..., Outcome],
    fast_path_runs: list[tuple[int, bool]],
    extra: int,
    finished: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(read_module, "ARROW_CSV_BLOCK", 1 << 21)  # so the fast path takes a 1 MiB line
    # Arrow takes fields of any length; the csv module stops at its field limit (the same here).
    long_row = "2," + "x" * (CSV_FIELD_LIMIT + extra) + ",3\n"
    out = compare(stage("long.csv", HEADER + "1,a,b\n" + long_row + "3,c,d\n"))
    assert fast_path_runs[0][1] == finished  # the guard stops the fast path before the long row
    assert (out.error is None) == finished


def test_read_errors(
    stage: Callable[..., Path], compare: Callable[..., Outcome], fast_path_runs: list[tuple[int, bool]]
) -> None:
    data = gzip.compress((HEADER + "".join(_rows(100_000))).encode())  # ~2 MB: several chunks
    middle = len(data) // 2
    path = stage("broken.csv.gz", data[:middle] + bytes(200) + data[middle + 200 :], gzipped=False)
    out = compare(path)
    assert out.error is not None and "corrupt or truncated gzip data" in out.error
    truncated = stage("cut.csv.gz", data[:middle], gzipped=False)
    out = compare(truncated)
    assert out.error is not None and "corrupt or truncated gzip data after row" in out.error
    assert [finished for _, finished in fast_path_runs] == [False, False]


def test_abandoned_read_closes_cleanly(stage: Callable[..., Path]) -> None:
    path = stage("big.csv", HEADER + "".join(_rows(200_000)))
    for _ in range(20):
        batches = read_record_batches(one(path), batch_size=100)
        next(batches)
        batches.close()  # type: ignore[attr-defined]
