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

import pyarrow as pa
import pyarrow.compute as pc

#: Nothing JSON must escape: no double quote, backslash or control character (U+0000 to U+001F).
SAFE_TEXT = r'^[^"\\\x00-\x1f]*$'

#: Text ``str.strip()`` leaves unchanged (printable ASCII at both ends) and nothing to escape.
CLEAN_TEXT = r'^[!#-\[\]-~]([^"\\\x00-\x1f]*[!#-\[\]-~])?$'

#: A ``braze_id``: 24 lowercase hexadecimal digits (as ``BRAZE_ID_PATTERN``).
BRAZE_ID = r"^[0-9a-f]{24}$"

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


def is_string_column(column: pa.Array | pa.ChunkedArray) -> bool:
    """Whether a column holds text (the only type the columnar path serializes).

    :param column: the column.
    """
    return bool(pa.types.is_string(column.type))


def absent(column: pa.Array) -> pa.Array:
    """True where a cell is null or the empty string (the row path leaves such cells out).

    :param column: a string column.
    """
    return pc.fill_null(pc.equal(column, ""), True)


def matches(column: pa.Array, pattern: str) -> pa.Array:
    """True where a cell matches ``pattern``; false where it is null.

    :param column: a string column.
    :param pattern: an RE2 regular expression.
    """
    return pc.fill_null(pc.match_substring_regex(column, pattern), False)


def at_most_chars(column: pa.Array, limit: int) -> pa.Array:
    """True where a cell has at most ``limit`` characters (code points, as Python's ``len``).

    :param column: a string column.
    :param limit: the largest length accepted.
    """
    return pc.fill_null(pc.less_equal(pc.utf8_length(column), limit), True)


def is_json_safe_key(name: str) -> bool:
    """Whether a key can be written into JSON without escaping.

    :param name: the key.
    """
    return _SAFE_KEY.fullmatch(name) is not None


def json_member(key: str, column: pa.Array, *, prefix: str = ",") -> pa.Array:
    """``"key":"value"`` for each cell, after ``prefix`` (a comma, or ``{`` to open an object).

    Only for keys and cells that need no escaping (see :func:`is_json_safe_key`, ``SAFE_TEXT``).

    :param key: the member name.
    :param column: the values.
    :param prefix: the text before the member.
    """
    return pc.binary_join_element_wise(f'{prefix}"{key}":"', column, '"', "")


def when(mask: pa.Array, text: pa.Array | str, otherwise: pa.Array | str = "") -> pa.Array:
    """``text`` where ``mask`` is true, else ``otherwise``.

    :param mask: a boolean column without nulls.
    :param text: the text where true.
    :param otherwise: the text where false.
    """
    return pc.if_else(mask, text, otherwise)


def concat(*parts: pa.Array | str) -> pa.Array:
    """Join text columns (and constants) row by row.

    :param parts: columns or constant strings.
    """
    return pc.binary_join_element_wise(*parts, "")


def all_true(masks: list[pa.Array], length: int) -> pa.Array:
    """The row-wise AND of boolean columns without nulls (all true when there are none).

    :param masks: the columns.
    :param length: the number of rows.
    """
    result: pa.Array = pa.array([True] * length, type=pa.bool_()) if not masks else masks[0]
    for mask in masks[1:]:
        result = pc.and_(result, mask)
    return result
