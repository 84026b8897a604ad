"""The shared encoder: compact JSON, readable UTF-8, no NaN, conversions for dates and decimals."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from airflow_provider_aiq_braze.braze.encoding import to_json


@pytest.mark.parametrize(
    "value",
    [
        {
            "external_id": "u1",
            "name": "viewed",
            "properties": {"ü": "é", "n": 1, "f": 1.5, "b": True, "z": None},
        },
        [1, "two", {"three": [4.0, None]}],
        'plain text with "quotes" and \\ and \n newline',
        {"nested": {"deeper": {"deepest": ["\u2028", "\x00"]}}},
    ],
)
def test_same_text_as_json_dumps(value: object) -> None:
    assert to_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_conversions() -> None:
    value = {"at": datetime(2026, 11, 28, 10, 0), "day": date(2026, 11, 28), "amount": Decimal("1.25")}
    assert json.loads(to_json(value)) == {
        "at": "2026-11-28T10:00:00+00:00",
        "day": "2026-11-28",
        "amount": 1.25,
    }
    aware = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
    assert to_json([aware]) == '["2026-11-28T12:00:00+00:00"]'


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    with pytest.raises(ValueError):
        to_json({"x": bad})
