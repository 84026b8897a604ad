"""The sandbox's single-value checks (checks.py), where the HTTP tests do not reach."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_aiq_braze.sandbox import checks


@pytest.mark.parametrize(
    "value",
    [{"a": [1, 2, {"b": "é", "c": None}], "d": "x\ud800"}, [], {}, [[[]]], {"k": 1.5e300, "t": True}],
)
def test_iterative_size_agrees_with_json(value):
    assert checks._payload_bytes_iteratively(value) == checks.payload_bytes(value)


def test_attribute_operators_are_accepted_only_as_attribute_values():
    value = {"$add": [{"id": 1}], "$identifier_key": "id"}
    assert checks.value_ok(value, attribute=True)
    assert not checks.value_ok(value)
    assert not checks.value_ok({"$other": 1}, attribute=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2013-07-16T19:20:30+01:00", datetime(2013, 7, 16, 18, 20, 30, tzinfo=timezone.utc)),
        ("2013-07-16T19:20:30:000+0000", datetime(2013, 7, 16, 19, 20, 30, tzinfo=timezone.utc)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=timezone.utc)),
        ("yesterday", None),
        ("", None),
        (1714560000, None),
    ],
)
def test_times_in_the_formats_braze_documents(text, expected):
    assert checks.parse_time(text) == expected


@pytest.mark.parametrize(
    ("kind", "value", "identity"),
    [
        ("external_user_id", "u1", ("external_id", "u1")),
        ("user_alias", {"alias_name": "a", "alias_label": "l"}, ("user_alias", "l\x00a")),
        ("phone", "+15555550100", ("phone", "+15555550100")),
        ("phone", "5555550100", "The value provided for the 'phone' field is not a valid phone number."),
        ("braze_id", "", "'braze_id' is not valid"),
    ],
)
def test_identities(kind, value, identity):
    assert checks.identity_of(kind, value) == identity
