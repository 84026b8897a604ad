"""What every reader shares: the staged row, its reject text, the header check and column picking."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.locate import StagedFile

#: ``raw`` of a rejected row is cut to this many characters.
RAW_LIMIT = 2000

#: Called with each rejected row by the batch readers.
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


def raise_reject(row: StagedRow) -> None:
    """The reject handler of a caller that gave none: rows are never dropped silently.

    :param row: the rejected row.
    :raises StagingError: always.
    """
    raise StagingError(f"{row.file}: row {row.row_number}: {row.error}", uri=row.file)


def cut(text: str) -> str:
    """``text`` cut to :data:`RAW_LIMIT` characters.

    :param text: a row's text.
    """
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…"


def printable(text: str) -> str:
    """Text with undecodable bytes (surrogate escapes) shown as U+FFFD.

    :param text: decoded text, possibly with surrogate escapes.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def projection(
    header: Sequence[str], columns: Collection[str] | None
) -> tuple[list[str], Callable[[list[Any]], Any] | None]:
    """The kept column names and a picker for them (``None`` = keep the whole row).

    :param header: the file's column names.
    :param columns: the columns wanted (``None``: all).
    """
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
