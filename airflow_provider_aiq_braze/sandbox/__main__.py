"""Command line: ``python -m airflow_provider_aiq_braze.sandbox --port 0 --api-key KEY``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from airflow_provider_aiq_braze.braze.limits import (
    DEFAULT_RATE,
    EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE,
    MESSAGING_RATE,
    SEND_IDS_PER_DAY,
    USERS_TRACK_RATE,
    ObjectCountRule,
)
from airflow_provider_aiq_braze.sandbox.config import FaultConfig, SandboxConfig, parse_api_key, parse_rate
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox


def _rate_text(requests: int, seconds: float) -> str:
    return f"{requests}/{seconds:g}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the sandbox command."""
    parser = argparse.ArgumentParser(
        prog="aiq-braze-sandbox",
        description="A local, strict emulator of the Braze REST endpoints airflow-provider-aiq-braze uses.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default 0)")
    add(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY[:PERM,...]",
        help="accepted REST API key, optionally with its permissions (repeatable; no permissions = all)",
    )
    add(
        "--object-count-rule",
        choices=[r.value for r in ObjectCountRule],
        default=ObjectCountRule.COMBINED_75.value,
        help="how /users/track objects count against 'Max Input Length Exceeded' (default combined-75)",
    )
    add(
        "--properties-max-bytes",
        type=int,
        default=EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE,
        help=f"largest event/trigger properties object (default {EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE})",
    )
    add(
        "--users-track-rate",
        default=_rate_text(USERS_TRACK_RATE.requests, USERS_TRACK_RATE.per_seconds),
        metavar="N/SECONDS",
        help="request budget of /users/track (default %(default)s)",
    )
    add(
        "--messaging-rate",
        default=_rate_text(MESSAGING_RATE.requests, MESSAGING_RATE.per_seconds),
        metavar="N/SECONDS",
        help="request budget of /campaigns/trigger/send (default %(default)s)",
    )
    add(
        "--default-rate",
        default=_rate_text(DEFAULT_RATE.requests, DEFAULT_RATE.per_seconds),
        metavar="N/SECONDS",
        help="request budget of every other endpoint (default %(default)s)",
    )
    add("--send-ids-per-day", type=int, default=SEND_IDS_PER_DAY, help="daily /sends/id/create quota")
    add("--latency-ms", type=float, default=0.0, help="fixed delay before each request")
    add("--jitter-ms", type=float, default=0.0, help="extra random delay, uniform in [0, jitter]")
    add(
        "--error-rate", type=float, default=0.0, help="ratio of requests answered 500/503 (nothing processed)"
    )
    add("--reset-rate", type=float, default=0.0, help="ratio of connections reset before processing")
    add(
        "--drop-after-process-rate",
        type=float,
        default=0.0,
        help="ratio of requests processed, then dropped without an answer",
    )
    add(
        "--stall-after-process-rate",
        type=float,
        default=0.0,
        help="ratio of requests processed, then answered after --stall-seconds",
    )
    add("--stall-seconds", type=float, default=5.0, help="how long a stalled answer waits (default 5)")
    add("--rate-limit-storm-requests", type=int, default=0, help="answer the first N requests with 429")
    add(
        "--fault-endpoint",
        action="append",
        default=[],
        metavar="PATH",
        help="limit faults to this endpoint (repeatable; default all Braze endpoints)",
    )
    add("--seed", type=int, default=None, help="seed of the fault generator (reproducible faults)")
    add(
        "--journal",
        type=Path,
        default=None,
        metavar="PATH",
        help="append accepted requests to this JSONL file",
    )
    add(
        "--port-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the port to this file once listening",
    )
    add(
        "--client-timeout", type=float, default=10.0, help="socket timeout for stalled clients (default 10 s)"
    )
    add("--log-limit", type=int, default=100_000, help="events/purchases/dispatches kept for inspection")
    add("--allow-remote-admin", action="store_true", help="serve /_sandbox/ to non-loopback clients too")
    add("--verbose", action="store_true", help="log one line per request to stderr (never headers)")
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Turn parsed arguments into a :class:`SandboxConfig`.

    :param args: what :func:`build_parser` parsed.
    :raises ValueError: for invalid values.
    """
    keys = dict(parse_api_key(spec) for spec in args.api_key)
    faults = FaultConfig(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        reset_rate=args.reset_rate,
        drop_after_process_rate=args.drop_after_process_rate,
        stall_after_process_rate=args.stall_after_process_rate,
        stall_seconds=args.stall_seconds,
        rate_limit_storm_requests=args.rate_limit_storm_requests,
        endpoints=tuple(args.fault_endpoint),
    )
    return SandboxConfig(
        host=args.host,
        port=args.port,
        api_keys=keys,
        object_count_rule=ObjectCountRule(args.object_count_rule),
        properties_max_bytes=args.properties_max_bytes,
        users_track_rate=parse_rate(args.users_track_rate),
        messaging_rate=parse_rate(args.messaging_rate),
        default_rate=parse_rate(args.default_rate),
        send_ids_per_day=args.send_ids_per_day,
        faults=faults,
        seed=args.seed,
        journal=args.journal,
        client_timeout=args.client_timeout,
        log_limit=args.log_limit,
        admin_loopback_only=not args.allow_remote_admin,
        verbose=args.verbose,
    )


def _write_port_file(path: Path, port: int) -> None:
    """Write the port atomically, so a reader never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sandbox until SIGTERM or SIGINT.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    :return: the exit status.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error("at least one --api-key is required")
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    sandbox = BrazeSandbox(config)
    try:
        base_url = sandbox.start()
    except OSError as error:
        print(f"Braze sandbox could not listen on {config.host}:{config.port}: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if args.port_file is not None:
            _write_port_file(args.port_file, sandbox.port)
        print(f"Braze sandbox listening on {base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
