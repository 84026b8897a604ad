"""read_rows() on CSV: dialect, row numbering, row-level rejects and file-level errors."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_aiq_braze.staging import (
    CSV_FIELD_LIMIT,
    RAW_LIMIT,
    StagingError,
    check_columns,
    read_rows,
)

from ._util import one, rows_of


@pytest.mark.parametrize("name", ["part.csv", "part.csv.gz"])
def test_plain_and_gzip(stage: Callable[..., Path], name: str) -> None:
    path = stage(name, "external_id,email,score\nu1,a@x.io,3\nu2,b@x.io,4\n")
    rows = rows_of(path)
    assert [(r.file, r.row_number, r.data, r.error, r.raw) for r in rows] == [
        (f"file://{path}", 1, {"external_id": "u1", "email": "a@x.io", "score": "3"}, None, None),
        (f"file://{path}", 2, {"external_id": "u2", "email": "b@x.io", "score": "4"}, None, None),
    ]


def test_bom_crlf_quotes_newlines_and_empty_cells(stage: Callable[..., Path]) -> None:
    content = (
        "\ufeffid,note,city\r\n"
        '1,"hello, world","Paris"\r\n'
        '2,"line one\r\nline two",\r\n'
        '3,"say ""hi""",""\r\n'
        "4,,Zürich\r\n"
    )
    rows = rows_of(stage("bom.csv", content))
    assert [r.data for r in rows] == [
        {"id": "1", "note": "hello, world", "city": "Paris"},
        {"id": "2", "note": "line one\r\nline two", "city": None},
        {"id": "3", "note": 'say "hi"', "city": None},
        {"id": "4", "note": None, "city": "Zürich"},
    ]
    assert [r.row_number for r in rows] == [1, 2, 3, 4]


def test_old_mac_line_endings(stage: Callable[..., Path]) -> None:
    rows = rows_of(stage("cr.csv", 'id,v\r1,a\r2,"b\rc"\r'))
    assert [r.data for r in rows] == [{"id": "1", "v": "a"}, {"id": "2", "v": "b\rc"}]


def test_blank_lines_are_not_rows(stage: Callable[..., Path]) -> None:
    rows = rows_of(stage("blank.csv", "id,v\n\n1,a\n\n\n2,b\n\n"))
    assert [(r.row_number, r.data) for r in rows] == [(1, {"id": "1", "v": "a"}), (2, {"id": "2", "v": "b"})]


def test_ragged_rows_are_rejected_with_row_and_line(stage: Callable[..., Path]) -> None:
    content = 'id,a,b\n1,x,y\n2,x\n"3\nstill 3",x,y\n4,x,y,z\n5,x,y\n'
    rows = rows_of(stage("ragged.csv", content))
    assert [(r.row_number, r.error) for r in rows] == [
        (1, None),
        (2, "expected 3 fields as in the header, found 2 (line 3)"),
        (3, None),
        (4, "expected 3 fields as in the header, found 4 (line 6)"),
        (5, None),
    ]
    assert rows[1].raw == "2,x" and rows[1].data is None
    assert rows[3].raw == "4,x,y,z"
    assert rows[4].data == {"id": "5", "a": "x", "b": "y"}


def test_invalid_utf8_line_is_rejected_and_reading_goes_on(stage: Callable[..., Path]) -> None:
    content = b"id,name\n1,Ren\xc3\xa9\n2,Ren\xe9\n3,ok\n4,\xff\xfe\n5,fin\n"
    rows = rows_of(stage("latin1.csv", content))
    assert [(r.row_number, r.error) for r in rows] == [
        (1, None),
        (2, "invalid UTF-8 byte sequence (line 3)"),
        (3, None),
        (4, "invalid UTF-8 byte sequence (line 5)"),
        (5, None),
    ]
    assert rows[0].data == {"id": "1", "name": "René"}
    assert rows[1].raw == "2,Ren\ufffd"
    assert rows[4].data == {"id": "5", "name": "fin"}


def test_invalid_utf8_split_across_read_chunks(stage: Callable[..., Path]) -> None:
    # a 2-byte character straddling the 64 KiB read boundary is fine; a lone lead byte is not
    filler = "x" * (65536 - len("id,v\n1,") - 1)
    good = ("id,v\n1," + filler + "é\n2,b\n").encode()
    assert good.index("é".encode()) == 65535
    assert [r.error for r in rows_of(stage("ok.csv", good))] == [None, None]
    bad = ("id,v\n1," + filler).encode() + b"\xc3\n2,b\n"
    assert [r.error for r in rows_of(stage("bad.csv", bad))] == ["invalid UTF-8 byte sequence (line 2)", None]


def test_nul_byte_row_is_rejected(stage: Callable[..., Path]) -> None:
    rows = rows_of(stage("nul.csv", b"id,v\n1,a\x00b\n2,c\n"))
    assert [(r.row_number, r.error) for r in rows] == [(1, "contains a NUL byte (line 2)"), (2, None)]


def test_broken_quote_inside_a_row_is_rejected(stage: Callable[..., Path]) -> None:
    rows = rows_of(stage("quote.csv", 'id,v\n1,"a"b\n2,c\n'))
    assert rows[0].row_number == 1
    assert rows[0].error is not None
    assert rows[0].error.startswith("malformed CSV quoting (line 2): ")
    assert (rows[1].row_number, rows[1].data) == (2, {"id": "2", "v": "c"})


def test_unterminated_quote_raises(stage: Callable[..., Path]) -> None:
    path = stage("swallow.csv", 'id,v\n1,a\n2,"oops\n3,c\n4,d\n')
    rows = read_rows(one(path))
    assert next(rows).data == {"id": "1", "v": "a"}
    with pytest.raises(StagingError, match=r"swallow\.csv: unterminated quoted field: .* row 2 .*line 5"):
        next(rows)


def test_runaway_quote_past_the_field_limit_raises(stage: Callable[..., Path]) -> None:
    body = "".join(f"{i},value {i}\n" for i in range(3, CSV_FIELD_LIMIT // 8))
    path = stage("runaway.csv", 'id,v\n1,a\n2,"oops\n' + body)
    with pytest.raises(StagingError, match=rf"a field in row 2 .* longer than {CSV_FIELD_LIMIT} characters"):
        list(read_rows(one(path)))


def test_large_field_below_the_limit(stage: Callable[..., Path]) -> None:
    big = "y" * 500_000
    rows = rows_of(stage("big.csv", f"id,v\n1,{big}\n2,z\n"))
    assert rows[0].data == {"id": "1", "v": big}
    assert [r.row_number for r in rows] == [1, 2]


def test_raw_is_truncated(stage: Callable[..., Path]) -> None:
    rows = rows_of(stage("long.csv", "id,a,b\n1," + "q" * 5000 + "\n"))
    assert rows[0].raw is not None and len(rows[0].raw) == RAW_LIMIT + 1 and rows[0].raw.endswith("…")


@pytest.mark.parametrize(("name", "content"), [("empty.csv", b""), ("empty.csv.gz", gzip.compress(b""))])
def test_empty_file_raises(stage: Callable[..., Path], name: str, content: bytes) -> None:
    path = stage(name, content, gzipped=False)
    with pytest.raises(StagingError, match=rf"{path.name} is empty: a CSV file needs a header row"):
        list(read_rows(one(path)))


def test_header_only_is_zero_rows(stage: Callable[..., Path]) -> None:
    assert rows_of(stage("header.csv", "id,email\n")) == []
    assert rows_of(stage("header2.csv", "id,email")) == []


def test_bad_headers(stage: Callable[..., Path]) -> None:
    with pytest.raises(StagingError, match=r"duplicated column name\(s\) in the header: 'id'"):
        rows_of(stage("dup.csv", "id,email,id\n1,2,3\n"))
    with pytest.raises(StagingError, match="column 3 of the header has no name"):
        rows_of(stage("trailing.csv", "id,email,\n1,2,3\n"))
    with pytest.raises(StagingError, match="line 1 is blank"):
        rows_of(stage("blankfirst.csv", "\nid,email\n"))
    with pytest.raises(
        StagingError, match=r"the header row is not clean UTF-8 text \(invalid UTF-8 byte sequence\)"
    ):
        rows_of(stage("badhead.csv", b"id,\xe9mail\n1,2\n"))


def test_required_and_any_of_columns(stage: Callable[..., Path]) -> None:
    path = stage("cols.csv", "email,score\nx@y.z,1\n")
    with pytest.raises(StagingError) as err:
        rows_of(path, required_columns=["score", "event_name"], any_of_columns=[["external_id", "braze_id"]])
    message = str(err.value)
    assert message.startswith(f"file://{path}: missing required column(s): event_name; ")
    assert "needs at least one of: external_id, braze_id" in message
    assert "Columns found: 'email', 'score'" in message
    ok = rows_of(path, required_columns=["score"], any_of_columns=[["external_id", "email"]])
    assert [r.data for r in ok] == [{"email": "x@y.z", "score": "1"}]
    check_columns("f.csv", ["a", "b"], ["a"], [["b", "c"]])  # no error


def test_columns_projection(stage: Callable[..., Path]) -> None:
    path = stage("proj.csv", "a,b,c\n1,,3\n4,5,6\n7,8\n")
    rows = rows_of(path, columns=["c", "a", "zz"])
    assert [r.data for r in rows[:2]] == [{"a": "1", "c": "3"}, {"a": "4", "c": "6"}]
    assert rows[2].error == "expected 3 fields as in the header, found 2 (line 4)"
    assert [r.data for r in rows_of(path, columns=["b"])[:2]] == [{"b": None}, {"b": "5"}]
    assert [r.data for r in rows_of(path, columns=[])[:2]] == [{}, {}]


def test_corrupt_gzip_raises_with_last_good_row(stage: Callable[..., Path]) -> None:
    body = "id,v\n" + "".join(f"{i},value-{i}\n" for i in range(1, 200_001))
    data = gzip.compress(body.encode(), compresslevel=1)
    path = stage("cut.csv.gz", data[: len(data) // 2], gzipped=False)
    rows = read_rows(one(path))
    seen = 0
    with pytest.raises(StagingError) as err:
        for row in rows:
            assert row.error is None
            seen = row.row_number
    message = str(err.value)
    assert f"file://{path}: corrupt or truncated gzip data after row {seen}" in message
    assert seen > 1000
    assert "re-stage the file" in message


def test_not_gzip_despite_the_name(stage: Callable[..., Path]) -> None:
    path = stage("fake.csv.gz", "id\n1\n", gzipped=False)
    with pytest.raises(StagingError, match=r"corrupt or truncated gzip data before the first row"):
        rows_of(path)


def test_gzip_without_the_name(stage: Callable[..., Path]) -> None:
    path = stage("hidden-gzip.csv", "id\n1\n", gzipped=True)
    with pytest.raises(StagingError, match=r"looks gzip-compressed but its name does not end in \.gz"):
        rows_of(path)
    assert [r.data for r in read_rows(one(path, compression="gzip"))] == [{"id": "1"}]


def test_reading_is_lazy(stage: Callable[..., Path]) -> None:
    path = stage("lazy.csv", "id\n1\n2\n")
    rows = read_rows(one(path))
    path.unlink()  # opened on first next(), not before
    with pytest.raises(StagingError, match=r"lazy\.csv no longer exists"):
        next(rows)
