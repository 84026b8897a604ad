"""What an operator feeds the engine: one record per input row (or group of rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Deliverable:
    """A Braze object ready to send.

    :param file: the source file of the row it came from.
    :param row: the row number in that file.
    :param obj: the Braze object (an event, an attribute object, a recipient).
    :param group: requests never mix groups (e.g. the campaign id of a recipient).
    :param rows: how many input rows this object accounts for (0 for an object that comes from
        state rather than input, e.g. an audience exit).
    :param raw: the input row, written to the rejects file if Braze refuses the object.
    """

    file: str
    row: int
    obj: dict[str, Any]
    group: str = ""
    rows: int = 1
    raw: Any = None


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
