"""Read staged files: row by row, as Arrow record batches, or as the staged batches operators read.

Reading streams: memory stays flat whatever the file size (CSV and JSON Lines line by line,
Parquet batch by batch). Row-level problems never raise; they come back as a :class:`StagedRow`
with ``data=None`` and ``error`` set (or go to ``on_reject``), so the caller can write a reject and
go on. File-level problems raise :class:`~airflow_provider_aiq_braze.staging.errors.StagingError`.
Each format lives in its own module (``csv_rows``, ``csv_arrow``, ``jsonl``, ``parquet``); this
one chooses. See ``docs/staging.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

import pyarrow as pa

from airflow_provider_aiq_braze.staging.batch import ROW_NUMBER_COLUMN, STAGED_BATCH_ROWS, StagedBatch
from airflow_provider_aiq_braze.staging.csv_arrow import csv_batches
from airflow_provider_aiq_braze.staging.csv_rows import csv_rows
from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.jsonl import jsonl_batches, jsonl_rows, jsonl_staged_batches
from airflow_provider_aiq_braze.staging.locate import StagedFile
from airflow_provider_aiq_braze.staging.parquet import parquet_batches, parquet_rows
from airflow_provider_aiq_braze.staging.rows import RejectHandler, StagedRow, raise_reject


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
        return csv_rows(file, columns, required_columns, any_of_columns)
    if file.format == "jsonl":
        return jsonl_rows(file, columns, required_columns, any_of_columns)
    if file.format == "parquet":
        return parquet_rows(file, columns, required_columns, any_of_columns)
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
    reject = on_reject if on_reject is not None else raise_reject
    options = (columns, batch_size, required_columns, any_of_columns)
    if file.format == "csv":
        return csv_batches(file, *options, reject, row_number_column)
    if file.format == "jsonl":
        return jsonl_batches(file, *options, reject, row_number_column)
    if file.format == "parquet":
        return parquet_batches(file, *options, row_number_column)
    raise StagingError(f"{file.uri}: unknown format {file.format!r}.", uri=file.uri)


def read_staged_batches(
    file: StagedFile,
    *,
    on_reject: RejectHandler,
    columns: Sequence[str] | None = None,
    required_columns: Collection[str] = (),
    any_of_columns: Collection[Collection[str]] = (),
    batch_size: int = STAGED_BATCH_ROWS,
) -> Iterator[StagedBatch]:
    """Stream one staged file as the :class:`StagedBatch` es every operator reads.

    The rows, their numbers and the rejects are those of :func:`read_rows`. CSV and Parquet batches
    are those of :func:`read_record_batches`; a JSON Lines batch holds every field of its objects
    (or ``columns``), marks the values that are not strings and keeps the objects themselves.

    :param file: a file from :func:`~airflow_provider_aiq_braze.staging.locate`.
    :param on_reject: called with each row that cannot be read.
    :param columns: the columns to read (``None``: all).
    :param required_columns: as for :func:`read_rows`.
    :param any_of_columns: as for :func:`read_rows`.
    :param batch_size: at most this many rows per batch.
    """
    options = (columns, batch_size, required_columns, any_of_columns)
    if file.format == "jsonl":
        yield from jsonl_staged_batches(file, *options, on_reject)
        return
    if file.format == "csv":
        batches = csv_batches(file, *options, on_reject, ROW_NUMBER_COLUMN)
    elif file.format == "parquet":
        batches = parquet_batches(file, *options, ROW_NUMBER_COLUMN)
    else:
        raise StagingError(f"{file.uri}: unknown format {file.format!r}.", uri=file.uri)
    for batch in batches:
        yield StagedBatch(file.uri, batch)
