"""The events contract: every validation rule, and the object it builds."""

from __future__ import annotations

import pytest

from airflow_provider_aiq_braze.contracts.common import ContractError, parse_timestamp
from airflow_provider_aiq_braze.contracts.events import EventContract

BRAZE_ID = "5f1e2d3c4b5a69788796a5b4"


def _row(**overrides: object) -> dict:
    row = {
        "event_name": "purchase_intent",
        "external_id": "u1",
        "braze_id": None,
        "timestamp": "2026-11-28T10:00:00Z",
    }
    row.update(overrides)
    return row


def test_maps_row_with_other_columns_as_properties() -> None:
    event = EventContract().to_event(_row(plan="gold", seats="3"))
    assert event == {
        "external_id": "u1",
        "name": "purchase_intent",
        "time": "2026-11-28T10:00:00.000Z",
        "properties": {"plan": "gold", "seats": "3"},
    }


def test_json_properties_column_and_app_id() -> None:
    event = EventContract().to_event(_row(properties='{"n": 2, "ok": true}', app_id="app-1", ignored="x"))
    assert event["properties"] == {"n": 2, "ok": True}
    assert event["app_id"] == "app-1"


def test_prefers_external_id_then_braze_id_and_preference_is_configurable() -> None:
    assert EventContract().to_event(_row(braze_id=BRAZE_ID))["external_id"] == "u1"
    assert EventContract().to_event(_row(external_id="", braze_id=BRAZE_ID))["braze_id"] == BRAZE_ID
    flipped = EventContract(identifier_preference=("braze_id", "external_id"))
    assert flipped.to_event(_row(braze_id=BRAZE_ID))["braze_id"] == BRAZE_ID
    with pytest.raises(ContractError):
        EventContract(identifier_preference=("email",))


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"external_id": None}, "no identifier"),
        ({"event_name": ""}, "event name ('event_name') is empty"),
        ({"event_name": "x" * 256}, "256 characters"),
        ({"event_name": "$purchase"}, "starts with '$'"),
        ({"timestamp": "yesterday"}, "not ISO 8601"),
        ({"timestamp": "1900-01-01T00:00:00"}, "out of range"),
        ({"time": "12:00"}, "'time' is reserved"),
        ({"event_name_x": None, "$bad": "v"}, "starts with '$'"),
        ({"long": "v" * 256}, "string of 256 characters"),
        ({"properties": "{not json"}, "not valid JSON"),
        ({"properties": "[1, 2]"}, "must hold a JSON object"),
        ({"properties": '{"x": NaN}'}, "finite numbers"),
    ],
)
def test_rejects_with_reason(overrides: dict, reason: str) -> None:
    result = EventContract().to_event(_row(**overrides))
    assert isinstance(result, str)
    assert reason in result


def test_event_name_property_is_reserved() -> None:
    assert "reserved" in EventContract().to_event(_row(properties='{"event_name": "x"}'))


def test_properties_size_limit_is_configurable() -> None:
    # the limit applies to properties holding arrays or objects (a flat object has none: Braze's pages)
    row = _row(properties='{"a": ["' + "x" * 200 + '"]}')
    assert isinstance(EventContract().to_event(row), dict)
    assert "bytes once serialized" in EventContract(properties_max_bytes=100).to_event(row)
    flat = _row(properties='{"a": "' + "x" * 200 + '"}')
    assert isinstance(EventContract(properties_max_bytes=100).to_event(flat), dict)


def test_a_braze_id_is_any_text() -> None:
    # Braze documents braze_id as a string, no format (this used to be refused unless 24 hex digits)
    event = EventContract().to_event(_row(external_id=None, braze_id=" not-a-braze-id "))
    assert isinstance(event, dict) and event["braze_id"] == "not-a-braze-id"


def test_update_existing_only_flag() -> None:
    assert EventContract(update_existing_only=True).to_event(_row())["_update_existing_only"] is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T10:00:00", "2026-11-28T10:00:00.000Z"),
        ("2026-11-28T12:00:00+02:00", "2026-11-28T10:00:00.000Z"),
        ("2026-11-28 10:00:00.123456Z", "2026-11-28T10:00:00.123Z"),
        ("2026-11-28", "2026-11-28T00:00:00.000Z"),
        ("2026-11-28T10:00:00Z", "2026-11-28T10:00:00.000Z"),
        ("2026-11-28T10:00:00.250Z", "2026-11-28T10:00:00.250Z"),
        (" 2026-11-28T10:00:00Z ", "2026-11-28T10:00:00.000Z"),
        ("2099-12-31T23:59:59Z", "2099-12-31T23:59:59.000Z"),
        (1796119200, "2026-12-01T10:00:00.000Z"),
        ("1796119200", "2026-12-01T10:00:00.000Z"),
        (1796119200123, "2026-12-01T10:00:00.123Z"),
        ("1796119200.5", "2026-12-01T10:00:00.500Z"),
    ],
)
def test_timestamps(value: object, expected: str) -> None:
    assert parse_timestamp(value) == expected
