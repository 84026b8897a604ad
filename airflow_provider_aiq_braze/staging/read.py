"""Read staged files row by row (for delivery) or as Arrow record batches (for the audience diff).

Reading streams: memory stays flat whatever the file size (CSV and JSON Lines line by line,
Parquet batch by batch). Row-level problems never raise; they come back as a :class:`StagedRow`
with ``data=None`` and ``error`` set, so the engine can write a reject and go on. File-level problems
raise :class:`~airflow_provider_aiq_braze.staging.errors.StagingError`. See ``docs/staging.md``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from airflow_provider_aiq_braze.staging._streams import (
    READ_ERRORS,
    READ_SIZE,
    open_binary,
    open_storage,
    read_error,
)
from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.locate import StagedFile

#: Longest CSV field, in characters. A longer one is almost always an unbalanced double quote.
CSV_FIELD_LIMIT = 1 << 20

#: Longest JSON Lines line, in bytes; a longer line is rejected (and skipped without loading it).
JSONL_LINE_LIMIT = 1 << 20

#: ``raw`` of a rejected row is cut to this many characters.
RAW_LIMIT = 2000

#: Rows per Arrow batch when ``read_rows`` reads Parquet (bounds memory of ``to_pylist``).
_PARQUET_ROWS_BATCH = 8192

#: Bytes read per chunk of the fast CSV path of ``read_record_batches`` (parsed by Arrow from
#: memory, a chunk of whole lines at a time). A line longer than four chunks makes it give up.
_ARROW_CSV_BLOCK = 1 << 19

_ONE = pa.scalar(1, pa.int64())

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}

#: Called with each rejected row by :func:`read_record_batches`.
RejectHandler = Callable[["StagedRow"], None]


@dataclass(slots=True)
class StagedRow:
    """One data row of a staged file, or the reason it cannot be read.

    :param file: the file's URI (:attr:`StagedFile.uri`).
    :param row_number: 1-based number of the data row in the file: the first row after a CSV
        header is row 1; JSON Lines count non-blank lines; Parquet counts rows.
    :param data: column → value; ``None`` when the row is rejected.
    :param error: why the row is rejected (names the physical line for CSV and JSON Lines).
    :param raw: the row as text (for CSV, re-quoted from its fields), cut to 2,000 characters;
        only set on rejected rows.
    """

    file: str
    row_number: int
    data: dict[str, Any] | None
    error: str | None = None
    raw: str | None = None


def check_columns(
    file: StagedFile | str,
    header: Sequence[str],
    required: Collection[str] = (),
    any_of: Collection[Collection[str]] = (),
) -> None:
    """Check that a header holds the required columns.

    :param file: the staged file (or its URI), named in the message.
    :param header: the column names found.
    :param required: columns that must all be present.
    :param any_of: groups of columns of which at least one per group must be present (e.g. one
        user identifier out of ``external_id``, ``braze_id``, ``user_alias``).
    :raises StagingError: listing what is missing and the columns found.
    """
    present = set(header)
    missing = [c for c in required if c not in present]
    unmet = [list(group) for group in any_of if group and present.isdisjoint(group)]
    if not missing and not unmet:
        return
    uri = str(file)
    parts = []
    if missing:
        parts.append("missing required column(s): " + ", ".join(missing))
    parts.extend("needs at least one of: " + ", ".join(group) for group in unmet)
    found = ", ".join(repr(c) for c in header) or "(none)"
    raise StagingError(
        f"{uri}: {'; '.join(parts)}. Columns found: {found}. Fix the staged file's header (names are "
        "case-sensitive) or the operator's column settings.",
        uri=uri,
    )


def read_rows(
    file: StagedFile,
    *,
    columns: Collection[str] | None = None,
    required_columns: Collection[str] = (),
    any_of_columns: Collection[Collection[str]] = (),
) -> Iterator[StagedRow]:
    """Stream the rows of one staged file.

    CSV values are strings, an empty cell is ``None``; JSON Lines values keep their JSON types;
    Parquet values keep their Arrow types as Python objects (timestamps → ``datetime``...).

    :param file: a file from :func:`~airflow_provider_aiq_braze.staging.locate`.
    :param columns: only keep these columns in ``data`` (those the file has); all when ``None``.
    :param required_columns: columns the file must have. CSV and Parquet check the header before the
        first row and raise; JSON Lines checks each object and rejects the row.
    :param any_of_columns: groups of columns of which each row must have at least one, checked like
        ``required_columns``.
    :return: a lazy iterator of rows; rejected rows have ``data=None`` and ``error`` set.
    :raises StagingError: file-level problems (see ``docs/staging.md``), before the first row or,
        for damage found mid-file, after the last good row.
    """
    if file.format == "csv":
        return _csv_rows(file, columns, required_columns, any_of_columns)
    if file.format == "jsonl":
        return _jsonl_rows(file, columns, required_columns, any_of_columns)
    if file.format == "parquet":
        return _parquet_rows(file, columns, required_columns, any_of_columns)
    raise StagingError(f"{file.uri}: unknown format {file.format!r}.", uri=file.uri)


def read_record_batches(
    file: StagedFile,
    *,
    columns: Sequence[str] | None = None,
    batch_size: int = 65536,
    required_columns: Collection[str] = (),
    any_of_columns: Collection[Collection[str]] = (),
    on_reject: RejectHandler | None = None,
    row_number_column: str | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream one staged file as Arrow record batches (e.g. into DuckDB).

    CSV and JSON Lines columns are all ``pa.string()`` (an empty CSV cell is null; a JSON value that
    is not a string is its compact JSON text, e.g. ``true``, ``12``, ``{"a":1}``). Parquet columns
    keep their types. Every batch has the same schema: ``columns`` in that order (a requested column
    the file lacks is all null), or else the CSV header / the first JSON object's keys / the Parquet
    schema.

    :param file: a file from :func:`~airflow_provider_aiq_braze.staging.locate`.
    :param columns: the columns to return, in order.
    :param batch_size: at most this many rows per batch (empty batches are not yielded).
    :param required_columns: as for :func:`read_rows`.
    :param any_of_columns: as for :func:`read_rows`.
    :param on_reject: called with each rejected row (CSV/JSON Lines), which is left out of the
        batches. Without it, the first rejected row raises :class:`StagingError`: rows are never
        dropped silently.
    :param row_number_column: add an ``int64`` column of this name with each row's ``row_number``.
    :raises StagingError: as :func:`read_rows`, and for a rejected row when ``on_reject`` is None.
    """
    if batch_size < 1:
        raise StagingError(f"batch_size must be at least 1 (got {batch_size}).")
    if row_number_column is not None and columns is not None and row_number_column in columns:
        raise StagingError(f"row_number_column {row_number_column!r} clashes with a requested column.")
    reject = on_reject if on_reject is not None else _raise_reject
    if file.format == "csv":
        return _csv_batches(
            file, columns, batch_size, required_columns, any_of_columns, reject, row_number_column
        )
    if file.format == "jsonl":
        return _jsonl_batches(
            file, columns, batch_size, required_columns, any_of_columns, reject, row_number_column
        )
    if file.format == "parquet":
        return _parquet_batches(
            file, columns, batch_size, required_columns, any_of_columns, row_number_column
        )
    raise StagingError(f"{file.uri}: unknown format {file.format!r}.", uri=file.uri)


# --------------------------------------------------------------------------------------------------
# shared helpers


def _raise_reject(row: StagedRow) -> None:
    raise StagingError(f"{row.file}: row {row.row_number}: {row.error}", uri=row.file)


def _cut(text: str) -> str:
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"


def _printable(text: str) -> str:
    """Text with undecodable bytes (surrogate escapes) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _text_problem(fields: Iterable[str]) -> str | None:
    """Why decoded CSV fields are not clean UTF-8 text, or ``None``."""
    for value in fields:
        if "\0" in value:
            return "contains a NUL byte"
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "invalid UTF-8 byte sequence"
    return None


def _projection(
    header: Sequence[str], columns: Collection[str] | None
) -> tuple[list[str], Callable[[list[Any]], Any] | None]:
    """The kept column names and a picker for them (``None`` = keep the whole row)."""
    if columns is None:
        return list(header), None
    wanted = set(columns)
    indexes = [i for i, name in enumerate(header) if name in wanted]
    names = [header[i] for i in indexes]
    if len(indexes) == len(header):
        return names, None
    if len(indexes) == 1:
        only = indexes[0]
        return names, lambda row: (row[only],)
    if not indexes:
        return names, lambda row: ()
    return names, itemgetter(*indexes)


# --------------------------------------------------------------------------------------------------
# CSV


def _ensure_field_limit() -> None:
    # csv.field_size_limit is process-wide; only ever raise it (default 128 KiB).
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


def _raw_csv(fields: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(fields)
    return _cut(_printable(out.getvalue()))


def _csv_header(file: StagedFile, reader: Any, dirty: bool) -> list[str]:
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
        problem = _text_problem(header)
        if problem:
            raise StagingError(
                f"{uri}: the header row is not clean UTF-8 text ({problem}). Re-export the file as UTF-8.",
                uri=uri,
            )
    for position, name in enumerate(header, 1):
        if not name.strip():
            raise StagingError(
                f"{uri}: column {position} of the header has no name (header: {_raw_csv(header)}). "
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


def _csv_rows(
    file: StagedFile,
    columns: Collection[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_header: Callable[[list[str]], None] | None = None,
) -> Generator[StagedRow, None, None]:
    """Parse a CSV file into rows; ``on_header`` gets the kept column names before the first row.

    This is the hot loop of every CSV read: a clean row (right width, no empty cell, and no bad byte
    seen in the file so far) costs one length test, one attribute test and one scan for ``""``.
    """
    _ensure_field_limit()
    uri = file.uri
    with open_binary(file, check_text=True) as (stream, scanner):
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        text._CHUNK_SIZE = READ_SIZE  # type: ignore[attr-defined]
        reader = csv.reader(text, strict=True)
        n = 0
        try:
            header = _csv_header(file, reader, scanner.dirty)
            check_columns(file, header, required, any_of)
            names, pick = _projection(header, columns)
            if on_header is not None:
                on_header(names)
            width = len(header)
            while True:
                try:
                    for row in reader:
                        n += 1
                        if len(row) == width and not scanner.dirty and "" not in row:
                            values = row if pick is None else pick(row)
                            # widths match here, and zip(strict=True) would cost ~15% of the read
                            yield StagedRow(uri, n, dict(zip(names, values, strict=False)))
                            continue
                        if not row:  # a blank line is not a row
                            n -= 1
                            continue
                        if len(row) != width:
                            reason = (
                                f"expected {width} fields as in the header, found {len(row)} "
                                f"(line {reader.line_num})"
                            )
                            yield StagedRow(uri, n, None, reason, _raw_csv(row))
                            continue
                        if scanner.dirty:
                            problem = _text_problem(row)
                            if problem:
                                reason = f"{problem} (line {reader.line_num})"
                                yield StagedRow(uri, n, None, reason, _raw_csv(row))
                                continue
                        values = [v or None for v in (row if pick is None else pick(row))]
                        yield StagedRow(uri, n, dict(zip(names, values, strict=True)))
                    break
                except csv.Error as exc:
                    n += 1
                    message = str(exc)
                    if message.startswith("field larger than field limit"):
                        raise StagingError(
                            f"{uri}: a field in row {n} (line {reader.line_num}) is longer than "
                            f"{CSV_FIELD_LIMIT} characters. This is almost always an unbalanced double "
                            "quote that swallows the following lines: fix the quoting at or before that "
                            "line (a quote inside a value must be doubled).",
                            uri=uri,
                        ) from exc
                    if message.startswith("unexpected end of data"):
                        raise StagingError(
                            f"{uri}: unterminated quoted field: the double quote opened in row {n} is "
                            f"never closed, so it runs to the end of the file (line {reader.line_num}). "
                            "Fix the quoting of that row (a quote inside a value must be doubled).",
                            uri=uri,
                        ) from exc
                    reason = f"malformed CSV quoting (line {reader.line_num}): {message}"
                    yield StagedRow(uri, n, None, reason, None)
        except READ_ERRORS as exc:
            raise read_error(file, n, exc) from exc


def _csv_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_reject: RejectHandler,
    row_number_column: str | None,
) -> Iterator[pa.RecordBatch]:
    """CSV as record batches: Arrow's CSV reader while that is provably the same, else ``_csv_rows``.

    Fast path (:func:`_arrow_csv_batches`): Arrow parses the file in C++, ~15 times faster. It is
    only trusted on plain text without quoting: Arrow is lenient where ``csv.reader(strict=True)``
    rejects (``1,"x"y`` reads as ``xy``), keeps NUL bytes the Python path rejects and has no field
    size limit. So it stops, before yielding the chunk of lines concerned, at the first ``"`` byte or bad
    byte (NUL, invalid UTF-8) read, at any Arrow error (a row of the wrong width, bad UTF-8, a very
    long row...), at a field longer than the ``csv`` module's field limit and at a read error. Up
    to there both paths read the same rows with the same numbers, as neither counts blank lines.

    Fallback: the Python path reads the file again from the start (so ``bytes_read()`` counts the
    rows already yielded twice), skips the rows the fast path yielded and goes on as it always did:
    rejects, errors and the rest of the batches are exactly those of the Python path alone.
    """
    done, finished = yield from _arrow_csv_batches(
        file, columns, batch_size, required, any_of, row_number_column
    )
    if finished:
        return
    kept: list[str] = []
    builder: _StringBatches | None = None
    for row in _csv_rows(file, columns, required, any_of, kept.extend):
        if row.row_number <= done:  # yielded by the fast path (always a good row)
            continue
        if row.data is None:
            on_reject(row)
            continue
        if builder is None:
            builder = _StringBatches(kept, columns, batch_size, row_number_column)
        batch = builder.add(row.row_number, row.data.values())
        if batch is not None:
            yield batch
    if builder is not None and (batch := builder.finish()) is not None:
        yield batch


def _arrow_csv_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    row_number_column: str | None,
) -> Generator[pa.RecordBatch, None, tuple[int, bool]]:
    """Yield the leading batches Arrow reads exactly as the Python path would (see ``_csv_batches``).

    The file is read here, on the calling thread, a chunk of whole lines at a time (without a
    ``"`` a line break always ends a row), and each chunk is checked, then parsed by Arrow from
    memory. Arrow never reads the Python stream itself: its streaming reader would do that ahead
    on its own thread, which crashed the process when a read was abandoned. Each chunk gives batches
    of at most ``batch_size`` rows.

    :return: (how many data rows were yielded, whether that is the whole file).
    """
    header: list[str] = []
    # The header goes through the Python path, so header and column errors are its own; this also
    # raises whatever the first row would raise there (before anything is yielded, as it would).
    with contextlib.closing(_csv_rows(file, None, required, any_of, header.extend)) as rows:
        next(rows, None)
    names, _ = _projection(header, columns)
    wanted = list(columns) if columns is not None else names
    limit = csv.field_size_limit()
    options = {
        "read_options": pa_csv.ReadOptions(use_threads=False, column_names=header),
        "parse_options": pa_csv.ParseOptions(newlines_in_values=False),
        "convert_options": pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            null_values=[""],
        ),
    }
    done = 0  # rows yielded
    finished = False
    with open_binary(file) as (stream, _):
        try:
            for chunk in _csv_chunks(stream):
                if b'"' in chunk or b"\0" in chunk or not _is_utf8(chunk):
                    break
                table = pa_csv.read_csv(pa.BufferReader(chunk), **options).combine_chunks()
                if not _fields_within(table, limit):
                    break
                count = table.num_rows
                arrays = [
                    table.column(name) if name in names else pa.nulls(count, pa.string()) for name in wanted
                ]
                out_names = list(wanted)
                if row_number_column is not None:
                    # Arrow skips blank lines like the Python path and raises on any bad row, so
                    # the numbers of the rows it returns are consecutive.
                    arrays.append(pc.cumulative_sum(pa.repeat(_ONE, count), start=done))
                    out_names.append(row_number_column)
                whole = pa.Table.from_arrays(arrays, names=out_names)
                for batch in whole.to_batches(max_chunksize=batch_size):
                    if batch.num_rows:
                        yield batch
                done += count
            else:
                finished = True
        except (_GiveUp, pa.ArrowException, *READ_ERRORS):
            pass  # the Python path reports read errors (and rejects bad rows) as it always has
    return done, finished


class _GiveUp(Exception):
    """The fast CSV path stops here; the Python path goes on."""


def _csv_chunks(stream: io.BufferedReader[Any]) -> Iterator[bytes]:
    """The data lines of a CSV stream, a chunk of whole lines at a time (header line left out).

    Only valid while the text has no ``"``: each chunk holding one is still returned, for the
    caller to stop at. A line longer than a few chunks stops the chunks (the Python path takes it).
    """
    pending = stream.read(_ARROW_CSV_BLOCK)
    if pending.startswith(codecs.BOM_UTF8):
        pending = pending[len(codecs.BOM_UTF8) :]
    while True:  # the header line
        end = min((i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0), default=-1)
        if end >= 0 or b'"' in pending:
            break
        more = stream.read(_ARROW_CSV_BLOCK)
        if not more:
            return  # the header is the whole file
        pending += more
    if end < 0:
        yield pending  # a quote in the header: the caller stops
        return
    pending = pending[end + 1 :]
    while True:
        data = stream.read(_ARROW_CSV_BLOCK)
        if not data:
            if pending:
                yield pending
            return
        pending += data
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
        if cut:
            chunk, pending = pending[:cut], pending[cut:]
            yield chunk  # a \r\n cut after \r leaves \n: a blank line, skipped by both paths
        elif len(pending) > 4 * _ARROW_CSV_BLOCK:
            raise _GiveUp


def _is_utf8(chunk: bytes) -> bool:
    """Whether bytes are valid UTF-8, by the same decoder as the Python path."""
    if chunk.isascii():
        return True
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _fields_within(table: pa.Table, limit: int) -> bool:
    """Whether no value is longer than ``limit`` bytes (so none is over ``limit`` characters)."""
    for column in table.columns:
        for chunk in column.chunks:
            data = chunk.buffers()[2]  # all the chunk's characters: a quick bound first
            if data is not None and data.size > limit and pc.max(pc.binary_length(chunk)).as_py() > limit:
                return False
    return True


class _StringBatches:
    """Turns rows of strings into record batches of ``pa.string()`` columns.

    Rows are converted to Arrow every few thousand, so Python objects never pile up: a buffer of
    tens of thousands of row objects makes the garbage collector run full passes over the whole
    interpreter (Airflow included), which costs more than the reading itself.

    :param source: names of the values in each row, in order.
    :param columns: names of the batch's columns in order (missing ones are null); ``source`` if None.
    :param batch_size: rows per batch.
    :param row_number_column: name of an extra ``int64`` column of row numbers, if any.
    """

    _CHUNK_ROWS = 4096

    def __init__(
        self,
        source: Sequence[str],
        columns: Sequence[str] | None,
        batch_size: int,
        row_number_column: str | None,
    ) -> None:
        self._source = list(source)
        self._columns = list(columns) if columns is not None else self._source
        self._batch_size = batch_size
        self._row_number_column = row_number_column
        self._rows: list[Sequence[Any]] = []
        self._numbers: list[int] = []
        self._chunks: list[list[pa.Array]] = [[] for _ in self._source]
        self._number_chunks: list[pa.Array] = []
        self._pending = 0
        self._threshold = min(self._CHUNK_ROWS, batch_size)

    def add(self, row_number: int, values: Iterable[Any]) -> pa.RecordBatch | None:
        """Add one row; return a full batch when there is one."""
        self._rows.append(tuple(values))  # a tuple of strings leaves the GC's books at its first pass
        self._numbers.append(row_number)
        if len(self._rows) < self._threshold:
            return None
        self._convert()
        return self._take() if self._pending >= self._batch_size else None

    def finish(self) -> pa.RecordBatch | None:
        """Return the last, partial batch, if any row is left."""
        self._convert()
        return self._take() if self._pending else None

    def _convert(self) -> None:
        if not self._numbers:
            return
        if self._source:
            columns = zip(*self._rows, strict=True)
            for chunks, values in zip(self._chunks, columns, strict=True):
                chunks.append(pa.array(values, type=pa.string()))
        self._number_chunks.append(pa.array(self._numbers, type=pa.int64()))
        self._pending += len(self._numbers)
        self._rows, self._numbers = [], []
        self._threshold = min(self._CHUNK_ROWS, self._batch_size - self._pending) or self._CHUNK_ROWS

    def _take(self) -> pa.RecordBatch:
        length = self._pending
        by_name = {
            name: pa.concat_arrays(chunks) for name, chunks in zip(self._source, self._chunks, strict=True)
        }
        arrays = [by_name.get(name, pa.nulls(length, pa.string())) for name in self._columns]
        names = list(self._columns)
        if self._row_number_column is not None:
            arrays.append(pa.concat_arrays(self._number_chunks))
            names.append(self._row_number_column)
        self._chunks = [[] for _ in self._source]
        self._number_chunks = []
        self._pending = 0
        self._threshold = min(self._CHUNK_ROWS, self._batch_size)
        return pa.RecordBatch.from_arrays(arrays, names=names)


# --------------------------------------------------------------------------------------------------
# JSON Lines


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), "number")


def _jsonl_rows(
    file: StagedFile,
    columns: Collection[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
) -> Iterator[StagedRow]:
    uri = file.uri
    decode = json.JSONDecoder().decode
    required_set = frozenset(required)
    groups = [frozenset(g) for g in any_of if g]
    kept = list(columns) if columns is not None else None
    n = 0
    line_no = 0
    with open_binary(file) as (stream, _):
        try:
            if stream.peek(3)[:3] == codecs.BOM_UTF8:
                stream.read(3)
            readline = partial(stream.readline, JSONL_LINE_LIMIT + 1)
            for line in iter(readline, b""):
                line_no += 1
                n += 1
                try:
                    obj = decode(line.decode("utf-8"))
                except RecursionError:
                    raw = _cut(line.decode("utf-8", "replace").rstrip("\r\n"))
                    yield StagedRow(uri, n, None, f"{JSON_TOO_DEEP} (line {line_no})", raw)
                    continue
                except ValueError as exc:
                    problem = _jsonl_problem(stream, line, exc)
                    if problem is None:  # blank line
                        n -= 1
                        continue
                    raw = _cut(line.decode("utf-8", "replace").rstrip("\r\n"))
                    yield StagedRow(uri, n, None, f"{problem} (line {line_no})", raw)
                    continue
                if type(obj) is not dict:
                    if len(line) > JSONL_LINE_LIMIT and not line.endswith(b"\n"):
                        _skip_rest_of_line(stream)
                        problem = f"line longer than {JSONL_LINE_LIMIT} bytes"
                    else:
                        problem = f"expected a JSON object, found {_json_type(obj)}"
                    raw = _cut(line.decode("utf-8", "replace").rstrip("\r\n"))
                    yield StagedRow(uri, n, None, f"{problem} (line {line_no})", raw)
                    continue
                if required_set or groups:
                    problem = _missing_fields(obj, required_set, groups)
                    if problem:
                        raw = _cut(line.decode("utf-8", "replace").rstrip("\r\n"))
                        yield StagedRow(uri, n, None, f"{problem} (line {line_no})", raw)
                        continue
                if kept is not None:
                    obj = {k: obj[k] for k in kept if k in obj}
                yield StagedRow(uri, n, obj)
        except READ_ERRORS as exc:
            raise read_error(file, n, exc) from exc


#: Reject reason for JSON nested deeper than the parser's recursion limit.
JSON_TOO_DEEP = "invalid JSON: arrays or objects nested too deeply"


def _jsonl_problem(stream: io.BufferedReader[Any], line: bytes, exc: ValueError) -> str | None:
    """Why a JSON Lines line failed to parse, or ``None`` for a blank line."""
    if len(line) > JSONL_LINE_LIMIT and not line.endswith(b"\n"):
        _skip_rest_of_line(stream)
        return f"line longer than {JSONL_LINE_LIMIT} bytes"
    if not line.strip():
        return None
    if b"\0" in line:
        return "contains a NUL byte"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 byte sequence at byte {exc.start + 1}"
    try:  # parse again without the line break, so the column is that of the line
        json.loads(line.decode("utf-8").rstrip("\r\n"))
    except json.JSONDecodeError as clean:
        return f"invalid JSON at column {clean.colno}: {clean.msg}"
    except ValueError:
        pass
    return f"invalid JSON: {exc}"


def _skip_rest_of_line(stream: io.BufferedReader[Any]) -> None:
    while True:
        chunk = stream.readline(READ_SIZE)
        if not chunk or chunk.endswith(b"\n"):
            return


def _missing_fields(
    obj: dict[str, Any], required: frozenset[str], groups: list[frozenset[str]]
) -> str | None:
    parts = []
    if not required.issubset(obj):
        parts.append("missing required field(s): " + ", ".join(sorted(required.difference(obj))))
    parts.extend("needs at least one of: " + ", ".join(sorted(g)) for g in groups if g.isdisjoint(obj))
    return "; ".join(parts) or None


def _json_text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _jsonl_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_reject: RejectHandler,
    row_number_column: str | None,
) -> Iterator[pa.RecordBatch]:
    names: list[str] | None = list(columns) if columns is not None else None
    known: frozenset[str] | None = None
    builder: _StringBatches | None = None
    for row in _jsonl_rows(file, None, required, any_of):
        data = row.data
        if data is None:
            on_reject(row)
            continue
        if names is None:
            names = list(data)
            known = frozenset(names)
        elif known is not None and not known.issuperset(data):
            extra = ", ".join(sorted(set(data).difference(known)))
            row.error = (
                f"field(s) {extra} are not among the first object's fields ({', '.join(names)}); "
                "pass columns= to choose the fields"
            )
            row.data = None
            on_reject(row)
            continue
        if builder is None:
            builder = _StringBatches(names, None, batch_size, row_number_column)
        batch = builder.add(row.row_number, [_json_text(data.get(name)) for name in names])
        if batch is not None:
            yield batch
    if builder is not None and (batch := builder.finish()) is not None:
        yield batch


# --------------------------------------------------------------------------------------------------
# Parquet


def _open_parquet(file: StagedFile, handle: Any) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(handle)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise StagingError(
            f"{file.uri} is not a readable Parquet file ({type(exc).__name__}: {exc}). Re-stage it and "
            "check that the upload completed; use format= if the name is misleading.",
            uri=file.uri,
        ) from exc


def _parquet_columns(
    file: StagedFile, pf: pq.ParquetFile, required: Collection[str], any_of: Collection[Collection[str]]
) -> list[str]:
    names: list[str] = list(pf.schema_arrow.names)
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise StagingError(
            f"{file.uri}: duplicated column name(s): {', '.join(repr(d) for d in dups)}. Each column needs "
            "a distinct name.",
            uri=file.uri,
        )
    check_columns(file, names, required, any_of)
    return names


def _parquet_rows(
    file: StagedFile,
    columns: Collection[str] | None,
    required: Collection[str],
    any_of: Collection[Collection[str]],
) -> Iterator[StagedRow]:
    uri = file.uri
    with open_storage(file) as handle:
        pf = _open_parquet(file, handle)
        names = _parquet_columns(file, pf, required, any_of)
        wanted = None if columns is None else set(columns)
        selected = None if wanted is None else [c for c in names if c in wanted]
        n = 0
        try:
            for batch in pf.iter_batches(batch_size=_PARQUET_ROWS_BATCH, columns=selected):
                for data in batch.to_pylist():
                    n += 1
                    yield StagedRow(uri, n, data)
        except (pa.ArrowException, OSError) as exc:
            raise _parquet_read_error(file, n, exc) from exc


def _parquet_read_error(file: StagedFile, n: int, exc: BaseException) -> StagingError:
    return StagingError(
        f"{file.uri}: corrupt Parquet data after row {n} ({type(exc).__name__}: {exc}). Rows up to {n} "
        "were read; re-stage the file.",
        uri=file.uri,
    )


def _parquet_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    row_number_column: str | None,
) -> Iterator[pa.RecordBatch]:
    with open_storage(file) as handle:
        pf = _open_parquet(file, handle)
        names = _parquet_columns(file, pf, required, any_of)
        wanted = list(columns) if columns is not None else names
        present = [c for c in wanted if c in names]
        n = 0
        try:
            for batch in pf.iter_batches(batch_size=batch_size, columns=present):
                if batch.num_rows == 0:
                    continue
                arrays = [
                    batch.column(name) if name in present else pa.nulls(batch.num_rows, pa.string())
                    for name in wanted
                ]
                out_names = list(wanted)
                if row_number_column is not None:
                    arrays.append(pa.array(range(n + 1, n + batch.num_rows + 1), type=pa.int64()))
                    out_names.append(row_number_column)
                n += batch.num_rows
                yield pa.RecordBatch.from_arrays(arrays, names=out_names)
        except (pa.ArrowException, OSError) as exc:
            raise _parquet_read_error(file, n, exc) from exc
