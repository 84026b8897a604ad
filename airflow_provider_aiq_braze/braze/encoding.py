"""How payloads are serialized: compact JSON, UTF-8 text kept readable, no NaN.

One shared encoder, built once on the standard library's public API (``json.dumps`` with
arguments builds a ``JSONEncoder`` per call, a measurable part of the per-row cost). Datetimes
become ISO 8601, decimals numbers, anything else its text.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import Any


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


#: The one JSON encoder of the package (request bodies, rejects, ledger, messages).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)


def to_json(value: Any) -> str:
    """Serialize compactly (the same text as ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)`` for plain JSON values).

    :param value: a JSON-able value (datetimes, decimals and bytes are converted).
    :raises ValueError: for NaN or Infinity.
    """
    return _ENCODER.encode(value)


def to_json_bytes(value: Any) -> bytes:
    """:func:`to_json` as UTF-8 bytes: a request body.

    :param value: a JSON-able value.
    :raises ValueError: for NaN or Infinity.
    """
    return _ENCODER.encode(value).encode("utf-8")
