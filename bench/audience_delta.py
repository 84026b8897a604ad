"""Benchmark: audience membership delta for a large snapshot with 1 % churn (compute only).

Generates, with DuckDB in a child process (so its memory does not count), a previous snapshot of
``--members`` profiles and a new one where 1 % left and 1 % joined, seeds the state store with
the previous one, then times ``compute_delta`` + iterating every update + committing the state,
and prints seconds, rows/s, peak RSS and the data points spent versus a full re-sync.

Run it as::

    .venv/bin/python bench/audience_delta.py --members 10000000
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from airflow_provider_aiq_braze.audiences import DeltaInput, SnapshotStore, compute_delta

AUDIENCE, SPLIT = "48213", "A"
PREVIOUS_KEY, NEW_KEY = "2026-11-02T00:00:00+00:00", "2026-11-03T00:00:00+00:00"


def generate(directory: str, members: int, churn: float) -> None:
    """Write ``previous.parquet``, ``new.parquet`` (and ``new.csv``) and the previous state file.

    Profiles are ``ext-<10 digits>``; the new snapshot drops the first ``churn`` share of the
    previous one and adds as many new profiles after its end.

    :param directory: where to write the files.
    :param members: profiles in each snapshot.
    :param churn: share of profiles leaving (and as many joining).
    """
    moved = int(members * churn)
    con = duckdb.connect(config={"threads": 2, "preserve_insertion_order": True})

    def ids(start: int, stop: int) -> str:
        return (
            f"SELECT '{AUDIENCE}' AS audience_id, '{SPLIT}' AS split_id, "
            f"'ext-' || lpad(i::VARCHAR, 10, '0') AS external_id FROM range({start}, {stop}) t(i)"
        )

    con.execute(f"COPY ({ids(0, members)}) TO '{directory}/previous.parquet' (FORMAT parquet)")
    con.execute(f"COPY ({ids(moved, members + moved)}) TO '{directory}/new.parquet' (FORMAT parquet)")
    con.execute(f"COPY ({ids(moved, members + moved)}) TO '{directory}/new.csv' (HEADER)")
    con.execute(
        f"COPY (SELECT 'external_id' AS identifier_kind, external_id AS identifier "
        f"FROM '{directory}/previous.parquet') TO '{directory}/state.parquet' (FORMAT parquet)"
    )
    con.close()


def with_source(batches: Iterator[pa.RecordBatch], file: str) -> Iterator[pa.RecordBatch]:
    """Add the ``_file``/``_row`` columns a staging reader provides (row numbers from 1).

    :param batches: the file's batches.
    :param file: the file name.
    """
    offset = 1
    base = pa.array(range(1_000_000), pa.int64())
    for batch in batches:
        n = batch.num_rows
        if n > len(base):
            base = pa.array(range(n), pa.int64())
        name = pa.DictionaryArray.from_arrays(pa.nulls(n, pa.int32()).fill_null(0), pa.array([file]))
        rows = pc.add(base.slice(0, n), offset)
        offset += n
        yield pa.RecordBatch.from_arrays(
            [name.cast(pa.string()), rows, *batch.columns], names=["_file", "_row", *batch.schema.names]
        )


def read_batches(path: str, file_format: str) -> Iterator[pa.RecordBatch]:
    """Stream a snapshot file as string batches.

    :param path: the file.
    :param file_format: ``parquet`` or ``csv``.
    """
    if file_format == "parquet":
        yield from pq.ParquetFile(path).iter_batches(batch_size=131_072)
        return
    names = ["audience_id", "split_id", "external_id"]
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=8 << 20),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string())),
    )
    yield from reader


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000_000, help="profiles per snapshot")
    parser.add_argument("--churn", type=float, default=0.01, help="share leaving (and joining)")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="input file format")
    parser.add_argument("--memory-limit", default="300MB", help="DuckDB memory limit")
    parser.add_argument("--verbose", action="store_true", help="log the duration of each step")
    parser.add_argument("--dir", help="work in this directory instead of a temporary one")
    parser.add_argument("--generate-only", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.verbose:
        logger = logging.getLogger("airflow_provider_aiq_braze.audiences")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(logging.StreamHandler(sys.stdout))
        logger.propagate = False
    if args.generate_only:
        generate(args.generate_only, args.members, args.churn)
        return

    directory = args.dir or tempfile.mkdtemp(prefix="aiq-audience-bench-")
    os.makedirs(directory, exist_ok=True)
    started = time.perf_counter()
    generate_args = ["--generate-only", directory, "--members", str(args.members), "--churn", str(args.churn)]
    subprocess.run([sys.executable, __file__, *generate_args], check=True)
    print(f"generated {args.members:,} + {args.members:,} members in {time.perf_counter() - started:.1f} s")

    shutil.rmtree(os.path.join(directory, "state"), ignore_errors=True)
    store = SnapshotStore(os.path.join(directory, "state"), "bench")
    store.commit(
        AUDIENCE,
        SPLIT,
        os.path.join(directory, "state.parquet"),
        snapshot_key=PREVIOUS_KEY,
        attribute=f"AIQ_{AUDIENCE}_{SPLIT}",
        members=args.members,
        base=None,  # a fresh state folder
    )
    source = os.path.join(directory, f"new.{args.format}")
    rss_before = peak_rss_mb()

    t0 = time.perf_counter()
    inp = DeltaInput(batches=with_source(read_batches(source, args.format), os.path.basename(source)))
    plan = compute_delta(
        inp, store, work_dir=directory, snapshot_key=NEW_KEY, memory_limit=args.memory_limit, threads=2
    )
    t1 = time.perf_counter()
    users = writes = 0
    for update in plan.iter_updates():
        users += 1
        writes += len(update.attributes)
    t2 = time.perf_counter()
    committed = plan.commit(store)
    plan.close()
    t3 = time.perf_counter()

    if not args.dir:
        shutil.rmtree(directory, ignore_errors=True)
    counts = plan.counts
    total = t3 - t0
    print(f"input            : {source} ({args.format}, {counts.rows_read:,} rows)")
    print(f"compute_delta    : {t1 - t0:6.2f} s")
    print(f"iterate updates  : {t2 - t1:6.2f} s  ({users:,} profiles, {writes:,} writes)")
    print(f"commit state     : {t3 - t2:6.2f} s  ({committed})")
    print(f"total            : {total:6.2f} s  ({counts.rows_read / total:,.0f} rows/s)")
    print(f"peak RSS         : {peak_rss_mb():,.0f} MiB (before the delta: {rss_before:,.0f} MiB)")
    print(f"entered / exited : {counts.entered:,} / {counts.exited:,}; unchanged {counts.unchanged:,}")
    print(
        f"data points      : {counts.data_points:,} vs {counts.full_resync_data_points:,} for a full re-sync "
        f"({100 * counts.data_points / max(counts.full_resync_data_points, 1):.1f} %)"
    )


if __name__ == "__main__":
    main()
