"""How payloads are serialized: compact JSON, UTF-8 text kept readable, no NaN.

One shared encoder (building a ``JSONEncoder`` per call is a measurable part of the per-row
cost). Datetimes become ISO 8601, decimals numbers, anything else its text.
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


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)


def to_json(value: Any) -> str:
    """Serialize compactly.

    :param value: a JSON-able value (datetimes, decimals and bytes are converted).
    :raises ValueError: for NaN or Infinity.
    """
    return _ENCODER.encode(value)
