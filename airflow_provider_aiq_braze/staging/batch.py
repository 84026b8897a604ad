"""The staged batch: rows of one staged file as every operator reads them.

Every operator reads its input the same way (see
:func:`~airflow_provider_aiq_braze.staging.read_staged_batches`): Arrow record batches of at most a
few thousand rows, each row numbered in its file, with what each format knows about its values.
An operator then chooses its contract only: a columnar path over :attr:`StagedBatch.batch`, the
row path over :meth:`StagedBatch.row`, or both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

#: The column of :attr:`StagedBatch.batch` holding each row's number (a name no staged column can
#: have: the readers refuse column names starting with a NUL character).
ROW_NUMBER_COLUMN = "\0row_number"

#: Rows per staged batch: large enough that the per-batch cost of Arrow compute calls vanishes,
#: small enough that a batch's intermediate columns stay a few MB.
STAGED_BATCH_ROWS = 16_384


def json_cells_column(name: str) -> str:
    """The name of the column marking, in a JSON Lines batch, the cells of ``name`` that held another
    JSON type than a string (their text is then their compact JSON: ``true``, ``12``, ``[1]``).

    :param name: the column.
    """
    return f"\0json\0{name}"


@dataclass(frozen=True, slots=True)
class StagedBatch:
    """Rows of one staged file.

    :param file: the file's URI.
    :param batch: the rows' columns and :data:`ROW_NUMBER_COLUMN`. CSV columns are text (an empty
        cell is null); Parquet columns keep their types; JSON Lines columns are text, a value that
        is not a JSON string being its compact JSON text, marked in ``json_cells``.
    :param json_cells: JSON Lines only: for each column holding values that are not strings, a
        boolean array marking those cells.
    :param exact: the rows the columns hold exactly (text values, and for JSON Lines the object's
        own key order): ``True`` for all, or a boolean array. A columnar path may only take these.
    :param objects: JSON Lines only: the rows as parsed (JSON types, own key order), by position.
    """

    file: str
    batch: pa.RecordBatch
    json_cells: Mapping[str, pa.Array] = field(default_factory=dict)
    exact: pa.Array | bool = True
    objects: Sequence[dict[str, Any]] | None = None

    @property
    def num_rows(self) -> int:
        """The number of rows."""
        return int(self.batch.num_rows)

    @property
    def columns(self) -> pa.RecordBatch:
        """The rows' columns, without the row numbers."""
        return self.batch.drop_columns([ROW_NUMBER_COLUMN])

    def row_numbers(self) -> list[int]:
        """Each row's number in its file."""
        return self.batch.column(ROW_NUMBER_COLUMN).to_pylist()  # type: ignore[no-any-return]

    def rows(self) -> list[dict[str, Any]]:
        """Every row as column → value, as the format gives it (JSON types for JSON Lines)."""
        if self.objects is not None:
            return list(self.objects)
        return self.columns.to_pylist()  # type: ignore[no-any-return]

    def row(self, index: int) -> dict[str, Any]:
        """One row as column → value, as the format gives it.

        :param index: the row's position in the batch.
        """
        if self.objects is not None:
            return self.objects[index]
        return self.columns.slice(index, 1).to_pylist()[0]  # type: ignore[no-any-return]

    def with_json_cells(self) -> pa.RecordBatch:
        """The rows' columns plus one :func:`json_cells_column` per column with marked cells."""
        columns = self.columns
        for name, marks in self.json_cells.items():
            columns = columns.append_column(json_cells_column(name), marks)
        return columns
