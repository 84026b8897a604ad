"""Braze's payload rules for names and values."""

from __future__ import annotations

import pytest

from airflow_provider_aiq_braze.braze.rules import (
    RESERVED_EVENT_PROPERTY_NAMES,
    name_problem,
    properties_problem,
    value_problem,
)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("AIQ_123_456", None),
        ("a" * 255, None),
        ("a" * 256, "property name is 256 characters long (Braze allows at most 255)"),
        ("", "property name is empty"),
        ("   ", "property name is empty"),
        ("$price", "property name '$price' starts with '$', which Braze reserves"),
        (7, "property name must be a string, got int"),
    ],
)
def test_name_problem(name: object, problem: str | None) -> None:
    assert name_problem(name) == problem


def test_reserved_names() -> None:
    assert (
        name_problem("time", reserved=RESERVED_EVENT_PROPERTY_NAMES)
        == "property name 'time' is reserved by Braze"
    )
    assert name_problem("event_name", what="event property", reserved=RESERVED_EVENT_PROPERTY_NAMES) == (
        "event property name 'event_name' is reserved by Braze"
    )
    assert name_problem("time") is None


@pytest.mark.parametrize("value", [None, True, 0, -3, 1.5, "x" * 255, [1, "a", None], {"k": [1, {"j": "v"}]}])
def test_valid_values(value: object) -> None:
    assert value_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("x" * 256, "value is a string of 256 characters (Braze allows at most 255)"),
        (float("nan"), "value is nan; Braze accepts only finite numbers"),
        (float("inf"), "value is inf; Braze accepts only finite numbers"),
        ([1, "x" * 256], "value[1] is a string of 256 characters (Braze allows at most 255)"),
        ({"$k": 1}, "value key name '$k' starts with '$', which Braze reserves"),
        ({"k": {1, 2}}, "value.k has unsupported type set"),
        (b"bytes", "value has unsupported type bytes"),
    ],
)
def test_invalid_values(value: object, problem: str) -> None:
    assert value_problem(value) == problem


def test_properties_problem() -> None:
    assert properties_problem({"plan": "gold", "n": 3}, max_bytes=100) is None
    assert properties_problem({"time": "x"}, max_bytes=100) == "property name 'time' is reserved by Braze"
    assert properties_problem(["a"], max_bytes=100) == "property object must be a JSON object, got list"
    # Braze bounds only a properties object holding arrays or objects (event_object.md); a flat one
    # of any size is Braze's to judge. (This used to say 128 bytes over a limit of 100: a belief.)
    assert properties_problem({"k": "é" * 60}, max_bytes=100) is None
    assert properties_problem({"k": ["é" * 60]}, max_bytes=100) == (
        "property object holds arrays or objects and is 130 bytes once serialized (Braze accepts at most "
        "100 for such an object; see properties_max_bytes)"
    )
    assert properties_problem({"k": {"a": 1}}, max_bytes=100) is None
    assert (
        properties_problem({"k": 1.0e999}, max_bytes=100)
        == "property 'k' is inf; Braze accepts only finite numbers"
    )
