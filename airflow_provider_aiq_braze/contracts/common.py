"""Pieces every row contract shares: identifiers, timestamps, property objects."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

from airflow_provider_aiq_braze.contracts.errors import ContractError
from airflow_provider_aiq_braze.contracts.identifiers import NotAnIdentifier, identifier

_EPOCH_MS_THRESHOLD = 100_000_000_000  # numbers at or above are milliseconds (year 5138 in seconds)
_MIN_TIME = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MAX_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)

__all__ = [
    "ContractError",
    "not_text_problem",
    "parse_timestamp",
    "pick_identifier",
    "properties_from_row",
    "text_or_none",
]


def text_or_none(value: Any) -> str | None:
    """A cell as trimmed text, ``None`` when empty or missing.

    :param value: the cell.
    """
    if value.__class__ is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


#: Cell values that are not text and must not be turned into text (``str()`` of a list or an
#: object would send its Python representation to Braze as an identifier or a name).
_NOT_TEXT = (Mapping, list, tuple, set, frozenset, bytes, bytearray)


def not_text_problem(value: Any, column: str) -> str | None:
    """The reject reason when a cell that must be text (an identifier, a name) holds a structure.

    :param value: the cell.
    :param column: its column, for the reason.
    """
    if value.__class__ is str or value is None or not isinstance(value, _NOT_TEXT):
        return None
    kind = "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"
    return f"column {column!r} holds {kind} ({str(value)[:60]}), not text"


def pick_identifier(
    data: Mapping[str, Any], preference: Sequence[str], columns: Mapping[str, str]
) -> tuple[str, str] | str:
    """Choose the one identifier an object carries: the first preferred kind with a value.

    Values follow the one identifier rule
    (:func:`~airflow_provider_aiq_braze.contracts.identifiers.identifier`).

    :param data: the row.
    :param preference: identifier kinds in order of preference.
    :param columns: the column holding each identifier kind.
    :return: ``(kind, value)``, or a reject reason.
    """
    for kind in preference:
        column = columns[kind]
        cell = data.get(column)
        if cell.__class__ is str:  # the common case, inline
            value: str | None = cell.strip() or None
        else:
            try:
                value = identifier(cell, column)
            except NotAnIdentifier as exc:
                return str(exc)
        if value is not None:
            return kind, value
    names = " or ".join(repr(columns[kind]) for kind in preference)
    return f"no identifier: {names} is empty"


def parse_timestamp(value: Any) -> str | tuple[str]:
    """Read a timestamp and format it as ISO 8601 UTC (``2026-11-28T12:00:00.000Z``).

    Accepts ISO 8601 with or without offset (naive means UTC), dates, epoch seconds or
    milliseconds (numbers or numeric text), and ``datetime`` values (Parquet).

    :param value: the cell.
    :return: the formatted time, or a one-element tuple holding the reject reason.
    """
    moment: datetime
    try:
        if value.__class__ is str:
            text = value.strip()
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                if not text:
                    return ("timestamp is empty",)
                if not text.lstrip("-").replace(".", "", 1).isdigit():
                    raise
                moment = _from_epoch(float(text))
        elif isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            moment = datetime(value.year, value.month, value.day)
        elif isinstance(value, bool) or value is None:
            return (f"timestamp {value!r} is not a time",)
        elif isinstance(value, int | float):
            moment = _from_epoch(float(value))
        else:
            return parse_timestamp(str(value))
    except (ValueError, OverflowError, OSError):
        return (
            f"timestamp {str(value)[:60]!r} is not ISO 8601 (e.g. 2026-11-28T12:00:00Z) "
            "or epoch seconds/milliseconds",
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    elif moment.utcoffset():
        moment = moment.astimezone(timezone.utc)
    if not _MIN_TIME <= moment < _MAX_TIME:
        return (f"timestamp {str(value)[:60]!r} is out of range (1970-01-01 to 2099-12-31)",)
    if value.__class__ is str and value[-1:] == "Z" and value[10:11] == "T":
        # already ISO 8601 UTC: reuse the validated text rather than formatting it again
        if len(value) == 20:
            return value[:19] + ".000Z"
        if len(value) == 24 and value[19] == ".":
            return value
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (twice as fast as an f-string)
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def _from_epoch(number: float) -> datetime:
    if math.isnan(number) or math.isinf(number):
        raise ValueError("not a finite number")
    seconds = number / 1000 if abs(number) >= _EPOCH_MS_THRESHOLD else number
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def properties_from_row(
    data: Mapping[str, Any],
    *,
    json_column: str | None,
    columns: Sequence[str] | None,
    excluded: frozenset[str],
) -> dict[str, Any] | tuple[str]:
    """Build a properties object from a row.

    A non-empty JSON column wins; otherwise the listed columns (or every column not excluded)
    become properties, empty cells left out.

    :param data: the row.
    :param json_column: the column holding a JSON object of properties, if any.
    :param columns: the columns to use as properties (``None``: every other column).
    :param excluded: columns that are never properties (identifiers, name, time…).
    :return: the properties, or a one-element tuple holding the reject reason.
    """
    if json_column is not None:
        raw = data.get(json_column)
        if raw is not None and raw != "":
            if isinstance(raw, Mapping):
                return dict(raw)
            try:
                parsed = json.loads(raw) if isinstance(raw, str | bytes) else raw
            except json.JSONDecodeError as exc:
                return (f"column {json_column!r} is not valid JSON: {exc.msg} at position {exc.pos}",)
            except RecursionError:
                return (f"column {json_column!r} is not valid JSON: arrays or objects nested too deeply",)
            if not isinstance(parsed, dict):
                return (f"column {json_column!r} must hold a JSON object, got {type(parsed).__name__}",)
            return parsed
    if columns is None:
        return {k: v for k, v in data.items() if v is not None and v != "" and k not in excluded}
    return {name: data[name] for name in columns if data.get(name) is not None and data.get(name) != ""}
