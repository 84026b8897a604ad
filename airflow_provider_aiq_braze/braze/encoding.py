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

# ``JSONEncoder.encode`` builds its C encoder again on every call; building it once halves the
# cost of serializing a small object (the per-row hot path). Same output as ``_ENCODER``.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring = getattr(json.encoder, "c_encode_basestring", None)
_C_ENCODER = (
    _c_make_encoder(None, _default, _c_encode_basestring, None, ":", ",", False, False, False)
    if _c_make_encoder is not None and _c_encode_basestring is not None
    else None
)


def to_json(value: Any) -> str:
    """Serialize compactly.

    :param value: a JSON-able value (datetimes, decimals and bytes are converted).
    :raises ValueError: for NaN or Infinity.
    """
    if _C_ENCODER is None or value.__class__ is str:
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))
