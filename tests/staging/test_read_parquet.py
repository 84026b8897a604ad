"""read_rows() and read_record_batches() on Parquet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_provider_aiq_braze.staging import StagingError, read_record_batches, read_rows

from ._util import one, rows_of

WHEN = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)


def _write(path: Path, rows: int = 3, row_group_size: int | None = None) -> Path:
    table = pa.table(
        {
            "external_id": [f"u{i}" for i in range(rows)],
            "score": pa.array(range(rows), pa.int64()),
            "at": pa.array([WHEN] * rows, pa.timestamp("us", tz="UTC")),
            "price": pa.array([Decimal("1.50")] * rows, pa.decimal128(5, 2)),
            "email": [None if i % 2 else "" for i in range(rows)],
        }
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("name", ["part.parquet", "part.pq"])
def test_values_keep_their_types(tmp_path: Path, name: str) -> None:
    rows = rows_of(_write(tmp_path / name))
    assert [r.row_number for r in rows] == [1, 2, 3]
    assert rows[0].data == {
        "external_id": "u0",
        "score": 0,
        "at": WHEN,
        "price": Decimal("1.50"),
        "email": "",
    }
    assert rows[1].data is not None and rows[1].data["email"] is None


def test_columns_and_required(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.parquet")
    assert [r.data for r in rows_of(path, columns=["score", "nope"])] == [
        {"score": 0},
        {"score": 1},
        {"score": 2},
    ]
    with pytest.raises(
        StagingError, match=r"missing required column\(s\): event_name.*'external_id', 'score'"
    ):
        rows_of(path, required_columns=["event_name"])


def test_row_numbers_across_row_groups(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.parquet", rows=20_000, row_group_size=3000)
    rows = read_rows(one(path))
    numbers = [r.row_number for r in rows]
    assert numbers == list(range(1, 20_001))


def test_corrupt_parquet(stage: Callable[..., Path], tmp_path: Path) -> None:
    for name, content in [("zero.parquet", b""), ("junk.parquet", b"PAR1 not really parquet")]:
        path = stage(name, content)
        with pytest.raises(StagingError, match=rf"{name} is not a readable Parquet file"):
            rows_of(path)
    good = _write(tmp_path / "cut.parquet", rows=1000).read_bytes()
    cut = stage("cut2.parquet", good[:100] + good[-200:])
    with pytest.raises(
        StagingError, match=r"cut2\.parquet (is not a readable Parquet file|: corrupt Parquet data)"
    ):
        rows_of(cut)


def test_record_batches_keep_types_and_fill_missing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.parquet", rows=5)
    batches = list(
        read_record_batches(
            one(path), columns=["score", "missing", "at"], batch_size=2, row_number_column="_row"
        )
    )
    assert [b.num_rows for b in batches] == [2, 2, 1]
    table = pa.Table.from_batches(batches)
    assert table.schema.names == ["score", "missing", "at", "_row"]
    assert table.schema.field("score").type == pa.int64()
    assert table.schema.field("missing").type == pa.string()
    assert table.column("missing").null_count == 5
    assert table.column("_row").to_pylist() == [1, 2, 3, 4, 5]
    assert table.column("at").to_pylist()[0] == WHEN
