"""End-to-end audience sync benchmark (issue: 10M members, 1% churn, ≤ 60 s, ≤ 1.5 GB peak RSS).

    python bench/audience_sync.py --members 10000000 --latency-ms 50

Generates a previous snapshot of ``--members`` profiles and a new one where 1% left and 1%
joined (Parquet, through DuckDB in ``audience_delta.generate``), seeds the applied state with the
previous one, starts the Braze sandbox in its own process (Braze's default rate limit, the given
latency), then times ``BrazeAudienceMembershipOperator`` from the staged file to the committed
state: read, diff, deliver, commit. Prints the time, peak RSS of this process, and the data points
the sandbox counted against what a full re-sync would spend.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from _common import SandboxProcess, fake_context, peak_rss_mb
from audience_delta import AUDIENCE, NEW_KEY, PREVIOUS_KEY, SPLIT, generate

from airflow_provider_aiq_braze.audiences import SnapshotStore
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000_000)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-audience-") as tmp:
        started = time.perf_counter()
        generate(tmp, args.members, args.churn)
        state_root = Path(tmp) / "state"
        SnapshotStore(str(state_root / "audiences"), "braze_default").commit(
            AUDIENCE,
            SPLIT,
            f"{tmp}/state.parquet",
            snapshot_key=PREVIOUS_KEY,
            attribute=f"AIQ_{AUDIENCE}_{SPLIT}",
            members=args.members,
            base=None,  # a fresh state folder
        )
        print(
            f"generated {args.members:,} members and seeded the state "
            f"in {time.perf_counter() - started:.1f} s"
        )
        sandbox = SandboxProcess("--latency-ms", str(args.latency_ms))
        try:
            sandbox.use_as_default_connection()
            before_rss = peak_rss_mb()
            op = BrazeAudienceMembershipOperator(
                task_id="audience",
                source=f"{tmp}/new.parquet",
                state_path=str(state_root),
                snapshot_key=NEW_KEY,
                update_existing_only=False,  # the sandbox has no profiles: let it count every write
                max_workers=args.workers,
            )
            started = time.perf_counter()
            result = op.execute(fake_context("audience"))  # type: ignore[arg-type]
            elapsed = time.perf_counter() - started
            data_points = sandbox.stats()["data_points"]
        finally:
            sandbox.stop()
    print(
        f"rows read: {result['rows_read']:,}  entered: {result['entered']:,}  exited: {result['exited']:,}  "
        f"unchanged: {result['unchanged']:,}"
    )
    print(
        f"requests: {result['requests']:,}  objects sent: {result['objects_sent']:,}  "
        f"state committed: {result['state_committed']}  latency: {args.latency_ms} ms"
    )
    print(f"end to end (read + diff + deliver + commit): {elapsed:.1f} s")
    print(f"peak RSS: {peak_rss_mb():.0f} MiB (before the run: {before_rss:.0f} MiB)")
    print(
        f"data points: {data_points:,} sent vs {result['data_points_full_resync']:,} for a full re-sync "
        f"({data_points / max(result['data_points_full_resync'], 1):.1%})"
    )


if __name__ == "__main__":
    main()
