"""What an operator feeds the engine: one record per input row (or group of rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclass(slots=True)
class Deliverable:
    """A Braze object ready to send.

    :param file: the source file of the row it came from.
    :param row: the row number in that file.
    :param obj: the Braze object (an event, an attribute object, a recipient); ``None`` when
        only its JSON ``text`` was built (the columnar path).
    :param group: requests never mix groups (e.g. the campaign id of a recipient).
    :param rows: how many input rows this object accounts for (0 for an object that comes from
        state rather than input, e.g. an audience exit).
    :param raw: the input row (or the :class:`BatchRows` holding it), written to the rejects file if Braze
        refuses the object.
    :param text: the object's compact JSON, when already serialized.
    """

    file: str
    row: int
    obj: dict[str, Any] | None
    group: str = ""
    rows: int = 1
    raw: Any = None
    text: str | None = None


@dataclass(slots=True)
class Rejected:
    """An input row that cannot be sent, with the reason.

    :param file: the source file.
    :param row: the row number in that file (0 when the problem is not tied to one row).
    :param reason: what is wrong and, where possible, how to fix it.
    :param raw: the row as read.
    :param rows: how many input rows this reject accounts for.
    """

    file: str
    row: int
    reason: str
    raw: Any = None
    rows: int = 1


@dataclass(slots=True)
class Skipped:
    """Input rows that need no request (a duplicate, an unchanged member, …).

    :param reason: why nothing is sent; used as the key of the ``skipped_reasons`` counts.
    :param rows: how many input rows this accounts for.
    """

    reason: str
    rows: int = 1


Record = Deliverable | Rejected | Skipped


class BatchRows:
    """The rows of an Arrow record batch, turned into a dict only when one is needed.

    The columnar path gives each of its deliverables the one ``BatchRows`` of their batch as
    ``raw``: Braze refuses few objects, and a dict (or even a small object) per row would cost
    more than the rest of the path.

    :param batch: the record batch.
    :param row_number_column: the column holding each row's number (left out of the dicts).
    """

    __slots__ = ("batch", "row_number_column")

    def __init__(self, batch: pa.RecordBatch, row_number_column: str) -> None:
        self.batch = batch
        self.row_number_column = row_number_column

    def row(self, number: int) -> dict[str, Any] | None:
        """The row numbered ``number``, as column → value (as the row path reads it).

        :param number: the row number.
        """
        numbers = self.batch.column(self.row_number_column)
        index = pc.index(numbers, pa.scalar(number, numbers.type)).as_py()
        if index < 0:
            return None
        row: dict[str, Any] = self.batch.slice(index, 1).to_pylist()[0]
        del row[self.row_number_column]
        return row


def materialized(raw: Any, row_number: int) -> Any:
    """A record's ``raw`` row as it is written to the rejects file.

    :param raw: a row dict, text, or the :class:`BatchRows` holding the row.
    :param row_number: the row's number.
    """
    return raw.row(row_number) if isinstance(raw, BatchRows) else raw
