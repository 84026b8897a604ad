"""Benchmark: how fast staged files are read, and how much memory reading takes.

Generates a CSV of ``--rows`` rows x 8 columns (about a third of the rows have an empty cell) in a
temporary directory, plain and gzip-compressed (plus JSON Lines and Parquet copies for reference),
then times :func:`read_rows` and :func:`read_record_batches` on each and prints µs per row (CPU
time of this process and wall-clock, best of ``--repeat`` passes) and the process's peak RSS so far.

Run: ``.venv/bin/python bench/staging_read.py [--rows 1000000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import json
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from airflow_provider_aiq_braze.staging import StagedFile, locate, read_record_batches, read_rows

COLUMNS = ["external_id", "email", "first_name", "last_name", "country", "plan", "score", "signup_date"]


def _rows(count: int) -> Iterator[list[str]]:
    rnd = random.Random(42)
    for i in range(count):
        yield [
            f"user-{i:08d}",
            f"user{i}@example.com",
            rnd.choice(["Ada", "Grace", "Alan", "Edsger", "Barbara"]),
            "" if i % 3 == 0 else rnd.choice(["Lovelace", "Hopper", "Turing"]),
            rnd.choice(["GB", "FR", "US", "DE"]),
            rnd.choice(["free", "gold", "platinum"]),
            str(rnd.randint(0, 1000)),
            "2024-01-02",
        ]


def generate(directory: Path, count: int) -> dict[str, Path]:
    """Write the same rows as CSV, CSV.gz, JSONL and Parquet; return the paths by label."""
    paths = {
        "csv": directory / "part-0001.csv",
        "csv.gz": directory / "part-0001.csv.gz",
        "jsonl": directory / "part-0001.jsonl",
        "parquet": directory / "part-0001.parquet",
    }
    with paths["csv"].open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        writer.writerows(_rows(count))
    with paths["csv"].open("rb") as src, gzip.open(paths["csv.gz"], "wb", compresslevel=6) as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    with paths["jsonl"].open("w", encoding="utf-8") as out:
        for row in _rows(count):
            out.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")
    writer_pq: pq.ParquetWriter | None = None
    batch: list[list[str]] = []
    for row in _rows(count):
        batch.append(row)
        if len(batch) == 100_000:
            writer_pq = _write_parquet(paths["parquet"], batch, writer_pq)
            batch = []
    if batch:
        writer_pq = _write_parquet(paths["parquet"], batch, writer_pq)
    if writer_pq is not None:
        writer_pq.close()
    return paths


def _write_parquet(path: Path, rows: list[list[str]], writer: pq.ParquetWriter | None) -> pq.ParquetWriter:
    table = pa.table({name: [r[i] or None for r in rows] for i, name in enumerate(COLUMNS)})
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _time(label: str, run: Callable[[], int], repeat: int) -> None:
    """Best of ``repeat`` passes, as wall-clock and as CPU time of this process (the CPU figure is
    the one to quote on a shared machine: other processes do not inflate it)."""
    best_wall = best_cpu = float("inf")
    count = 0
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        count = run()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    print(
        f"{label:<30} {count:>9} rows  {best_cpu / count * 1e6:6.2f} µs/row CPU  "
        f"{best_wall / count * 1e6:6.2f} µs/row wall  peak RSS {_peak_rss_mb():7.1f} MB",
        flush=True,
    )


def _count_rows(file: StagedFile) -> int:
    count = 0
    for row in read_rows(file):
        if row.error is None:
            count += 1
    return count


def _count_batches(file: StagedFile) -> int:
    return sum(batch.num_rows for batch in read_record_batches(file))


def main() -> None:
    """Parse arguments, generate the files, time each reader."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="passes per measurement; the best is shown")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiq-staging-bench-") as tmp:
        # generate in a child process so that its memory does not count in this one's peak RSS
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            paths = pool.apply(generate, (Path(tmp), args.rows))
        sizes = ", ".join(f"{label} {path.stat().st_size / 1e6:.1f} MB" for label, path in paths.items())
        print(f"{args.rows} rows x {len(COLUMNS)} columns: {sizes}")
        versions = f"python {sys.version.split()[0]}, pyarrow {pa.__version__}"
        print(f"{versions}; RSS before reading {_peak_rss_mb():.1f} MB")
        files = {label: locate(str(path))[0] for label, path in paths.items()}
        for label in ["csv", "csv.gz", "jsonl", "parquet"]:
            _time(f"read_rows {label}", partial(_count_rows, files[label]), args.repeat)
        for label in ["csv", "csv.gz", "jsonl", "parquet"]:
            _time(f"read_record_batches {label}", partial(_count_batches, files[label]), args.repeat)


if __name__ == "__main__":
    main()
