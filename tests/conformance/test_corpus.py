"""The corpus itself: complete, consistent, and easy to consume."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from tests.conformance.corpus import (
    ENDPOINTS,
    TYPE_NAMES,
    VERDICTS,
    Answer,
    ConformancePair,
    dump_json,
    load_pairs,
    shape_problems,
    type_name_matches,
)

PAIRS = load_pairs()


def test_at_least_30_pairs_with_unique_ids():
    assert len(PAIRS) >= 30
    assert [pair_id for pair_id, n in Counter(p.id for p in PAIRS).items() if n > 1] == []


def test_every_endpoint_and_every_verdict_is_covered():
    assert {p.endpoint for p in PAIRS} >= set(ENDPOINTS)
    assert {p.expect for p in PAIRS} == set(VERDICTS)
    assert {p.key for p in PAIRS} == {"valid", "invalid", "lacking_permission"}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: pair.id)
def test_each_pair_is_well_formed(pair: ConformancePair):
    assert pair.expect in VERDICTS
    assert pair.method in ("POST", "GET")
    assert pair.source.strip(), "every pair names its source"
    assert set(pair.answer.shape.values()) <= set(TYPE_NAMES)
    assert set(pair.answer.headers.values()) <= set(TYPE_NAMES)
    assert set(pair.answer.values) <= set(pair.answer.shape)
    assert (pair.answer.status is None) == (pair.answer.kind in ("reset", "closed", "timeout"))
    if pair.answer.kind == "json":
        assert shape_problems(pair.answer.example, pair.answer) == [], "the example fits its own shape"


def test_the_corpus_is_plain_json_data():
    data = json.loads(dump_json())
    assert len(data) == len(PAIRS)
    assert {"id", "endpoint", "method", "key", "request", "answer", "expect", "source", "setup"} <= set(
        data[0]
    )


def test_shape_checks_can_fail():
    answer = Answer("json", 201, {"message": "str", "errors": "list[error]"}, {"message": "success"})
    assert shape_problems({"message": "success", "errors": []}, answer) == []
    assert shape_problems({"message": "queued", "errors": []}, answer) == ["message: 'queued' != 'success'"]
    assert shape_problems({"message": "success"}, answer) == ["keys ['message'] != ['errors', 'message']"]
    assert shape_problems({"message": "success", "errors": ["x"]}, answer) == [
        "errors: ['x'] is not list[error]"
    ]
    assert shape_problems([], answer) == ["the body is list, not an object"]
    assert not type_name_matches(True, "int") and type_name_matches(1.5, "number")
    with pytest.raises(ValueError):
        type_name_matches(1, "integer")
