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
from typing import Any

from airflow_provider_aiq_braze.sandbox import facts
from airflow_provider_aiq_braze.sandbox.config import (
    HOSTILE_ANSWERS,
    FaultConfig,
    Refusals,
    SandboxConfig,
    parse_api_key,
    parse_rate,
)
from airflow_provider_aiq_braze.sandbox.facts import ObjectCountRule
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox


def _rate_text(rate: facts.Rate) -> str:
    return f"{rate.requests}/{rate.seconds:g}"


def _hostile(spec: str, kind: type[int] | type[float]) -> tuple[str, int | float]:
    """Parse ``KIND=N`` (``--hostile``) or ``KIND=R`` (``--hostile-rate``)."""
    name, sep, value = spec.partition("=")
    if not sep or name not in HOSTILE_ANSWERS:
        raise argparse.ArgumentTypeError(
            f"{spec!r} is not KIND=VALUE with KIND one of {', '.join(HOSTILE_ANSWERS)}"
        )
    try:
        return name, kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: {value!r} is not a {kind.__name__}") from None


def _add_workspace_flags(add: Any) -> None:
    """The flags that describe the Braze workspace: limits, rates, campaigns, refusals.

    :param add: the parser's ``add_argument``.
    """
    add(
        "--object-count-rule",
        choices=[r.value for r in ObjectCountRule],
        default=ObjectCountRule.COMBINED_75.value,
        help="how /users/track objects count against 'Max Input Length Exceeded' (default combined-75)",
    )
    add(
        "--properties-max-bytes",
        type=int,
        default=facts.PROPERTIES_MAX_BYTES,
        help="largest properties object holding arrays or objects, serialized "
        f"(default {facts.PROPERTIES_MAX_BYTES}; older Braze pages: {facts.PROPERTIES_MAX_BYTES_OLDER})",
    )
    add(
        "--users-track-rate",
        default=_rate_text(facts.USERS_TRACK_RATE),
        metavar="N/SECONDS",
        help="request budget of /users/track (default %(default)s)",
    )
    add(
        "--messaging-rate",
        default=_rate_text(facts.MESSAGING_RATE),
        metavar="N/SECONDS",
        help="request budget of /campaigns/trigger/send (default %(default)s)",
    )
    add(
        "--default-rate",
        default=_rate_text(facts.DEFAULT_RATE),
        metavar="N/SECONDS",
        help="request budget of every other endpoint (default %(default)s)",
    )
    add(
        "--export-rate",
        default=_rate_text(facts.EXPORT_RATE),
        metavar="N/SECONDS",
        help="request budget of /users/export/ids (default %(default)s; before 2024-08-22: 2500/60)",
    )
    add("--send-ids-per-day", type=int, default=facts.SEND_IDS_PER_DAY, help="daily /sends/id/create quota")
    add(
        "--campaign",
        action="append",
        default=[],
        metavar="ID",
        help="an API campaign id of the workspace (repeatable); others then get 400 Invalid Campaign ID",
    )
    add(
        "--refuse-id",
        action="append",
        default=[],
        metavar="ID",
        help="an identifier Braze does not accept (repeatable): a per-item error, 400 if nothing is valid",
    )
    add(
        "--refuse-prefix",
        action="append",
        default=[],
        metavar="PREFIX",
        help="refuse every identifier starting with PREFIX (repeatable)",
    )


def _add_fault_flags(add: Any) -> None:
    """The fault flags (see docs/sandbox.md "Fault injection").

    :param add: the parser's ``add_argument``.
    """
    add("--latency-ms", type=float, default=0.0, help="fixed delay before each request")
    add("--jitter-ms", type=float, default=0.0, help="extra random delay, uniform in [0, jitter]")
    add(
        "--error-rate", type=float, default=0.0, help="ratio of requests answered 500/503 (nothing processed)"
    )
    add("--error-status", type=int, default=None, help="5xx status of error faults (default: 500 or 503)")
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
        "--hostile",
        action="append",
        default=[],
        type=lambda spec: _hostile(spec, int),
        metavar="KIND=N",
        help=f"a hostile answer for the next N requests (repeatable); KIND: {', '.join(HOSTILE_ANSWERS)}",
    )
    add(
        "--hostile-rate",
        action="append",
        default=[],
        type=lambda spec: _hostile(spec, float),
        metavar="KIND=R",
        help="a hostile answer for a ratio R of the requests (repeatable)",
    )
    add("--redirect-status", type=int, default=301, help="3xx status of 'redirect' answers (default 301)")


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
    _add_workspace_flags(add)
    _add_fault_flags(add)
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
        error_status=args.error_status,
        reset_rate=args.reset_rate,
        drop_after_process_rate=args.drop_after_process_rate,
        stall_after_process_rate=args.stall_after_process_rate,
        stall_seconds=args.stall_seconds,
        rate_limit_storm_requests=args.rate_limit_storm_requests,
        redirect_status=args.redirect_status,
        endpoints=tuple(args.fault_endpoint),
        **{f"{kind}_requests": n for kind, n in args.hostile},
        **{f"{kind}_rate": r for kind, r in args.hostile_rate},
    )
    return SandboxConfig(
        host=args.host,
        port=args.port,
        api_keys=keys,
        object_count_rule=ObjectCountRule(args.object_count_rule),
        properties_max_bytes=args.properties_max_bytes,
        users_track_rate=parse_rate(args.users_track_rate),
        messaging_rate=parse_rate(args.messaging_rate),
        export_rate=parse_rate(args.export_rate),
        default_rate=parse_rate(args.default_rate),
        send_ids_per_day=args.send_ids_per_day,
        campaigns=tuple(args.campaign),
        refusals=Refusals(frozenset(args.refuse_id), tuple(args.refuse_prefix)),
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
