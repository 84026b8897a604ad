"""CSV as Arrow record batches: Arrow's own CSV parser while it provably reads what Python's would.

See :func:`csv_batches`. The rows, values, rejects and errors are exactly those of
:func:`~airflow_provider_aiq_braze.staging.csv_rows.csv_rows`; only the speed differs.
"""

from __future__ import annotations

import codecs
import contextlib
import io
from collections.abc import Collection, Generator, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from airflow_provider_aiq_braze.staging._streams import READ_ERRORS, open_binary
from airflow_provider_aiq_braze.staging.csv_rows import CSV_FIELD_LIMIT, csv_rows
from airflow_provider_aiq_braze.staging.locate import StagedFile
from airflow_provider_aiq_braze.staging.rows import RejectHandler, projection
from airflow_provider_aiq_braze.staging.text_batches import TextBatches

#: Bytes read per chunk of the fast path (parsed by Arrow from memory, a chunk of whole lines at a
#: time). A line longer than four chunks makes it give up.
ARROW_CSV_BLOCK = 1 << 19

_ONE = pa.scalar(1, pa.int64())


def csv_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    on_reject: RejectHandler,
    row_number_column: str | None,
) -> Iterator[pa.RecordBatch]:
    """CSV as record batches: Arrow's CSV reader while that is provably the same, else ``csv_rows``.

    Fast path (:func:`arrow_csv_batches`): Arrow parses the file in C++, ~15 times faster. It is
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
    done, finished = yield from arrow_csv_batches(
        file, columns, batch_size, required, any_of, row_number_column
    )
    if finished:
        return
    kept: list[str] = []
    builder: TextBatches | None = None
    for row in csv_rows(file, columns, required, any_of, kept.extend):
        if row.row_number <= done:  # yielded by the fast path (always a good row)
            continue
        if row.data is None:
            on_reject(row)
            continue
        if builder is None:
            builder = TextBatches(kept, columns, batch_size, row_number_column)
        batch = builder.add(row.row_number, row.data.values())
        if batch is not None:
            yield batch
    if builder is not None and (batch := builder.finish()) is not None:
        yield batch


def arrow_csv_batches(
    file: StagedFile,
    columns: Sequence[str] | None,
    batch_size: int,
    required: Collection[str],
    any_of: Collection[Collection[str]],
    row_number_column: str | None,
) -> Generator[pa.RecordBatch, None, tuple[int, bool]]:
    """Yield the leading batches Arrow reads exactly as the Python path would (see :func:`csv_batches`).

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
    with contextlib.closing(csv_rows(file, None, required, any_of, header.extend)) as rows:
        next(rows, None)
    names, _ = projection(header, columns)
    wanted = list(columns) if columns is not None else names
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
                if not _fields_within(table, CSV_FIELD_LIMIT):
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
    pending = stream.read(ARROW_CSV_BLOCK)
    if pending.startswith(codecs.BOM_UTF8):
        pending = pending[len(codecs.BOM_UTF8) :]
    while True:  # the header line
        end = min((i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0), default=-1)
        if end >= 0 or b'"' in pending:
            break
        more = stream.read(ARROW_CSV_BLOCK)
        if not more:
            return  # the header is the whole file
        pending += more
    if end < 0:
        yield pending  # a quote in the header: the caller stops
        return
    pending = pending[end + 1 :]
    while True:
        data = stream.read(ARROW_CSV_BLOCK)
        if not data:
            if pending:
                yield pending
            return
        pending += data
        cut = max(pending.rfind(b"\n"), pending.rfind(b"\r")) + 1
        if cut:
            chunk, pending = pending[:cut], pending[cut:]
            yield chunk  # a \r\n cut after \r leaves \n: a blank line, skipped by both paths
        elif len(pending) > 4 * ARROW_CSV_BLOCK:
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
