"""A corpus of malformed input, across the three operators: a clear error or reasoned rejects, never worse.

Every case ends in one of:

- ``error``: the task fails with an ``AirflowException`` (or ``AirflowFailException``) whose message
  names the file (or the pattern) and says what is wrong — never a bare ``KeyError``/``TypeError``/…;
- ``rejects``: the run completes, the bad rows are in the rejects file with file, row and reason,
  the good ones reached Braze;
- ``ok``: odd but valid input (a byte order mark, CRLF, blank lines) is read correctly.

And always: the invariant holds and every row not sent is in the rejects file or in
``skipped_reasons`` (no silent drop); no case hangs (``pytest-timeout``).
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.arguments import ArgumentError
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from tests.operators.conftest import read_jsonl
from tests.reliability._support import context

EV = "event_name,external_id,timestamp,plan\n"
GOOD = "viewed,u1,2026-11-28T10:00:00Z,gold\n"
GOOD2 = "viewed,u2,2026-11-28T10:00:00Z,silver\n"
AUD = "audience_id,split_id,external_id\n"
REC = "external_id,offer\n"
T = "2026-11-28T10:00:00Z"

Content = bytes | Callable[[Path], None]


@dataclass
class Case:
    """One malformed input and what must come of it.

    :param kind: ``events``, ``campaigns`` or ``audience``.
    :param files: file name (under the input folder) → bytes, or a function writing the file.
    :param expect: ``error``, ``rejects``, ``ok`` or ``completes`` (rejects or sends, whichever, cleanly).
    :param match: for ``error``, text the message must contain; for ``rejects``, text of each reason.
    :param rows: for ``rejects``, the row numbers rejected.
    :param sent: rows that must reach Braze (``None``: not checked).
    :param source: the operator's ``source``, relative to the input folder (default: the first file).
    :param kwargs: more operator arguments.
    :param names_file: whether an error message must name the file (not for bad operator arguments).
    """

    kind: str
    files: dict[str, Content]
    expect: str
    match: tuple[str, ...] = ()
    rows: tuple[int, ...] | None = None
    sent: int | None = None
    source: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    names_file: bool = True


def csv_bytes(*lines: str) -> bytes:
    """Text lines as UTF-8 bytes."""
    return "".join(lines).encode()


def jsonl(*objects: Any) -> bytes:
    """JSON Lines (NaN and Infinity written as JavaScript does, as producers do)."""
    return "".join(json.dumps(o) + "\n" for o in objects).encode()


def parquet(table: dict[str, Any] | pa.Table) -> Callable[[Path], None]:
    """A function writing a Parquet file."""

    def write(path: Path) -> None:
        pq.write_table(table if isinstance(table, pa.Table) else pa.table(table), path)

    return write


def parquet_bytes(table: dict[str, Any]) -> bytes:
    """A Parquet file's bytes."""
    buffer = io.BytesIO()
    pq.write_table(pa.table(table), buffer)
    return buffer.getvalue()


def event(**fields: Any) -> dict[str, Any]:
    """A JSON event row, good unless fields say otherwise."""
    return {"event_name": "viewed", "external_id": "u1", "timestamp": T, **fields}


PARQUET_OK = parquet_bytes(
    {"event_name": ["viewed"] * 3, "external_id": ["u1", "u2", "u3"], "timestamp": [T] * 3}
)

CASES: dict[str, Case] = {
    # -- events, CSV: encodings and line endings that are fine -------------------------------
    "csv-bom": Case("events", {"e.csv": b"\xef\xbb\xbf" + csv_bytes(EV, GOOD, GOOD2)}, "ok", sent=2),
    "csv-crlf": Case("events", {"e.csv": csv_bytes(EV, GOOD, GOOD2).replace(b"\n", b"\r\n")}, "ok", sent=2),
    "csv-cr-only": Case("events", {"e.csv": csv_bytes(EV, GOOD, GOOD2).replace(b"\n", b"\r")}, "ok", sent=2),
    "csv-blank-lines": Case("events", {"e.csv": csv_bytes(EV, "\n", GOOD, "\n\n", GOOD2)}, "ok", sent=2),
    "csv-header-only": Case("events", {"e.csv": csv_bytes(EV)}, "ok", sent=0),
    "csv-quoted-newline": Case(
        "events", {"e.csv": csv_bytes(EV, f'viewed,u1,{T},"two\nlines"\n', GOOD2)}, "ok", sent=2
    ),
    # -- events, CSV: rows that are rejected --------------------------------------------------
    "csv-broken-quoting": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, f'viewed,u2,"{T}"x,gold\n', GOOD2)},
        "rejects",
        ("quoting",),
        (2,),
    ),
    "csv-ragged-row": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, f"viewed,u2,{T},gold,extra\n")},
        "rejects",
        ("expected 4 fields",),
        (2,),
    ),
    "csv-short-row": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, "viewed,u2\n")}, "rejects", ("expected 4 fields",), (2,)
    ),
    "csv-invalid-utf8-row": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD) + b"viewed,u2," + T.encode() + b",caf\xe9\n"},
        "rejects",
        ("UTF-8",),
        (2,),
    ),
    "csv-nul-byte": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, f"viewed,u\x002,{T},x\n")}, "rejects", ("NUL",), (2,)
    ),
    "csv-empty-event-name": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, f",u2,{T},x\n")}, "rejects", ("is empty",), (2,)
    ),
    "csv-no-identifier": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, f"viewed,,{T},x\n")}, "rejects", ("no identifier",), (2,)
    ),
    "csv-long-event-name": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, f"{'n' * 300},u2,{T},x\n")},
        "rejects",
        ("300 characters",),
        (2,),
    ),
    "csv-dollar-event-name": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, f"$viewed,u2,{T},x\n")}, "rejects", ("'$'",), (2,)
    ),
    "csv-long-property-value": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, f"viewed,u2,{T},{'v' * 300}\n")},
        "rejects",
        ("300 characters",),
        (2,),
    ),
    "csv-huge-field-quoted": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, f'viewed,u2,{T},"{"h" * 1_100_000}"\n', GOOD2)},
        "error",
        ("1048576",),
    ),
    "csv-timestamp-garbage": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,yesterday,x\n")},
        "rejects",
        ("not ISO 8601",),
        (2,),
    ),
    "csv-timestamp-1900": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,1900-01-01T00:00:00Z,x\n")},
        "rejects",
        ("out of range",),
        (2,),
    ),
    "csv-timestamp-2100": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,2100-01-01,x\n")},
        "rejects",
        ("out of range",),
        (2,),
    ),
    "csv-timestamp-year-0": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,0000-01-01,x\n")}, "rejects", ("timestamp",), (2,)
    ),
    "csv-timestamp-negative-epoch": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,-1,x\n")}, "rejects", ("out of range",), (2,)
    ),
    "csv-timestamp-huge-epoch": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,99999999999999999999999999,x\n")},
        "rejects",
        ("timestamp",),
        (2,),
    ),
    "csv-timestamp-nan": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,NaN,x\n")}, "rejects", ("timestamp",), (2,)
    ),
    "csv-timestamp-infinity": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, "viewed,u2,Infinity,x\n")}, "rejects", ("timestamp",), (2,)
    ),
    "csv-long-property-name": Case(
        "events",
        {"e.csv": csv_bytes(f"event_name,external_id,timestamp,{'p' * 300}\n", GOOD)},
        "rejects",
        ("255",),
        (1,),
    ),
    "csv-reserved-property-name": Case(
        "events",
        {"e.csv": csv_bytes("event_name,external_id,timestamp,time\n", GOOD)},
        "rejects",
        ("time",),
        (1,),
    ),
    "csv-properties-invalid-json": Case(
        "events",
        {
            "e.csv": csv_bytes(
                "event_name,external_id,timestamp,properties\n", f'viewed,u1,{T},"{{""a"": 1"\n'
            )
        },
        "rejects",
        ("not valid JSON",),
        (1,),
    ),
    "csv-properties-not-object": Case(
        "events",
        {"e.csv": csv_bytes("event_name,external_id,timestamp,properties\n", f'viewed,u1,{T},"[1, 2]"\n')},
        "rejects",
        ("JSON object",),
        (1,),
    ),
    "csv-properties-nan": Case(
        "events",
        {
            "e.csv": csv_bytes(
                "event_name,external_id,timestamp,properties\n", f'viewed,u1,{T},"{{""x"": NaN}}"\n'
            )
        },
        "rejects",
        ("nan",),
        (1,),
    ),
    "csv-properties-infinity": Case(
        "events",
        {
            "e.csv": csv_bytes(
                "event_name,external_id,timestamp,properties\n", f'viewed,u1,{T},"{{""x"": -Infinity}}"\n'
            )
        },
        "rejects",
        ("inf",),
        (1,),
    ),
    "csv-properties-nested-nan": Case(
        "events",
        {
            "e.csv": csv_bytes(
                "event_name,external_id,timestamp,properties\n",
                GOOD.replace(",gold", ',"{""a"": {""b"": [1, NaN]}}"'),
            )
        },
        "rejects",
        ("nan",),
        (1,),
    ),
    # -- events, CSV: files that stop the task ------------------------------------------------
    "csv-empty-file": Case("events", {"e.csv": b""}, "error", ("is empty",)),
    "csv-leading-blank-line": Case(
        "events", {"e.csv": csv_bytes("\n", EV, GOOD)}, "error", ("line 1 is blank",)
    ),
    "csv-unterminated-quote": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD, f'viewed,u2,{T},"open\n', GOOD2)}, "error", ("unterminated",)
    ),
    "csv-header-latin1": Case(
        "events",
        {"e.csv": "event_name,external_id,timestamp,caf\xe9\n".encode("latin-1") + GOOD.encode()},
        "error",
        ("UTF-8",),
    ),
    "csv-missing-column": Case(
        "events",
        {"e.csv": csv_bytes("event_name,external_id\n", "viewed,u1\n")},
        "error",
        ("missing required column", "timestamp"),
    ),
    "csv-no-identifier-column": Case(
        "events", {"e.csv": csv_bytes("event_name,timestamp\n", f"viewed,{T}\n")}, "error", ("external_id",)
    ),
    "csv-duplicated-column": Case(
        "events",
        {"e.csv": csv_bytes("event_name,external_id,timestamp,plan,plan\n", f"viewed,u1,{T},a,b\n")},
        "error",
        ("duplicated column",),
    ),
    "csv-unnamed-column": Case(
        "events",
        {"e.csv": csv_bytes("event_name,external_id,timestamp,\n", f"viewed,u1,{T},x\n")},
        "error",
        ("no name",),
    ),
    "csv-header-broken-quote": Case(
        "events", {"e.csv": csv_bytes('event_name,"external_id,timestamp\n', GOOD)}, "error", ("e.csv",)
    ),
    # -- events, JSON Lines -----------------------------------------------------------------
    "jsonl-bom": Case(
        "events", {"e.jsonl": b"\xef\xbb\xbf" + jsonl(event(), event(external_id="u2"))}, "ok", sent=2
    ),
    "jsonl-crlf": Case(
        "events", {"e.jsonl": jsonl(event(), event(external_id="u2")).replace(b"\n", b"\r\n")}, "ok", sent=2
    ),
    "jsonl-empty-file": Case("events", {"e.jsonl": b""}, "ok", sent=0),
    "jsonl-invalid-json": Case(
        "events",
        {"e.jsonl": jsonl(event()) + b'{"event_name": "viewed",\n'},
        "rejects",
        ("invalid JSON",),
        (2,),
    ),
    "jsonl-array-line": Case(
        "events", {"e.jsonl": jsonl(event(), [1, 2])}, "rejects", ("expected a JSON object",), (2,)
    ),
    "jsonl-invalid-utf8": Case(
        "events", {"e.jsonl": jsonl(event()) + b'{"event_name": "caf\xe9"}\n'}, "rejects", ("UTF-8",), (2,)
    ),
    "jsonl-missing-field": Case(
        "events",
        {"e.jsonl": jsonl(event(), {"event_name": "viewed", "external_id": "u2"})},
        "rejects",
        ("timestamp",),
        (2,),
    ),
    "jsonl-line-over-1mib": Case(
        "events",
        {"e.jsonl": jsonl(event(), event(plan="x" * 1_100_000), event(external_id="u3"))},
        "rejects",
        ("longer than",),
        (2,),
    ),
    "jsonl-nan-property": Case(
        "events", {"e.jsonl": jsonl(event(), event(properties={"x": math.nan}))}, "rejects", ("nan",), (2,)
    ),
    "jsonl-infinity-in-list": Case(
        "events",
        {"e.jsonl": jsonl(event(), event(properties={"x": [1, math.inf]}))},
        "rejects",
        ("inf",),
        (2,),
    ),
    "jsonl-nan-timestamp": Case(
        "events", {"e.jsonl": jsonl(event(), event(timestamp=math.nan))}, "rejects", ("timestamp",), (2,)
    ),
    "jsonl-huge-int-timestamp": Case(
        "events", {"e.jsonl": jsonl(event(), event(timestamp=10**30))}, "rejects", ("timestamp",), (2,)
    ),
    "jsonl-bool-timestamp": Case(
        "events", {"e.jsonl": jsonl(event(), event(timestamp=True))}, "rejects", ("timestamp",), (2,)
    ),
    "jsonl-object-event-name": Case(
        "events", {"e.jsonl": jsonl(event(), event(event_name={"a": 1}))}, "rejects", ("not text",), (2,)
    ),
    "jsonl-number-external-id": Case(
        "events", {"e.jsonl": jsonl(event(external_id=12345), event(external_id=1.5))}, "completes"
    ),
    "jsonl-list-external-id": Case(
        "events", {"e.jsonl": jsonl(event(), event(external_id=["u1", "u2"]))}, "rejects", ("not text",), (2,)
    ),
    "jsonl-properties-string": Case(
        "events",
        {"e.jsonl": jsonl(event(), event(properties="not json"))},
        "rejects",
        ("not valid JSON",),
        (2,),
    ),
    "jsonl-deep-nesting": Case(
        "events",
        {
            "e.jsonl": jsonl(event())
            + b'{"event_name": "viewed", "external_id": "u2", "timestamp": "'
            + T.encode()
            + b'", "properties": '
            + b"[" * 100_000
            + b"]" * 100_000
            + b"}\n"
        },
        "completes",
    ),
    "jsonl-nesting-400": Case(
        "events",
        {
            "e.jsonl": jsonl(event())
            + jsonl(event(properties="@"))[:-1].replace(b'"@"', b'{"a": ' + b"[" * 400 + b"]" * 400 + b"}")
        },
        "ok",
        sent=2,
    ),
    "csv-properties-deep-nesting": Case(
        "events",
        {
            "e.csv": csv_bytes(
                "event_name,external_id,timestamp,properties\n",
                f'viewed,u1,{T},"{{""a"": {"[" * 100_000}{"]" * 100_000}}}"\n',
            )
        },
        "rejects",
        ("nested too deeply",),
        (1,),
    ),
    # -- events, Parquet --------------------------------------------------------------------
    "parquet-corrupt": Case(
        "events", {"e.parquet": b"PAR1 this is not parquet at all PAR1"}, "error", ("not a readable Parquet",)
    ),
    "parquet-truncated": Case(
        "events", {"e.parquet": PARQUET_OK[: len(PARQUET_OK) // 2]}, "error", ("Parquet",)
    ),
    "parquet-zero-bytes": Case("events", {"e.parquet": b""}, "error", ("Parquet",)),
    "parquet-missing-column": Case(
        "events",
        {"e.parquet": parquet({"event_name": ["viewed"], "external_id": ["u1"]})},
        "error",
        ("timestamp",),
    ),
    "parquet-nan-property": Case(
        "events",
        {
            "e.parquet": parquet(
                {
                    "event_name": ["viewed"] * 2,
                    "external_id": ["u1", "u2"],
                    "timestamp": [T] * 2,
                    "score": [1.5, math.nan],
                }
            )
        },
        "rejects",
        ("nan",),
        (2,),
    ),
    "parquet-decimal-nan": Case(
        "events",
        {
            "e.parquet": parquet(
                pa.table(
                    {
                        "event_name": ["viewed"] * 2,
                        "external_id": ["u1", "u2"],
                        "timestamp": [T] * 2,
                        "price": pa.array([Decimal("1.5"), Decimal("2.5")], pa.decimal128(5, 2)),
                    }
                )
            )
        },
        "ok",
        sent=2,
    ),
    "parquet-timestamp-1800": Case(
        "events",
        {
            "e.parquet": parquet(
                {
                    "event_name": ["viewed"] * 2,
                    "external_id": ["u1", "u2"],
                    "timestamp": [datetime(2026, 11, 28), datetime(1800, 1, 1)],
                }
            )
        },
        "rejects",
        ("out of range",),
        (2,),
    ),
    "parquet-int-timestamp-overflow": Case(
        "events",
        {
            "e.parquet": parquet(
                {
                    "event_name": ["viewed"] * 2,
                    "external_id": ["u1", "u2"],
                    "timestamp": pa.array([1793527200, 2**62], pa.int64()),
                }
            )
        },
        "rejects",
        ("timestamp",),
        (2,),
    ),
    "parquet-odd-types": Case(
        "events",
        {
            "e.parquet": parquet(
                {
                    "event_name": ["viewed"] * 2,
                    "external_id": ["u1", "u2"],
                    "timestamp": [date(2026, 11, 28)] * 2,
                    "blob": [b"\x00\xff", b"ok"],
                    "tags": [["a"], []],
                    "meta": [{"k": 1}, {"k": 2}],
                }
            )
        },
        "completes",
    ),
    "parquet-struct-event-name": Case(
        "events",
        {
            "e.parquet": parquet(
                {"event_name": [{"a": 1}, {"a": 2}], "external_id": ["u1", "u2"], "timestamp": [T] * 2}
            )
        },
        "rejects",
        ("not text",),
        (1, 2),
    ),
    "parquet-null-everything": Case(
        "events",
        {
            "e.parquet": parquet(
                pa.table(
                    {
                        "event_name": pa.nulls(2, pa.string()),
                        "external_id": pa.nulls(2, pa.string()),
                        "timestamp": pa.nulls(2, pa.string()),
                    }
                )
            )
        },
        "rejects",
        ("",),
        (1, 2),
    ),
    # -- events: compression, names, locations -----------------------------------------------
    "gzip-corrupt": Case(
        "events", {"e.csv.gz": gzip.compress(csv_bytes(EV, GOOD))[:-12] + b"garbage!!!!!"}, "error", ("gzip",)
    ),
    "gzip-truncated": Case(
        "events",
        {"e.csv.gz": gzip.compress(csv_bytes(EV, *[f"viewed,u{i},{T},p{i}\n" for i in range(5000)]))[:3000]},
        "error",
        ("gzip",),
    ),
    "csv-identical-rows": Case("events", {"e.csv": csv_bytes(EV, *([GOOD] * 300))}, "ok", sent=300),
    "gzip-not-gzip": Case("events", {"e.csv.gz": csv_bytes(EV, GOOD)}, "error", ("gzip",)),
    "gzip-under-csv-name": Case("events", {"e.csv": gzip.compress(csv_bytes(EV, GOOD))}, "error", ("gzip",)),
    "compression-zip": Case("events", {"e.csv.zip": b"PK\x03\x04junk"}, "error", ("not supported",)),
    "compression-bz2": Case("events", {"e.csv.bz2": b"BZh91AY&SYjunk"}, "error", ("not supported",)),
    "compression-zst": Case("events", {"e.jsonl.zst": b"\x28\xb5\x2f\xfdjunk"}, "error", ("not supported",)),
    "compression-parquet-gz": Case(
        "events", {"e.parquet.gz": gzip.compress(PARQUET_OK)}, "error", ("Parquet",)
    ),
    "unknown-extension": Case(
        "events", {"e.txt": csv_bytes(EV, GOOD)}, "error", ("cannot tell the file format",)
    ),
    "glob-matches-nothing": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD)}, "error", ("matches no file",), source="part-*.csv"
    ),
    "directory-only-markers": Case(
        "events",
        {"out/_SUCCESS": b"", "out/.hidden.csv": csv_bytes(EV, GOOD)},
        "error",
        ("no data file",),
        source="out",
    ),
    "path-through-a-file": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD)}, "error", ("e.csv",), source="e.csv/part-0.csv"
    ),
    "missing-file": Case(
        "events", {"e.csv": csv_bytes(EV, GOOD)}, "error", ("does not exist",), source="nope.csv"
    ),
    "bad-format-argument": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD)},
        "error",
        ("format",),
        kwargs={"format": "xml"},
        names_file=False,
    ),
    "bad-compression-argument": Case(
        "events",
        {"e.csv": csv_bytes(EV, GOOD)},
        "error",
        ("compression",),
        kwargs={"compression": "lz4"},
        names_file=False,
    ),
    # -- campaigns -----------------------------------------------------------------------------
    "campaign-bom-crlf": Case(
        "campaigns",
        {"r.csv": (b"\xef\xbb\xbf" + csv_bytes(REC, "u1,a\n", "u2,b\n")).replace(b"\n", b"\r\n")},
        "ok",
        sent=2,
    ),
    "campaign-no-identifier-column": Case(
        "campaigns", {"r.csv": csv_bytes("user,offer\n", "u1,a\n")}, "error", ("external_id",)
    ),
    "campaign-duplicated-column": Case(
        "campaigns",
        {"r.csv": csv_bytes("external_id,external_id\n", "u1,u1\n")},
        "error",
        ("duplicated column",),
    ),
    "campaign-trigger-properties-invalid-json": Case(
        "campaigns",
        {"r.csv": csv_bytes("external_id,trigger_properties\n", "u1,\n", 'u2,"{""a"":"\n')},
        "rejects",
        ("not valid JSON",),
        (2,),
    ),
    "campaign-trigger-properties-nan": Case(
        "campaigns",
        {"r.csv": csv_bytes("external_id,trigger_properties\n", "u1,\n", 'u2,"{""a"": NaN}"\n')},
        "rejects",
        ("nan",),
        (2,),
    ),
    "campaign-no-campaign": Case(
        "campaigns",
        {"r.csv": csv_bytes("external_id,campaign_id\n", "u1,camp-1\n", "u2,\n")},
        "rejects",
        ("no campaign",),
        (2,),
        kwargs={"campaign_id": None},
    ),
    "campaign-long-property-name": Case(
        "campaigns", {"r.csv": csv_bytes(f"external_id,{'p' * 300}\n", "u1,a\n")}, "rejects", ("255",), (1,)
    ),
    "campaign-jsonl-wrong-types": Case(
        "campaigns",
        {
            "r.jsonl": jsonl(
                {"external_id": "u1"}, {"external_id": 7}, {"external_id": None}, {"external_id": {"x": 1}}
            )
        },
        "rejects",
        ("no identifier", "not text"),
        (3, 4),
    ),
    "campaign-parquet-corrupt": Case("campaigns", {"r.parquet": b"\x00" * 64}, "error", ("Parquet",)),
    "campaign-operator-trigger-properties-not-json": Case(
        "campaigns",
        {"r.csv": csv_bytes(REC, "u1,a\n")},
        "error",
        ("trigger_properties", "not valid JSON"),
        kwargs={"trigger_properties": "{not json"},
        names_file=False,
    ),
    "campaign-operator-trigger-properties-list": Case(
        "campaigns",
        {"r.csv": csv_bytes(REC, "u1,a\n")},
        "error",
        ("trigger_properties", "JSON object"),
        kwargs={"trigger_properties": "[1, 2]"},
        names_file=False,
    ),
    # -- audience ------------------------------------------------------------------------------
    "audience-header-only": Case("audience", {"m.csv": csv_bytes(AUD)}, "ok", sent=0),
    "audience-missing-split-column": Case(
        "audience", {"m.csv": csv_bytes("audience_id,external_id\n", "12,u1\n")}, "error", ("split_id",)
    ),
    "audience-empty-file": Case("audience", {"m.csv": b""}, "error", ("is empty",)),
    "audience-empty-identifier": Case(
        "audience", {"m.csv": csv_bytes(AUD, "12,1,u1\n", "12,1,\n")}, "rejects", ("identifier",), (2,)
    ),
    "audience-broken-quoting": Case(
        "audience", {"m.csv": csv_bytes(AUD, "12,1,u1\n", '12,1,"u2"x\n')}, "rejects", ("quoting",), (2,)
    ),
    "audience-invalid-utf8": Case(
        "audience", {"m.csv": csv_bytes(AUD, "12,1,u1\n") + b"12,1,caf\xe9\n"}, "rejects", ("UTF-8",), (2,)
    ),
    "audience-ragged-row": Case(
        "audience",
        {"m.csv": csv_bytes(AUD, "12,1,u1\n", "12,1,u2,extra\n")},
        "rejects",
        ("expected 3 fields",),
        (2,),
    ),
    # a braze_id is any text (Braze documents no format; 'zzz' used to be a reject)
    "audience-braze-id-not-hex": Case(
        "audience",
        {
            "m.csv": csv_bytes(
                "audience_id,split_id,braze_id\n", "12,1,0123456789abcdef01234567\n", "12,1,zzz\n"
            )
        },
        "ok",
        sent=2,
    ),
    "audience-duplicate-rows": Case(
        "audience", {"m.csv": csv_bytes(AUD, "12,1,u1\n", "12,1,u1\n")}, "completes"
    ),
    "audience-over-long-attribute-name": Case(
        "audience", {"m.csv": csv_bytes(AUD, f"{'9' * 300},1,u1\n")}, "completes"
    ),
    "audience-dollar-audience-id": Case(
        "audience", {"m.csv": csv_bytes(AUD, "$12,1,u1\n", "12,1,u2\n")}, "completes"
    ),
    "audience-changes-bad-member": Case(
        "audience",
        {
            "m.csv": csv_bytes(
                "audience_id,split_id,external_id,member\n", "12,1,u1,true\n", "12,1,u2,maybe\n"
            )
        },
        "rejects",
        ("member",),
        (2,),
        kwargs={"input_kind": "changes"},
    ),
    "audience-jsonl-wrong-types": Case(
        "audience",
        {
            "m.jsonl": jsonl(
                {"audience_id": 12, "split_id": 1, "external_id": "u1"},
                {"audience_id": "12", "split_id": "1", "external_id": ["u2"]},
                {"audience_id": None, "split_id": "1", "external_id": "u3"},
            )
        },
        "completes",
    ),
    "audience-parquet-corrupt": Case("audience", {"m.parquet": b"PAR1\x00\x00PAR1"}, "error", ("Parquet",)),
    "audience-gzip-truncated": Case(
        "audience",
        {"m.csv.gz": gzip.compress(csv_bytes(AUD, *[f"12,1,u{i}\n" for i in range(20000)]))[:2000]},
        "error",
        ("gzip",),
    ),
    # snapshot keys are ordered time stamps: anything else is refused before anything is sent
    "audience-bad-snapshot-key": Case(
        "audience",
        {"m.csv": csv_bytes(AUD, "12,1,u1\n")},
        "error",
        ("snapshot key 'not a date' (from the snapshot_key argument) is not a date or date-time",),
        kwargs={"snapshot_key": "not a date"},
        names_file=False,
    ),
}


def make_operator(case: Case, source: str, state: Path) -> Any:
    """The case's operator over ``source``."""
    common: dict[str, Any] = {
        "source": source,
        "state_path": str(state),
        "max_reject_ratio": 1.0,
        **case.kwargs,
    }
    if case.kind == "events":
        return BrazeEventExportOperator(task_id="events", **common)
    if case.kind == "campaigns":
        common.setdefault("campaign_id", "camp-1")
        return BrazeCampaignTriggerOperator(task_id="campaign", **common)
    common.setdefault("snapshot_key", "2026-11-28")
    return BrazeAudienceMembershipOperator(task_id="audience", update_existing_only=False, **common)


def braze_received(sandbox: BrazeSandbox, kind: str) -> int:
    """Objects of the operator's kind Braze took in."""
    if kind == "events":
        return sandbox.state.counter("events_recorded")
    if kind == "campaigns":
        return sum(len(d["messages"]) + len(d.get("skipped", [])) for d in sandbox.state.dispatches())
    return sandbox.state.data_points


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, sandbox: BrazeSandbox, tmp_path: Path) -> None:
    case = CASES[name]
    folder = tmp_path / "in"
    for relative, content in case.files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            content(path)
    source = str(folder / (case.source or next(iter(case.files))))
    try:
        # a literal argument is refused where it is given, by the constructor (issue 15)
        op = make_operator(case, source, tmp_path / "state")
        result = op.execute(context(op.task_id))
    except (AirflowException, ArgumentError) as exc:
        message = str(exc)
        assert case.expect == "error", f"unexpected failure: {type(exc).__name__}: {message}"
        named = Path(case.source or next(iter(case.files))).name
        if case.names_file:
            assert named in message, f"the message does not name the file {named!r}: {message}"
        for text in case.match:
            assert text.lower() in message.lower(), f"{text!r} not in: {message}"
        assert len(message) < 2000 and "Traceback" not in message
        return
    except Exception as exc:  # the point: nothing else may escape
        pytest.fail(f"a bare {type(exc).__name__} escaped instead of a clear error: {exc!r}")
    assert case.expect != "error", f"expected an error, got {result}"
    assert result["failed"] == 0 and result["uncertain"] == 0
    assert result["rows_read"] == result["sent"] + result["rejected"] + result["skipped"]
    assert sum(result["skipped_reasons"].values()) == result["skipped"]
    rejects_file = Path(result["rejects_path"].removeprefix("file://"))
    rejects = read_jsonl(str(rejects_file)) if rejects_file.exists() else []
    assert len(rejects) == result["rejected"], "a rejected row is missing from the rejects file"
    for reject in rejects:
        assert reject["file"].startswith("file://") and reject["file"].endswith(Path(source).name), reject
        assert isinstance(reject["row"], int) and reject["row"] >= 0, reject
        assert isinstance(reject["reason"], str) and len(reject["reason"]) > 5, reject
    if case.expect == "ok":
        assert result["rejected"] == 0, rejects
    if case.expect == "rejects":
        assert case.rows is not None
        assert sorted(r["row"] for r in rejects) == list(case.rows), rejects
        for reject in rejects:
            assert any(t.lower() in reject["reason"].lower() for t in case.match), reject
    if case.sent is not None:
        assert result["sent"] == case.sent, result
    if case.kind == "events":
        assert braze_received(sandbox, "events") == result["sent"]
