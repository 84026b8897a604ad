"""A separate process for the storage tests: races conditional writes, or holds a ledger lease.

``python -m tests.storage.worker '<json>'`` where the JSON holds ``command`` and its arguments, and
``uri`` (+ ``conn_id``) of the file. It prints one JSON object per line (an event, with
``time.time()`` as ``t``) and flushes each, so the test can follow it while it runs.

Commands:

* ``create`` / ``replace``: wait until the file ``go`` exists (so racers start together), then
  ``create_exclusive(uri, data)`` or ``replace_if(uri, data, version)``; prints ``{"version": …}``.
* ``lease``: take the lease ``uri`` with the given settings, print ``acquired``, call ``check()``
  every 20 ms for ``hold`` seconds (forever if ``null``) printing ``check_ok`` (or ``lost`` and stop),
  then ``releasing`` and ``released``. A lease held by another prints ``held`` with the message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from airflow_provider_aiq_braze.delivery.ownership import (
    LeaseHeld,
    LeaseLost,
    LeaseSettings,
    LedgerLease,
    OwnerId,
)
from airflow_provider_aiq_braze.storage import create_exclusive, read_versioned, replace_if, storage_path

_out = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    line = json.dumps({"event": event, "t": time.time(), "pid": os.getpid(), **fields}) + "\n"
    with _out:  # one write per line: the heartbeat thread may log meanwhile
        sys.stdout.write(line)
        sys.stdout.flush()


def wait_for(go: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.002)


def hold_lease(args: dict[str, Any]) -> None:
    settings = LeaseSettings(**args["settings"])
    lease = LedgerLease(
        storage_path(args["uri"], args.get("conn_id")),
        owner=OwnerId.current(try_number=args.get("try_number", 1), label=args.get("label", "")),
        settings=settings,
    )
    emit("start", token=lease.owner.token)
    try:
        lease.acquire()
    except LeaseHeld as exc:
        emit("held", message=str(exc))
        return
    emit("acquired", token=lease.owner.token)
    hold = args.get("hold")
    until = None if hold is None else time.monotonic() + hold
    while until is None or time.monotonic() < until:
        try:
            lease.check()
        except LeaseLost as exc:
            emit("lost", message=str(exc))
            lease.release()
            return
        emit("check_ok", checked=time.time())
        time.sleep(0.02)
    emit("releasing")
    lease.release()
    emit("released")


def main() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, force=True)
    args = json.loads(sys.argv[1])
    command = args["command"]
    if command == "lease":
        hold_lease(args)
        return
    path = storage_path(args["uri"], args.get("conn_id"))
    data = args["data"].encode()
    read_versioned(path)  # connect before the race, so the racers' requests meet at the storage
    emit("ready")
    wait_for(args["go"])
    if command == "create":
        version = create_exclusive(path, data)
    elif command == "replace":
        version = replace_if(path, data, args["version"])
    else:
        raise SystemExit(f"unknown command {command!r}")
    emit("done", version=version)


if __name__ == "__main__":
    main()
