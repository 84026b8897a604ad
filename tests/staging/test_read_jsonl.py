"""read_rows() on JSON Lines: types, blank lines, rejects and file-level errors."""

from __future__ import annotations

import codecs
import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_aiq_braze.staging import JSONL_LINE_LIMIT, StagingError, read_rows

from ._util import one, rows_of


@pytest.mark.parametrize("name", ["events.jsonl", "events.ndjson.gz", "events.json"])
def test_values_keep_json_types(stage: Callable[..., Path], name: str) -> None:
    content = '{"id": "u1", "n": 3, "f": 1.5, "ok": true, "none": null, "props": {"a": [1, "x"]}}\n'
    [row] = rows_of(stage(name, content))
    assert (row.row_number, row.error) == (1, None)
    assert row.data == {"id": "u1", "n": 3, "f": 1.5, "ok": True, "none": None, "props": {"a": [1, "x"]}}


def test_blank_lines_bom_crlf_and_no_final_newline(stage: Callable[..., Path]) -> None:
    content = codecs.BOM_UTF8 + b'{"a": 1}\r\n\r\n   \n{"a": 2}\n\n{"a": "\xc3\xa9"}'
    rows = rows_of(stage("blank.jsonl", content))
    assert [(r.row_number, r.data) for r in rows] == [(1, {"a": 1}), (2, {"a": 2}), (3, {"a": "é"})]


def test_row_level_problems(stage: Callable[..., Path]) -> None:
    lines = [
        b'{"a": 1}',
        b'{"a": 2',
        b"[1, 2]",
        b'"text"',
        b"42",
        b'{"a": "\xe9"}',
        b'{"a": "x\x00"}',
        b"",
        b'{"a": 3}',
    ]
    rows = rows_of(stage("bad.jsonl", b"\n".join(lines) + b"\n"))
    assert [(r.row_number, r.error) for r in rows] == [
        (1, None),
        (2, "invalid JSON at column 8: Expecting ',' delimiter (line 2)"),
        (3, "expected a JSON object, found array (line 3)"),
        (4, "expected a JSON object, found string (line 4)"),
        (5, "expected a JSON object, found number (line 5)"),
        (6, "invalid UTF-8 byte sequence at byte 8 (line 6)"),
        (7, "contains a NUL byte (line 7)"),
        (8, None),
    ]
    assert rows[1].raw == '{"a": 2'
    assert rows[5].raw == '{"a": "\ufffd"}'
    assert rows[7].data == {"a": 3}


def test_required_fields_are_checked_per_object(stage: Callable[..., Path]) -> None:
    content = '{"name": "e", "external_id": "u1"}\n{"name": "e"}\n{"braze_id": "b"}\n'
    rows = rows_of(
        stage("req.jsonl", content),
        required_columns=["name"],
        any_of_columns=[["external_id", "braze_id"]],
        columns=["external_id", "name"],
    )
    assert [(r.row_number, r.data, r.error) for r in rows] == [
        (1, {"external_id": "u1", "name": "e"}, None),
        (2, None, "needs at least one of: braze_id, external_id (line 2)"),
        (3, None, "missing required field(s): name (line 3)"),
    ]


def test_overlong_line_is_rejected_without_loading_it(stage: Callable[..., Path]) -> None:
    huge = '{"a": "' + "x" * (JSONL_LINE_LIMIT + 10) + '"}'
    rows = rows_of(stage("long.jsonl", '{"a": 1}\n' + huge + '\n{"a": 2}\n'))
    assert [(r.row_number, r.error) for r in rows] == [
        (1, None),
        (2, f"line longer than {JSONL_LINE_LIMIT} bytes (line 2)"),
        (3, None),
    ]


def test_empty_jsonl_is_zero_rows(stage: Callable[..., Path]) -> None:
    assert rows_of(stage("empty.jsonl", b"")) == []
    assert rows_of(stage("blank.jsonl.gz", "\n\n")) == []


def test_truncated_gzip_raises(stage: Callable[..., Path]) -> None:
    body = "".join(f'{{"id": {i}, "pad": "{"p" * 20}"}}\n' for i in range(100_000)).encode()
    data = gzip.compress(body, compresslevel=1)
    path = stage("cut.jsonl.gz", data[:-20], gzipped=False)
    with pytest.raises(StagingError, match=r"cut\.jsonl\.gz: corrupt or truncated gzip data after row \d+"):
        list(read_rows(one(path)))
