"""Arrow compute pieces for checking and serializing a whole record batch of staged rows at once.

The row contracts (:mod:`.events`) check and map one row at a time, which costs a few
microseconds of Python per row. For the common, plainly valid row the same decision can be made
for a whole record batch with Arrow compute, and its JSON text built the same way. These helpers
are deliberately conservative: a value is "clean" only when the row path would take it unchanged
(nothing to trim, nothing JSON must escape), so the text built here is byte for byte what the row
path serializes. Anything else is left to the row path, which decides and explains rejects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_aiq_braze.braze.limits import MAX_STRING_VALUE_LENGTH
from airflow_provider_aiq_braze.braze.rules import name_problem

#: Nothing JSON must escape: no double quote, backslash or control character (U+0000 to U+001F).
SAFE_TEXT = r'^[^"\\\x00-\x1f]*$'

#: Text ``str.strip()`` leaves unchanged (printable ASCII at both ends) and nothing to escape.
CLEAN_TEXT = r'^[!#-\[\]-~]([^"\\\x00-\x1f]*[!#-\[\]-~])?$'

_YEAR = r"(?:19[7-9][0-9]|20[0-9][0-9])"
_LEAP_YEAR = r"(?:19(?:7[26]|8[048]|9[26])|20(?:[02468][048]|[13579][26]))"
_DATE = (
    rf"(?:{_YEAR}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)"
)
#: ISO 8601 times the columnar path formats itself: a valid date from 1970 to 2099, ``T`` or a
#: space, ``HH:MM:SS``, optionally 3 or 6 fraction digits, then ``Z``, ``+00:00`` or nothing (UTC).
#: Other forms (offsets, epoch numbers) take the row path.
UTC_TIMESTAMP = (
    rf"^{_DATE}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{{3}}|\.[0-9]{{6}})?(?:Z|\+00:00)?$"
)

_SAFE_KEY = re.compile(r'[^"\\\x00-\x1f]+')


#: A row mask: a boolean column without nulls, or ``True`` / ``False`` for every row (the common
#: case of a whole column, found with one cheap test, which spares the per-row kernels).
Mask: TypeAlias = pa.Array | bool

#: Bytes that JSON escapes (controls, double quote, backslash): no UTF-8 sequence of another
#: character contains them.
_UNSAFE_BYTES = bytes(range(0x20)) + b'"\\'


def is_string_column(column: pa.Array) -> bool:
    """Whether a column holds text (the only type the columnar path serializes).

    :param column: the column.
    """
    return bool(pa.types.is_string(column.type))


def absent(column: pa.Array) -> Mask:
    """Where a cell is null or the empty string (the row path leaves such cells out).

    :param column: a string column.
    """
    if column.null_count == len(column):
        return True
    empty = pc.fill_null(pc.equal(column, ""), True)
    if not pc.any(empty).as_py():
        return False
    return True if pc.all(empty).as_py() else empty


def safe_text(column: pa.Array) -> Mask:
    """Where a cell needs no JSON escaping (no control character, double quote or backslash).

    :param column: a string column.
    """
    data = column.buffers()[2]
    if data is None:
        return True
    raw = data.to_pybytes()
    if len(raw.translate(None, _UNSAFE_BYTES)) == len(raw):
        return True  # not one such byte in the whole column
    return matches(column, SAFE_TEXT)


def clean_text(column: pa.Array) -> Mask:
    """Where a cell is non-empty text that ``str.strip()`` leaves alone and JSON needs no escaping.

    :param column: a string column.
    """
    if not pc.all(pc.string_is_ascii(column)).as_py():
        return matches(column, CLEAN_TEXT)
    # ASCII without controls: the only character strip() removes is the space
    padded = pc.or_(pc.starts_with(column, " "), pc.ends_with(column, " "))
    return both(safe_text(column), pc.fill_null(pc.and_(pc.invert(padded), pc.not_equal(column, "")), False))


def matches(column: pa.Array, pattern: str) -> pa.Array:
    """True where a cell matches ``pattern``; false where it is null.

    :param column: a string column.
    :param pattern: an RE2 regular expression.
    """
    return pc.fill_null(pc.match_substring_regex(column, pattern), False)


def at_most_chars(column: pa.Array, limit: int) -> Mask:
    """Where a cell has at most ``limit`` characters (code points, as Python's ``len``); nulls pass.

    :param column: a string column.
    :param limit: the largest length accepted.
    """
    lengths = pc.utf8_length(column)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= limit:
        return True
    return pc.fill_null(pc.less_equal(lengths, limit), True)


def both(first: Mask, second: Mask) -> Mask:
    """Row-wise AND of two masks.

    :param first: a mask.
    :param second: a mask.
    """
    if first is True or second is False:
        return second
    if second is True or first is False:
        return first
    return pc.and_(first, second)


def either(first: Mask, second: Mask) -> Mask:
    """Row-wise OR of two masks.

    :param first: a mask.
    :param second: a mask.
    """
    if first is False or second is True:
        return second
    if second is False or first is True:
        return first
    return pc.or_(first, second)


def negated(mask: Mask) -> Mask:
    """Row-wise NOT of a mask.

    :param mask: a mask.
    """
    return (not mask) if isinstance(mask, bool) else pc.invert(mask)


def is_json_safe_key(name: str) -> bool:
    """Whether a key can be written into JSON without escaping.

    :param name: the key.
    """
    return _SAFE_KEY.fullmatch(name) is not None


def json_member(key: str, column: pa.Array, *, prefix: str = ",") -> pa.Array:
    """``"key":"value"`` for each cell, after ``prefix`` (a comma, or ``{`` to open an object).

    Only for keys and cells that need no escaping (see :func:`is_json_safe_key`, :func:`safe_text`).

    :param key: the member name.
    :param column: the values.
    :param prefix: the text before the member.
    """
    return pc.binary_join_element_wise(f'{prefix}"{key}":"', column, '"', "")


def when(mask: Mask, text: pa.Array | str, otherwise: pa.Array | str = "") -> pa.Array | str:
    """``text`` where ``mask`` is true, else ``otherwise``.

    :param mask: a mask.
    :param text: the text where true.
    :param otherwise: the text where false.
    """
    if isinstance(mask, bool):
        return text if mask else otherwise
    return pc.if_else(mask, text, otherwise)


def concat(*parts: pa.Array | str) -> pa.Array:
    """Join text columns and constants row by row (at least one part must be a column).

    :param parts: columns or constant strings; adjacent constants are merged first.
    """
    merged: list[pa.Array | str] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif not (isinstance(part, str) and not part):
            merged.append(part)
    return pc.binary_join_element_wise(*merged, "")


def identifier_parts(
    candidates: list[tuple[str, pa.Array]], checks: list[Mask]
) -> tuple[list[pa.Array | str], pa.Array | str]:
    """The opening ``{"<key>":"<identifier>"`` of each row: the first candidate with a value.

    A row is plainly valid (its condition added to ``checks``) when that identifier needs no
    trimming nor escaping; every other row takes the row path.

    :param candidates: each identifier's JSON key and column, in order of preference (one or two).
    :param checks: where to add the rows' condition.
    :return: the parts for :func:`concat`, and each row's identity ``<key>\0<identifier>`` (what
        tells two rows apart as the same user).
    """
    first_key, first = candidates[0]
    first_absent = absent(first)
    if first_absent is True and len(candidates) > 1:
        first_key, first = candidates[1]
        first_absent = absent(first)
    first_ok = clean_text(first)
    if first_absent is False or len(candidates) == 1 or first_key == candidates[-1][0]:
        checks.append(first_ok)
        return [f'{{"{first_key}":"', first, '"'], concat(f"{first_key}\0", first)
    second_key, second = candidates[1]
    checks.append(either(first_ok, both(first_absent, clean_text(second))))
    opening = when(
        first_ok, json_member(first_key, first, prefix="{"), json_member(second_key, second, prefix="{")
    )
    identity = when(first_ok, concat(f"{first_key}\0", first), concat(f"{second_key}\0", second))
    return [opening], identity


def text_members(
    columns: dict[str, pa.Array],
    names: Iterable[str],
    checks: list[Mask],
    *,
    reserved: frozenset[str] = frozenset(),
) -> list[tuple[str, pa.Array, Mask]]:
    """The text members of an object (event properties, trigger properties) built from columns.

    A row is plainly valid when each member is absent or text of at most 255 characters with
    nothing to escape, under a key Braze accepts; a key the row path would reject or escape makes
    every row holding it take the row path.

    :param columns: the batch's columns.
    :param names: the columns that become members, in order (missing ones are skipped).
    :param checks: where to add the rows' conditions.
    :param reserved: keys Braze refuses in this object.
    :return: each member's key, values, and where it is absent.
    """
    members: list[tuple[str, pa.Array, Mask]] = []
    for key in names:
        values = columns.get(key)
        if values is None:
            continue
        empty = absent(values)
        if empty is True:
            continue
        if name_problem(key, reserved=reserved) or not is_json_safe_key(key):
            checks.append(empty)  # the row path rejects (or escapes) it
            continue
        checks.append(either(empty, both(safe_text(values), at_most_chars(values, MAX_STRING_VALUE_LENGTH))))
        members.append((key, values, empty))
    return members


def object_parts(key: str, members: list[tuple[str, pa.Array, Mask]]) -> list[pa.Array | str]:
    """The ``,"<key>":{…}`` member of each row (left out where the object would be empty).

    :param key: the object's key (``properties``, ``trigger_properties``).
    :param members: each member's key, values, and where it is absent.
    """
    if not members:
        return []
    if all(empty is False for _, _, empty in members):  # every row has every member
        parts: list[pa.Array | str] = [f',"{key}":{{']
        for position, (name, values, _) in enumerate(members):
            parts += [f'{"," if position else ""}"{name}":"', values, '"']
        return [*parts, "}"]
    joined = concat(*(when(empty, "", json_member(name, values)) for name, values, empty in members))
    body = concat(f',"{key}":{{', pc.utf8_slice_codeunits(joined, 1), "}")
    return [when(pc.equal(joined, ""), "", body)]


def all_of(checks: list[Mask]) -> Mask:
    """Row-wise AND of every mask.

    :param checks: the masks.
    """
    result: Mask = True
    for check in checks:
        result = both(result, check)
    return result


def texts_where(valid: Mask, parts: list[pa.Array | str], rows: int) -> list[str | None]:
    """The joined parts of each row where ``valid``, ``None`` elsewhere.

    :param valid: the rows that are plainly valid.
    :param parts: the parts for :func:`concat`.
    :param rows: the number of rows.
    """
    if valid is False:
        return [None] * rows
    text = concat(*parts)
    if valid is not True:
        text = pc.if_else(valid, text, pa.scalar(None, pa.string()))
    return text.to_pylist()  # type: ignore[no-any-return]
