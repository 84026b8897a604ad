"""Event export benchmarks (issue: 25,000 events/s at 50 ms; ≤ 10 µs/row overhead; ≤ 300 MB RSS).

    python bench/events_export.py throughput --rows 1000000 --latency-ms 50
    python bench/events_export.py overhead --rows 1000000 [--input csv|csv-quoted|jsonl|parquet]
        [--operator events|campaigns]
    python bench/events_export.py memory --rows 5000000

``throughput`` sends to the sandbox (in its own process, Braze's default rate limit of 3,000
requests per 3 s) through the operator. ``overhead`` runs read + validate + serialize + batch with
a sender that answers at once (no network), on the same rows as CSV (default), CSV with every
field quoted, JSON Lines or Parquet, and prints the wall time and the process's CPU time per row
(the CPU time is less disturbed by other work on a shared machine). ``--operator campaigns`` runs
the recipients of a staged segment instead (one row per recipient: ``external_id`` and two trigger
properties). ``memory`` streams a gzip CSV through the same null sender and reports peak RSS.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from _common import SandboxProcess, fake_context, peak_rss_mb, write_events_csv

from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict
from airflow_provider_aiq_braze.delivery.engine import DeliveryEngine
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.staging import locate
from airflow_provider_aiq_braze.storage import JsonlWriter, storage_path


class NullSender:
    """Accepts every body at once: measures everything but the network."""

    retries = 0

    def send(
        self,
        endpoint: str,
        body: bytes,
        *,
        safe_to_retry: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> BrazeResponse:
        """Answer like Braze would, instantly."""
        if before_send is not None:
            before_send()
        return BrazeResponse(
            endpoint=endpoint, verdict=Verdict.ACCEPTED, status=201, body={"message": "success"}
        )


def run_null(path: Path, work: Path, kind: str = "events") -> tuple[int, float]:
    """Read, validate, serialize and batch ``path`` as the operator does; send to :class:`NullSender`.

    :param path: the staged file.
    :param work: a folder for the rejects file.
    :param kind: ``events`` or ``campaigns``.
    """
    log = logging.getLogger("bench")
    operator: BrazeEventExportOperator | BrazeCampaignTriggerOperator
    if kind == "campaigns":
        operator = BrazeCampaignTriggerOperator(task_id="campaign", source=str(path), campaign_id="camp-1")
        operator.contract.campaign_id = "camp-1"  # as prepare() does once the campaign is rendered
    else:
        operator = BrazeEventExportOperator(task_id="events", source=str(path))
    engine = DeliveryEngine(
        operator.request_spec(),
        sender=NullSender(),
        ledger=None,
        rejects=JsonlWriter(storage_path(work / "rejects.jsonl")),
        log=log,
        max_workers=1,
    )
    started = time.perf_counter()
    counts = engine.run(operator.records(locate(str(path)), Progress(log)))
    return counts.rows_read, time.perf_counter() - started


def write_recipients_csv(path: Path, rows: int) -> Path:
    """Write ``rows`` campaign recipients (``external_id``, an empty ``braze_id``, two properties).

    :param path: the file to write.
    :param rows: how many rows.
    """
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "braze_id", "offer", "tier"])
        for i in range(rows):
            writer.writerow([f"user-{i}", "", f"offer-{i % 13}", f"tier-{i % 3}"])
    return path


def as_input(csv_path: Path, kind: str) -> Path:
    """The rows of ``csv_path`` in another input format (text columns, empty cells left out).

    :param csv_path: the events CSV.
    :param kind: ``csv``, ``csv-quoted``, ``jsonl`` or ``parquet``.
    """
    if kind == "csv":
        return csv_path
    header = csv_path.open(encoding="utf-8").readline().strip().split(",")
    table = pa_csv.read_csv(
        csv_path,
        convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
    )
    if kind == "parquet":
        pq.write_table(table, csv_path.with_suffix(".parquet"))
        return csv_path.with_suffix(".parquet")
    path = csv_path.with_suffix(".jsonl" if kind == "jsonl" else ".quoted.csv")
    with path.open("w", newline="", encoding="utf-8") as handle:
        if kind == "jsonl":
            for row in table.to_pylist():
                handle.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        else:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(table.column_names)
            writer.writerows(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", choices=["throughput", "overhead", "memory"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--input", choices=["csv", "csv-quoted", "jsonl", "parquet"], default="csv")
    parser.add_argument("--operator", choices=["events", "campaigns"], default="events")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        work = Path(tmp)
        if args.mode == "throughput":
            source = write_events_csv(work / "events.csv", args.rows)
            sandbox = SandboxProcess("--latency-ms", str(args.latency_ms))
            try:
                sandbox.use_as_default_connection()
                op = BrazeEventExportOperator(
                    task_id="events",
                    source=str(source),
                    state_path=str(work / "state"),
                    max_workers=args.workers,
                )
                started = time.perf_counter()
                result = op.execute(fake_context("events"))  # type: ignore[arg-type]
                elapsed = time.perf_counter() - started
                received = sandbox.stats()["counters"]["events_recorded"]
            finally:
                sandbox.stop()
            print(f"rows: {result['rows_read']:,}  sent: {result['sent']:,}  sandbox recorded: {received:,}")
            print(
                f"requests: {result['requests']:,}  retries: {result['retries']}  "
                f"latency: {args.latency_ms} ms  workers: {args.workers}"
            )
            print(f"elapsed: {elapsed:.1f} s  throughput: {result['sent'] / elapsed:,.0f} events/s")
            print(f"peak RSS: {peak_rss_mb():.0f} MiB")
        elif args.mode == "overhead":
            write = write_recipients_csv if args.operator == "campaigns" else write_events_csv
            source = as_input(write(work / f"{args.operator}.csv", args.rows), args.input)
            cpu_started = time.process_time()
            rows, elapsed = run_null(source, work, args.operator)
            cpu = time.process_time() - cpu_started
            print(
                f"rows: {rows:,} ({args.input}, {args.operator})  elapsed: {elapsed:.2f} s  overhead: "
                f"{elapsed / rows * 1e6:.2f} µs/row (read + validate + serialize + batch, null sender)  "
                f"cpu: {cpu / rows * 1e6:.2f} µs/row"
            )
        else:
            source = write_events_csv(work / "events.csv.gz", args.rows, gz=True)
            before = peak_rss_mb()
            rows, elapsed = run_null(source, work)
            print(
                f"rows: {rows:,} (.csv.gz, {source.stat().st_size / 2**20:.0f} MiB)  elapsed: {elapsed:.1f} s"
            )
            print(f"peak RSS: {peak_rss_mb():.0f} MiB (before reading: {before:.0f} MiB)")


if __name__ == "__main__":
    main()
