"""The one identifier rule: the row version and the Arrow version agree on many values, in every form
a staging reader gives them (typed Parquet columns, CSV text, JSON Lines with its non-string cells
marked)."""

from __future__ import annotations

import json
import math
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.contracts.identifiers import (
    NotAnIdentifier,
    identifier,
    identifier_array,
    refusal_texts,
)
from airflow_provider_aiq_braze.staging import locate, read_staged_batches

SPACES = [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\x1f", "\x0b"]
COLUMN = "external_id"


def _text(rng: random.Random) -> str:
    core = rng.choice(
        [
            "u1",
            "U-2",
            "1",
            "007",
            "1.0",
            "1e20",
            "true",
            "null",
            "[1]",
            '{"x":1}',
            "é",
            "日本",
            "",
            "a b",
            '"q"',
        ]
    )
    return (
        "".join(rng.choices(SPACES, k=rng.randint(0, 2)))
        + core
        + "".join(rng.choices(SPACES, k=rng.randint(0, 2)))
    )


def _value(rng: random.Random) -> Any:
    kind = rng.randrange(9)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice([0, 1, -1, 7, 2**31, 2**63 - 1, -(2**63)])
    if kind == 2:
        return rng.choice([2**64, 10**20, -(10**30), 123456789012345678901234567890])
    if kind == 3:
        return rng.choice([True, False])
    if kind == 4:
        return rng.choice([1.0, 1e20, 1.5, -0.0, 0.1, 1e-7, math.nan, math.inf])
    if kind == 5:
        return rng.choice([["u1", "u2"], [], [1], [None]])
    if kind == 6:
        return rng.choice([{"x": 1}, {}, {"a": {"b": [1]}}])
    if kind == 7:
        return None
    return rng.choice([Decimal("12"), Decimal("-5"), Decimal("1.50"), Decimal("0")])


def _python(value: Any) -> tuple[str | None, str | None]:
    """(identifier, refusal reason) by the row rule."""
    try:
        return identifier(value, COLUMN), None
    except NotAnIdentifier as exc:
        return None, str(exc)


def _arrow(values: pa.Array, marks: pa.Array | None = None) -> list[tuple[str | None, str | None]]:
    """(identifier, refusal reason) of each cell by the Arrow rule."""
    ids, refused = identifier_array(values, marks)
    reasons = refusal_texts(values, marks, refused, COLUMN)
    return list(zip(ids.to_pylist(), reasons.to_pylist(), strict=True))


VALUES = [_value(random.Random(seed)) for seed in range(3000)]


def test_the_rule_itself() -> None:
    assert identifier(" u1 ", COLUMN) == "u1"
    assert identifier("\u00a0u1\u3000", COLUMN) == "u1"
    assert identifier("   ", COLUMN) is None and identifier(None, COLUMN) is None
    assert identifier(10**20, COLUMN) == "100000000000000000000"
    assert identifier(-0, COLUMN) == "0"
    assert identifier(Decimal("12"), COLUMN) == "12"
    for refused, kind in [
        (True, "a boolean (true)"),
        (1.0, "a floating-point number (1.0)"),
        (1e20, "a floating-point number (1e+20)"),
        (["u1", "u2"], 'a list (["u1", "u2"])'),
        ({"x": 1}, 'an object ({"x": 1})'),
        (Decimal("1.50"), "a decimal number with a fraction or an exponent (1.50)"),
        (b"u1", "bytes"),
    ]:
        with pytest.raises(NotAnIdentifier) as caught:
            identifier(refused, COLUMN)
        assert str(caught.value).startswith(f"column 'external_id' holds {kind}")
        assert "not text: identifiers must be text or whole numbers" in str(caught.value)


@pytest.mark.parametrize(
    ("arrow_type", "accepts"),
    [
        (pa.string(), lambda v: isinstance(v, str)),
        (pa.large_string(), lambda v: isinstance(v, str)),
        (pa.int64(), lambda v: type(v) is int and -(2**63) <= v < 2**63),
        (pa.int8(), lambda v: type(v) is int and -128 <= v < 128),
        (pa.uint64(), lambda v: type(v) is int and 0 <= v < 2**64),
        (pa.bool_(), lambda v: type(v) is bool),
        (pa.float64(), lambda v: type(v) is float),
        (pa.decimal128(38, 0), lambda v: isinstance(v, Decimal) and v == v.to_integral_value()),
        (pa.decimal128(10, 2), lambda v: isinstance(v, Decimal)),
        (pa.list_(pa.string()), lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v)),
        (pa.struct([("x", pa.int64())]), lambda v: isinstance(v, dict) and set(v) == {"x"}),
        (pa.null(), lambda v: False),
    ],
)
def test_typed_columns_agree_with_the_row_rule(arrow_type: pa.DataType, accepts: Any) -> None:
    """A Parquet column of any type: the Arrow rule on the column equals the row rule on each value
    the row path sees (the column's Python values)."""
    picked = [v for v in VALUES if v is None or accepts(v)]
    column = pa.array(picked, arrow_type)
    assert len(column) > 100 or arrow_type == pa.null()
    assert _arrow(column) == [_python(v) for v in column.to_pylist()]
    dictionary = column.dictionary_encode() if arrow_type in (pa.string(), pa.int64()) else None
    if dictionary is not None:
        assert _arrow(dictionary) == [_python(v) for v in column.to_pylist()]


def test_json_lines_columns_agree_with_the_row_rule(tmp_path: Path) -> None:
    """Every value mixed in one JSON Lines column, read by the staging reader: the Arrow rule on the
    marked text column equals the row rule on the parsed objects."""
    path = tmp_path / "ids.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for value in VALUES:
            plain = str(value) if isinstance(value, Decimal) else value  # JSON has no decimals
            handle.write(json.dumps({COLUMN: plain, "n": 1}) + "\n")
    [file] = locate(str(path))
    expected, got = [], []
    for staged in read_staged_batches(file, on_reject=pytest.fail, batch_size=1000):
        assert staged.objects is not None
        expected += [_python(row.get(COLUMN)) for row in staged.rows()]
        got += _arrow(staged.batch.column(COLUMN), staged.json_cells.get(COLUMN))
    assert len(got) == len(VALUES)
    assert got == expected
    assert sum(1 for _, reason in got if reason) > 500  # the refusals were exercised
    assert sum(1 for text, _ in got if text and text.isdigit()) > 200  # and the whole numbers


def test_csv_text_is_only_trimmed(tmp_path: Path) -> None:
    texts = [v for v in VALUES if isinstance(v, str) and "\r" not in v and "\n" not in v]
    column = pa.array(texts, pa.string())
    assert _arrow(column) == [(t.strip() or None, None) for t in texts]
