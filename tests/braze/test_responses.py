"""Parsing Braze responses and their per-item minor errors."""

from __future__ import annotations

from airflow_provider_aiq_braze.braze.responses import BrazeResponse, MinorError, Outcome, parse_minor_errors


def test_parse_minor_errors() -> None:
    body = {
        "message": "success",
        "errors": [
            {
                "type": "'external_id' or 'braze_id' or 'user_alias' is required",
                "input_array": "attributes",
                "index": 2,
            },
            {"type": "Invalid time", "input_array": "events", "index": 0},
            {"message": "no index"},
            "a bare string",
            {"type": "bool index", "index": True},
        ],
    }
    assert parse_minor_errors(body) == (
        MinorError("'external_id' or 'braze_id' or 'user_alias' is required", "attributes", 2),
        MinorError("Invalid time", "events", 0),
        MinorError("no index"),
        MinorError("a bare string"),
        MinorError("bool index"),
    )


def test_parse_minor_errors_absent_or_malformed() -> None:
    assert parse_minor_errors({"message": "success"}) == ()
    assert parse_minor_errors({"errors": "oops"}) == ()
    assert parse_minor_errors({"errors": [{}]}) == (MinorError("unspecified error"),)


def test_response_maps_errors_to_items() -> None:
    body = {
        "message": "success",
        "dispatch_id": "abc",
        "errors": [
            {"type": "bad attribute", "input_array": "attributes", "index": 1},
            {"type": "bad event", "input_array": "events", "index": 1},
            {"type": "second error same item", "input_array": "attributes", "index": 1},
            {"type": "unmapped"},
        ],
    }
    response = BrazeResponse("/users/track", Outcome.ACCEPTED, 201, body, parse_minor_errors(body))
    assert response.accepted
    assert response.errors_by_index("attributes") == {1: "bad attribute"}
    assert response.errors_by_index("events") == {1: "bad event"}
    assert response.errors_by_index("purchases") == {}
    assert response.unmapped_errors == (MinorError("unmapped"),)
    assert response.dispatch_id == "abc"
    assert response.send_id is None


def test_uncertain_response() -> None:
    response = BrazeResponse("/users/track", Outcome.UNCERTAIN, reason="ReadTimeout")
    assert response.uncertain_reason == "ReadTimeout"
    assert not response.accepted
    assert response.body == {}
    assert response.dispatch_id is None
