"""Reading streams: memory does not grow with the file, and nothing is read before it is needed."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.staging import read_record_batches, read_rows

from ._util import one

ROWS = 300_000


def _big_gzip_csv(path: Path) -> Path:
    with gzip.open(path, "wt", compresslevel=1, newline="") as out:
        out.write("external_id,email,first_name,score\n")
        for i in range(ROWS):
            out.write(f"user-{i:08d},user{i}@example.com,Name{i % 97},{i % 1000}\n")
    return path


def test_memory_stays_flat_while_streaming_a_large_gzip_csv(tmp_path: Path) -> None:
    path = _big_gzip_csv(tmp_path / "big.csv.gz")
    uncompressed = ROWS * 45
    file = one(path)
    for _ in read_rows(file):  # the first read imports storage plugins: not the reader's memory
        break
    tracemalloc.start()
    try:
        count = sum(1 for row in read_rows(file) if row.error is None)
        _, peak_rows = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rows_in_batches = sum(b.num_rows for b in read_record_batches(file, batch_size=8192))
        _, peak_batches = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows_in_batches == ROWS
    # The file is ~13 MB uncompressed; reading holds a few read buffers, not the file.
    assert peak_rows < 2_000_000 < uncompressed
    # Arrow buffers are not traced by tracemalloc; the Python side stays one chunk of rows.
    assert peak_batches < 4_000_000
    assert pa.total_allocated_bytes() < 10_000_000


def test_first_row_needs_only_the_start_of_the_file(tmp_path: Path) -> None:
    path = _big_gzip_csv(tmp_path / "big.csv.gz")
    file = one(path)
    # count the compressed bytes pulled from storage before the first row comes out
    opened = []
    original_open = type(file.path).open

    def counting_open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        handle = original_open(self, *args, **kwargs)
        opened.append(handle)
        return handle

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(file.path), "open", counting_open)
        rows = read_rows(file)
        first = next(rows)
        position = opened[0].tell()
        del rows
    assert first.data == {
        "external_id": "user-00000000",
        "email": "user0@example.com",
        "first_name": "Name0",
        "score": "0",
    }
    assert position <= 4 * 65536 < path.stat().st_size
