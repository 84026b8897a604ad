"""Rows of text values turned into record batches of ``pa.string()`` columns, a few thousand at a time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa


class TextBatches:
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
