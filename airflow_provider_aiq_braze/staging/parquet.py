"""Parquet: read row by row or batch by batch, columns keeping their types."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_aiq_braze.staging._streams import open_storage
from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.locate import StagedFile
from airflow_provider_aiq_braze.staging.rows import StagedRow, check_columns

#: Rows per Arrow batch when :func:`parquet_rows` reads (bounds the memory of ``to_pylist``).
PARQUET_ROWS_BATCH = 8192


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
    if any(name[:1] == "\0" for name in names):
        raise StagingError(
            f"{file.uri}: a column name starts with a NUL character. Rename the column.", uri=file.uri
        )
    return names


def parquet_rows(
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
            for batch in pf.iter_batches(batch_size=PARQUET_ROWS_BATCH, columns=selected):
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


def parquet_batches(
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
