"""The columnar fast path of the events contract gives exactly the row path's JSON, or defers to it."""

from __future__ import annotations

import itertools
import random
from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.contracts.events import EventContract

BRAZE_ID = "5f1e2d3c4b5a69788796a5b4"

IDENTIFIERS = [None, "", "u1", " u1", "u1 ", "   ", "ü-1", "u\u00a0", "a,b", 'q"q', "tab\t", "ß", "x" * 300]
BRAZE_IDS = [None, "", BRAZE_ID, BRAZE_ID.upper(), "123", f" {BRAZE_ID}"]
NAMES = [
    None,
    "",
    "viewed",
    " viewed",
    "$viewed",
    "v$",
    "n" * 255,
    "n" * 256,
    "café",
    "é-start",
    'a"b',
    "a\\b",
]
TIMESTAMPS = [
    None,
    "",
    "2026-11-28T10:00:00Z",
    "2026-11-28T10:00:00.123Z",
    "2026-11-28T10:00:00.123456Z",
    "2026-11-28 10:00:00",
    "2026-11-28T10:00:00",
    "2026-11-28T10:00:00+00:00",
    "2026-11-28T10:00:00.5Z",
    "2026-11-28T10:00:00+02:00",
    "2026-11-28",
    "1764324000",
    "1764324000000",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T23:59:60Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "2099-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
    " 2026-11-28T10:00:00Z",
    "2026-11-28t10:00:00z",
]
VALUES = [
    None,
    "",
    "gold",
    " padded ",
    "p" * 255,
    "p" * 256,
    "ü" * 255,
    'say "hi"',
    "line\nbreak",
    "a\\b",
    "€",
]


def _both(contract: EventContract, rows: list[dict[str, Any]]) -> list[tuple[str | None, Any]]:
    """Each row's columnar text next to what the row path gives."""
    names = list(rows[0])
    batch = pa.RecordBatch.from_pylist(rows, schema=pa.schema([(n, pa.string()) for n in names]))
    texts = contract.encode_batch(batch)
    return [(text, contract.to_event(row)) for text, row in zip(texts, rows, strict=True)]


def _assert_same(pairs: list[tuple[str | None, Any]]) -> int:
    """Every columnar text equals the row path's serialized event; returns the fast rows."""
    fast = 0
    for text, event in pairs:
        if text is not None:
            assert not isinstance(event, str), f"columnar path accepted a row the row path rejects: {event}"
            assert text == to_json(event)
            fast += 1
    return fast


def test_every_combination_of_identifiers_names_and_times_matches_the_row_path() -> None:
    rows = [
        {"event_name": name, "external_id": ext, "braze_id": bid, "timestamp": ts, "plan": value}
        for ext, bid, name, ts, value in itertools.product(
            IDENTIFIERS, BRAZE_IDS, NAMES, TIMESTAMPS, VALUES[:4]
        )
    ]
    pairs = _both(EventContract(), rows)
    _assert_same(pairs)
    # plain rows all take the fast path (the test fails if the fast path defers everything)
    plain = [
        text
        for row, (text, _) in zip(rows, pairs, strict=True)
        if row["external_id"] in ("u1", "a,b")
        and row["event_name"] in ("viewed", "v$", "n" * 255)
        and row["timestamp"] in TIMESTAMPS[2:8]
        and row["plan"] in (None, "", "gold", " padded ")
    ]
    assert len(plain) == 2 * len(BRAZE_IDS) * 3 * 6 * 4
    assert None not in plain


@pytest.mark.parametrize("preference", [("external_id",), ("braze_id",), ("braze_id", "external_id")])
def test_identifier_preference(preference: tuple[str, ...]) -> None:
    rows = [
        {"event_name": "e", "external_id": ext, "braze_id": bid, "timestamp": "2026-11-28T10:00:00Z"}
        for ext, bid in itertools.product(IDENTIFIERS, BRAZE_IDS)
    ]
    assert _assert_same(_both(EventContract(identifier_preference=preference), rows)) > 0


def test_property_values_keys_properties_column_and_app_id() -> None:
    rows = [
        {
            "event_name": "e",
            "external_id": "u1",
            "timestamp": "2026-11-28T10:00:00Z",
            "plan": plan,
            "seats": seats,
            "properties": props,
            "app_id": app,
        }
        for plan, seats, props, app in itertools.product(
            VALUES, VALUES[:4], [None, "", '{"n": 1}', "not json"], [None, "", "app-1", " app", "a" * 256]
        )
    ]
    assert _assert_same(_both(EventContract(), rows)) > 0
    # an explicit property list (with a repeat and a column the batch lacks), no app_id column
    contract = EventContract(property_columns=["seats", "plan", "seats", "missing"], app_id_column=None)
    assert _assert_same(_both(contract, rows)) > 0
    assert _assert_same(_both(EventContract(update_existing_only=True), rows)) > 0


@pytest.mark.parametrize("key", ["time", "$bad", "", "k" * 256, 'quo"te', "ü-key", " lead"])
def test_unusual_property_names(key: str) -> None:
    rows = [
        {"event_name": "e", "external_id": "u1", "timestamp": "2026-11-28T10:00:00Z", key: value}
        for value in VALUES
    ]
    _assert_same(_both(EventContract(), rows))


def test_every_day_from_1969_to_2100() -> None:
    start = date(1969, 12, 25)
    stamps = [f"{start + timedelta(days=d)}T12:34:56Z" for d in range(0, 47_500, 7)]
    stamps += [
        f"{y}-{m:02d}-{d:02d}T00:00:00Z"
        for y in (1972, 1999, 2000, 2023, 2024, 2100)
        for m in (2, 4, 12)
        for d in (28, 29, 30, 31, 32)
    ]
    rows = [{"event_name": "e", "external_id": "u1", "timestamp": ts} for ts in stamps]
    pairs = _both(EventContract(), rows)
    _assert_same(pairs)
    deferred = [
        row["timestamp"]
        for row, (text, event) in zip(rows, pairs, strict=True)
        if text is None and not isinstance(event, str)
    ]
    assert deferred == []  # every valid day in range takes the fast path


def test_random_rows_match_the_row_path() -> None:
    rng = random.Random(7)
    alphabet = ["a", "Z", "0", " ", "$", '"', "\\", "\t", "é", "€", ",", "-", ":", "T", "."]
    rows = []
    for _ in range(3000):

        def text() -> str | None:
            return rng.choice([None, "", "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))])

        rows.append(
            {
                "event_name": rng.choice([text(), "viewed"]),
                "external_id": rng.choice([text(), "u1"]),
                "braze_id": rng.choice([None, BRAZE_ID, text()]),
                "timestamp": rng.choice(TIMESTAMPS),
                "p": text(),
                "app_id": rng.choice([None, text()]),
            }
        )
    assert _assert_same(_both(EventContract(), rows)) > 0


def test_columns_that_are_not_text_take_the_row_path() -> None:
    batch = pa.RecordBatch.from_pylist(
        [{"event_name": "e", "external_id": "u1", "timestamp": "2026-11-28T10:00:00Z", "n": 1}]
    )
    assert EventContract().encode_batch(batch) == [None]


def test_ignored_columns_are_not_properties() -> None:
    batch = pa.RecordBatch.from_pylist(
        [{"event_name": "e", "external_id": "u1", "timestamp": "2026-11-28T10:00:00Z", "row": 5}]
    )
    [text] = EventContract().encode_batch(batch, ignore=("row",))
    assert text == '{"external_id":"u1","name":"e","time":"2026-11-28T10:00:00.000Z"}'


def test_many_property_columns_take_the_columnar_path() -> None:
    # Braze bounds the size of properties objects holding arrays or objects only; text columns never
    # make one, so no row needs the row path for its size. (This test used to expect the row path
    # for 40 columns under a 50 KB bound on every properties object: a belief Braze's pages contradict.)
    row = {"event_name": "e", "external_id": "u1", "timestamp": "2026-11-28T10:00:00Z"}
    row.update({f"p{i}": "v" * 255 for i in range(400)})
    batch = pa.RecordBatch.from_pylist([row], schema=pa.schema([(n, pa.string()) for n in row]))
    expected = to_json(EventContract().to_event(row))
    assert len(expected) > 100 * 1024
    assert EventContract().encode_batch(batch)[0] == expected
    assert EventContract(properties_max_bytes=100).encode_batch(batch)[0] == expected


def _plain(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "event_name": "viewed",
        "external_id": f"u{i}",
        "braze_id": None,
        "timestamp": f"2026-11-28T10:{i % 60:02d}:00Z",
        "plan": f"p{i}",
        "seats": str(i),
    }
    row.update(overrides)
    return row


# Whole-column shortcuts (a column with no empty cell, no byte to escape, only ASCII) must agree
# with the per-row checks: each case is a batch where one column is uniform or has one odd row.
UNIFORM_BATCHES = {
    "all plain": ([_plain(i) for i in range(50)], 50),
    "braze_id only": ([_plain(i, external_id=None, braze_id=BRAZE_ID) for i in range(50)], 50),
    "one row without external_id": (
        [_plain(i, external_id=None if i == 7 else f"u{i}") for i in range(50)],
        49,
    ),
    "one padded external_id": ([_plain(i, external_id=" u" if i == 7 else f"u{i}") for i in range(50)], 49),
    "one quote in a property": ([_plain(i, plan='a"b' if i == 7 else "p") for i in range(50)], 49),
    "one empty property": ([_plain(i, plan="" if i == 7 else "p") for i in range(50)], 50),
    "property empty everywhere": ([_plain(i, plan=None) for i in range(50)], 50),
    "non-ASCII names": ([_plain(i, event_name="café visit" if i == 7 else "vü") for i in range(50)], 1),
    "non-ASCII inside": ([_plain(i, event_name="a-ü-b", external_id=f"u-ß-{i}") for i in range(50)], 50),
    "one long property": ([_plain(i, plan="x" * 256 if i == 7 else "p") for i in range(50)], 49),
    "one padded app_id": ([_plain(i, app_id=" a" if i == 7 else "a") for i in range(50)], 49),
    "one empty app_id": ([_plain(i, app_id=None if i == 7 else "a") for i in range(50)], 50),
}


@pytest.mark.parametrize("case", list(UNIFORM_BATCHES))
def test_whole_column_shortcuts_agree_with_the_row_path(case: str) -> None:
    rows, expected_fast = UNIFORM_BATCHES[case]
    assert _assert_same(_both(EventContract(), rows)) == expected_fast
