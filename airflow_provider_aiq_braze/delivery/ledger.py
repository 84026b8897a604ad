"""The ledger: the outcome of every batch, so a retry, re-run or backfill never resends one.

One JSON Lines file per task and input. A batch is identified by the SHA-256 of its exact body,
so the same input cut the same way finds its earlier outcome whatever the run id. The last record
of a batch is its state:

``sending``
    written and flushed by the sender thread right before the request goes on the wire (after
    rate-limit waits). Still the last record when the ledger is read again, it means the process
    died with the request in flight: the outcome is unknown, read as ``uncertain``.
``accepted``
    Braze answered 2xx. ``rejected`` holds the objects it refused (index → Braze's reason);
    ``items_unknown`` is true when the body could not be read (which objects it refused is lost).
``refused``
    Braze refused the request's content for good (verdicts ``refused`` and ``refused_items``).
    ``rejected`` holds the refused objects (index → reason); objects of the batch it does not
    name were not processed and travel again in a request of their own (the engine derives it
    from the batch, see :meth:`~airflow_provider_aiq_braze.delivery.batching.Batcher.remainder`).
    A re-run neither resends nor fails on it.
``uncertain``
    the request may have reached Braze and no answer came: not resent unless asked.
``not_sent``
    the request never reached Braze (a setup error, retries exhausted, the run stopping): a retry
    sends it. Batches with no record at all are not sent either. (``failed``, written by earlier
    versions for refusals, reads the same.)

Interface for the engine: :meth:`Ledger.lookup` before dispatching a batch, :meth:`Ledger.intend`
from the sending thread, :meth:`Ledger.record` for each final outcome. Every method is thread-safe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.storage import JsonlWriter, read_jsonl

SENDING = "sending"
ACCEPTED = "accepted"
REFUSED = "refused"
UNCERTAIN = "uncertain"
NOT_SENT = "not_sent"
#: Written by earlier versions for a request Braze refused; nothing was processed: read as not sent.
FAILED = "failed"


class LedgerError(RuntimeError):
    """The ledger cannot be read or written (a directory in its place, permissions, a full disk)."""


@dataclass
class LedgerEntry:
    """The last known outcome of one batch.

    :param digest: SHA-256 of the request body.
    :param state: ``sending``, ``accepted``, ``refused``, ``uncertain``, ``not_sent`` (or ``failed``).
    :param rejected: the objects Braze refused, by index, with its reason (accepted and refused
        batches).
    :param info: everything else recorded (dispatch id, reason, run id, …).
    """

    digest: str
    state: str
    rejected: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """The state, with a batch left ``sending`` by a dead process read as uncertain, and the
        ``failed`` of earlier versions as not sent."""
        if self.state == SENDING:
            return UNCERTAIN
        return NOT_SENT if self.state == FAILED else self.state


class Ledger:
    """Read and append batch outcomes.

    :param path: the ledger file.
    :param run_id: the Airflow run writing to it, recorded with each outcome.
    :param try_number: the task try writing to it.
    :param fresh: ignore every earlier outcome (``force=True``): a reset marker is written first.
    """

    def __init__(
        self, path: ObjectStoragePath, *, run_id: str, try_number: int = 1, fresh: bool = False
    ) -> None:
        self.path = path
        self._run_id = run_id
        self._try = try_number
        self._entries: dict[str, LedgerEntry] = {}
        self._lock = threading.Lock()
        try:
            existing = list(read_jsonl(path))
        except OSError as exc:
            raise LedgerError(_problem("read", path, exc)) from None
        self._writer = JsonlWriter(path, flush_every=10**9, append=True)
        if fresh:
            try:
                self._writer.write({"reset": True, "run_id": run_id, "try": try_number, "at": time.time()})
                self._writer.flush()
            except OSError as exc:
                raise LedgerError(_problem("write", path, exc)) from None
            return
        for record in existing:
            if record.get("reset"):
                self._entries.clear()
                continue
            digest = record.get("digest")
            if isinstance(digest, str):
                self._entries[digest] = _entry_from_record(record)

    def lookup(self, batch: Batch) -> LedgerEntry | None:
        """The last recorded outcome of a batch, if any.

        :param batch: the batch.
        """
        return self._entries.get(batch.digest)

    def intend(self, batch: Batch) -> None:
        """Record, durably, that a batch is going on the wire now (call it from the sending thread).

        On local storage this is one appended line and a flush.

        :param batch: the batch.
        """
        with self._lock:
            self._write(batch, SENDING, {})
            try:
                self._writer.flush()
            except OSError as exc:
                raise LedgerError(_problem("write", self.path, exc)) from None

    def record(self, batch: Batch, state: str, **info: Any) -> None:
        """Record a batch's outcome.

        :param batch: the batch.
        :param state: ``accepted``, ``refused``, ``uncertain`` or ``not_sent``.
        :param info: details worth keeping (``rejected`` by index, ``dispatch_id``, ``reason``, …).
        """
        with self._lock:
            self._write(batch, state, info)

    def flush(self) -> None:
        """Make every record written so far durable."""
        try:
            self._writer.flush()
        except OSError as exc:
            raise LedgerError(_problem("write", self.path, exc)) from None

    def close(self) -> None:
        """Flush and release the file."""
        try:
            self._writer.close()
        except OSError as exc:
            raise LedgerError(_problem("write", self.path, exc)) from None

    @property
    def entries(self) -> dict[str, LedgerEntry]:
        """The last outcome of each batch known to this ledger."""
        return self._entries

    def _write(self, batch: Batch, state: str, info: dict[str, Any]) -> None:
        record = {
            "digest": batch.digest,
            "seq": batch.seq,
            "group": batch.group,
            "objects": len(batch.items),
            "rows": batch.rows,
            "state": state,
            "run_id": self._run_id,
            "try": self._try,
            "at": round(time.time(), 3),
            **info,
        }
        try:
            self._writer.write(record)
        except OSError as exc:
            raise LedgerError(_problem("write", self.path, exc)) from None
        self._entries[batch.digest] = _entry_from_record(record)


def _entry_from_record(record: dict[str, Any]) -> LedgerEntry:
    rejected_raw = record.get("rejected") or {}
    rejected = {int(k): str(v) for k, v in rejected_raw.items()} if isinstance(rejected_raw, dict) else {}
    info = {k: v for k, v in record.items() if k not in ("digest", "state", "rejected")}
    return LedgerEntry(
        digest=str(record["digest"]), state=str(record.get("state")), rejected=rejected, info=info
    )


def _problem(action: str, path: ObjectStoragePath, exc: OSError) -> str:
    return (
        f"Cannot {action} the ledger {path}: {type(exc).__name__}: {exc.strerror or exc}. The ledger "
        "records what Braze accepted so that a retry sends nothing twice: make state_path a writable "
        "folder (and nothing else at the ledger's path)."
    )
