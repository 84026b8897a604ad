"""CSV read row by row with Python's ``csv`` module: every rule of the file contract, every reject.

Python's ``csv.field_size_limit`` is one setting for the whole process. The reader raises it to
:data:`CSV_FIELD_LIMIT` only while it parses, and puts the previous value back before each row it
hands out (and when it stops), so no code outside the parsing ever sees it changed.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from typing import Any

from airflow_provider_aiq_braze.staging._streams import READ_ERRORS, open_binary, read_error
from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.locate import StagedFile
from airflow_provider_aiq_braze.staging.rows import StagedRow, check_columns, cut, printable, projection

#: Longest CSV field, in characters. A longer one is almost always an unbalanced double quote.
CSV_FIELD_LIMIT = 1 << 20


@contextlib.contextmanager
def field_limit() -> Iterator[None]:
    """Raise ``csv.field_size_limit`` to :data:`CSV_FIELD_LIMIT` for the block, then restore it."""
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def csv_rows(
    file: StagedFile,
    columns: Collection[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_header: Callable[[list[str]], None] | None = None,
) -> Generator[StagedRow, None, None]:
    """Parse a CSV file into rows; ``on_header`` gets the kept column names before the first row.

    This is the hot loop of every CSV read: a clean row (right width, no empty cell, and no bad byte
    seen in the file so far) costs one length test, one flag test and one scan for ``""``.

    :param file: the staged file.
    :param columns: the columns to keep (``None``: all).
    :param required: columns the header must have.
    :param any_of: groups of columns of which the header must have one each.
    :param on_header: called with the kept column names.
    """
    uri = file.uri
    with open_binary(file, check_text=True) as (stream, scanner):
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        reader = csv.reader(text, strict=True)
        try:
            with field_limit():
                header = csv_header(file, reader, scanner.dirty)
        except READ_ERRORS as exc:
            raise read_error(file, 0, exc) from exc
        check_columns(file, header, required, any_of)
        names, pick = projection(header, columns)
        if on_header is not None:
            on_header(names)
        width = len(header)
        n = 0
        limit, raised = csv.field_size_limit, CSV_FIELD_LIMIT
        previous = limit(raised)  # raised while parsing, put back around every yield
        try:
            while True:
                try:
                    for row in reader:
                        n += 1
                        if len(row) == width and not scanner.dirty and "" not in row:
                            values = row if pick is None else pick(row)
                            # widths match here, and zip(strict=True) would cost ~15% of the read
                            limit(previous)
                            yield StagedRow(uri, n, dict(zip(names, values, strict=False)))
                            limit(raised)
                            continue
                        if not row:  # a blank line is not a row
                            n -= 1
                            continue
                        odd = _odd_row(uri, n, row, width, reader.line_num, scanner.dirty, names, pick)
                        limit(previous)
                        yield odd
                        limit(raised)
                    break
                except csv.Error as exc:
                    n += 1
                    staged = _quoting_error(uri, n, exc, reader.line_num)
                    limit(previous)
                    yield staged
                    limit(raised)
        except READ_ERRORS as exc:
            raise read_error(file, n, exc) from exc
        finally:
            limit(previous)


def _odd_row(
    uri: str,
    n: int,
    row: list[str],
    width: int,
    line: int,
    dirty: bool,
    names: list[str],
    pick: Callable[[list[Any]], Any] | None,
) -> StagedRow:
    """A row off the fast path: the wrong width, a bad byte seen, or an empty cell."""
    if len(row) != width:
        reason = f"expected {width} fields as in the header, found {len(row)} (line {line})"
        return StagedRow(uri, n, None, reason, raw_csv(row))
    if dirty:
        problem = text_problem(row)
        if problem:
            return StagedRow(uri, n, None, f"{problem} (line {line})", raw_csv(row))
    values = [v or None for v in (row if pick is None else pick(row))]
    return StagedRow(uri, n, dict(zip(names, values, strict=True)))


def _quoting_error(uri: str, n: int, exc: csv.Error, line: int) -> StagedRow:
    """The reject of a row the ``csv`` module refused; raises for quoting that swallows the file."""
    message = str(exc)
    if message.startswith("field larger than field limit"):
        raise StagingError(
            f"{uri}: a field in row {n} (line {line}) is longer than {CSV_FIELD_LIMIT} characters. This is "
            "almost always an unbalanced double quote that swallows the following lines: fix the quoting "
            "at or before that line (a quote inside a value must be doubled).",
            uri=uri,
        ) from exc
    if message.startswith("unexpected end of data"):
        raise StagingError(
            f"{uri}: unterminated quoted field: the double quote opened in row {n} is never closed, so it "
            f"runs to the end of the file (line {line}). Fix the quoting of that row (a quote inside a value "
            "must be doubled).",
            uri=uri,
        ) from exc
    return StagedRow(uri, n, None, f"malformed CSV quoting (line {line}): {message}", None)


def csv_header(file: StagedFile, reader: Any, dirty: bool) -> list[str]:
    """Read and check the header row (call under :func:`field_limit`).

    :param file: the staged file.
    :param reader: the ``csv.reader``.
    :param dirty: whether a bad byte was seen so far.
    :raises StagingError: an empty file, a blank or unnamed column, duplicated names, bad bytes.
    """
    uri = file.uri
    try:
        header: list[str] = next(reader)
    except StopIteration:
        raise StagingError(
            f"{uri} is empty: a CSV file needs a header row on line 1 (a header-only file is a valid "
            "empty input). Check the upstream export.",
            uri=uri,
        ) from None
    except csv.Error as exc:
        raise StagingError(f"{uri}: the header row (line 1) is not valid CSV: {exc}.", uri=uri) from exc
    if not header:
        raise StagingError(f"{uri}: line 1 is blank; the header row must be the first line.", uri=uri)
    if header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    if dirty:
        problem = text_problem(header)
        if problem:
            raise StagingError(
                f"{uri}: the header row is not clean UTF-8 text ({problem}). Re-export the file as UTF-8.",
                uri=uri,
            )
    for position, name in enumerate(header, 1):
        if not name.strip():
            raise StagingError(
                f"{uri}: column {position} of the header has no name (header: {raw_csv(header)}). "
                "Name every column; a trailing comma on line 1 causes this.",
                uri=uri,
            )
    if len(set(header)) != len(header):
        dups = sorted(name for name, count in Counter(header).items() if count > 1)
        raise StagingError(
            f"{uri}: duplicated column name(s) in the header: {', '.join(repr(d) for d in dups)}. "
            "Each column needs a distinct name.",
            uri=uri,
        )
    return header


def raw_csv(fields: Sequence[str]) -> str:
    """A row's fields as CSV text (re-quoted), cut for the rejects file.

    :param fields: the fields.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return cut(printable(out.getvalue()))


def text_problem(fields: Iterable[str]) -> str | None:
    """Why decoded CSV fields are not clean UTF-8 text, or ``None``.

    :param fields: the fields.
    """
    for value in fields:
        if "\0" in value:
            return "contains a NUL byte"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "invalid UTF-8 byte sequence"
    return None
