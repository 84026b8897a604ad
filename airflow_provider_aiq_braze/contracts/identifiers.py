"""The one rule from a staged value to a Braze identifier, for every operator and the audience delta.

A value names a Braze user (``external_id``, ``braze_id``), an audience, a split or a campaign
the same way wherever it is read:

- text is taken as given, trimmed of whitespace at both ends (``str.strip()``: spaces, tabs, line
  breaks and the other Unicode spaces); empty text is no value;
- a whole number is its plain decimal spelling (``12``, ``-3``, ``100000000000000000000``), whatever
  its size; so is a Parquet decimal without fraction digits (scale 0);
- a null is no value;
- anything else is refused with a reason naming the column: booleans (``true`` is not ``"true"``),
  floating-point numbers (``1.0``, ``1e20``: their spelling depends on the writer), decimals with
  fraction digits, lists, objects, bytes, dates and times.

:func:`identifier` applies the rule to one Python value (rows of the row path);
:func:`identifier_array` to a whole Arrow column (the columnar paths and the audience delta), for
columns of text, of typed values (Parquet) or of JSON Lines text with the cells that held another
JSON type marked. ``tests/contracts/test_identifiers.py`` proves the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

#: Identifier kinds a row may carry, as named in Braze ``/users/track`` objects.
IDENTIFIER_KINDS = ("external_id", "braze_id")

#: Where a column holds a value that is present but refused: a boolean array, or ``False`` for none.
Refused: TypeAlias = pa.Array | bool

#: JSON text of a whole number, as ``json.dumps`` writes a Python ``int``.
_JSON_WHOLE_NUMBER = r"^-?[0-9]+$"


class NotAnIdentifier(ValueError):
    """A staged value that cannot name a Braze user, audience, split or campaign.

    :param reason: the reject reason (names the column, the kind of value and the rule).
    """


def identifier(value: Any, column: str) -> str | None:
    """The identifier a staged value stands for, or ``None`` when it holds no value.

    :param value: the cell, as a staging reader gives it.
    :param column: its column, named in the reason when the value is refused.
    :raises NotAnIdentifier: for a value that is neither text nor a whole number.
    """
    if value.__class__ is str:
        return value.strip() or None
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return "%d" % value  # noqa: UP031 (an int subclass's own __str__ may differ, e.g. IntEnum)
    if isinstance(value, str):
        return str.strip(value) or None
    if isinstance(value, Decimal) and value.is_finite() and value.as_tuple().exponent == 0:
        return "%d" % value  # noqa: UP031
    raise NotAnIdentifier(refusal(value, column))


def refusal(value: Any, column: str) -> str:
    """The reject reason of a value that is neither text nor a whole number.

    :param value: the cell.
    :param column: its column.
    """
    return (
        f"column {column!r} holds {_kind(value)} ({_shown(value)}), not text: identifiers must be "
        "text or whole numbers"
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, Decimal):
        return "a decimal number with a fraction or an exponent"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    if isinstance(value, datetime | date | time):
        return "a date or time"
    if isinstance(value, Sequence | set | frozenset):
        return "a list"
    return f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    """The value as JSON would spell it (what most staged files hold), else as Python does."""
    if isinstance(value, Decimal | datetime | date | time):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):
            text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def identifier_array(
    values: pa.Array | pa.ChunkedArray, json_cells: pa.Array | None = None
) -> tuple[pa.Array, Refused]:
    """:func:`identifier` for a whole column, vectorised with Arrow compute.

    :param values: the column: text, typed values (integers, decimals, booleans, floats, lists…),
        or JSON Lines text where ``json_cells`` marks the cells that held another JSON type than a
        string (their JSON text: ``true``, ``1.0``, ``12``, ``["u1"]``).
    :param json_cells: a boolean array marking those cells (no nulls), or ``None``.
    :return: the identifiers (a string array; null where there is no value or it is refused) and
        where a value is present but refused (compute the reasons with :func:`refusal` on those
        cells' Python values, or :func:`refusal_of_json` on their JSON text).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    kind = values.type
    if pa.types.is_dictionary(kind):
        return identifier_array(values.dictionary_decode(), json_cells)
    if pa.types.is_null(kind):
        return pa.nulls(len(values), pa.string()), False
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        text = pc.cast(values, pa.string()) if kind != pa.string() else values
        trimmed = _no_empty(pc.utf8_trim_whitespace(text))
        if json_cells is None or not pc.any(json_cells).as_py():
            return trimmed, False
        whole = pc.fill_null(pc.match_substring_regex(text, _JSON_WHOLE_NUMBER), False)
        refused = pc.and_(json_cells, pc.invert(whole))
        kept = pc.if_else(refused, pa.scalar(None, pa.string()), pc.if_else(json_cells, text, trimmed))
        return kept, refused if pc.any(refused).as_py() else False
    if pa.types.is_integer(kind) or (pa.types.is_decimal(kind) and kind.scale == 0):
        return pc.cast(values, pa.string()), False
    refused = pc.is_valid(values)
    return pa.nulls(len(values), pa.string()), refused if pc.any(refused).as_py() else False


def refusal_texts(
    values: pa.Array | pa.ChunkedArray, json_cells: pa.Array | None, refused: Refused, column: str
) -> pa.Array:
    """The reject reason of each refused cell of a column (:func:`refusal`), null elsewhere.

    Reasons are made in Python for the refused cells only (few, in practice).

    :param values: the column as given to :func:`identifier_array`.
    :param json_cells: its JSON Lines marks, as given to :func:`identifier_array`.
    :param refused: where a value is refused (from :func:`identifier_array`).
    :param column: the column's name.
    """
    reasons: list[str | None] = [None] * len(values)
    if refused is False:
        return pa.array(reasons, pa.string())
    positions = pc.indices_nonzero(refused)
    cells = values.take(positions).to_pylist()
    marked = json_cells.take(positions).to_pylist() if json_cells is not None else [False] * len(cells)
    for position, cell, is_json in zip(positions.to_pylist(), cells, marked, strict=True):
        reasons[position] = refusal_of_json(cell, column) if is_json else refusal(cell, column)
    return pa.array(reasons, pa.string())


def refusal_of_json(text: str, column: str) -> str:
    """:func:`refusal` for a JSON Lines cell given as its JSON text.

    :param text: the cell's JSON text.
    :param column: its column.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = text
    return refusal(value, column)


def _no_empty(text: pa.Array) -> pa.Array:
    """Empty strings become nulls."""
    if not pc.any(pc.equal(text, "")).as_py():
        return text
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
