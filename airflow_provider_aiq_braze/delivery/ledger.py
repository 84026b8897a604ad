"""The ledger: the outcome of every batch, so a retry, re-run or backfill never resends one.

One JSON Lines file per task and input. A batch is identified by the SHA-256 of its exact body,
so the same input cut the same way finds its earlier outcome whatever the run id. Before a batch
is sent its intent (``sending``) is written and flushed; a batch whose last record is still
``sending`` when the ledger is read again was in flight when the process died: its outcome is
unknown, and it is treated as uncertain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.delivery.storage import JsonlWriter, is_local, read_jsonl

SENDING = "sending"
ACCEPTED = "accepted"
UNCERTAIN = "uncertain"
FAILED = "failed"


@dataclass
class LedgerEntry:
    """The last known outcome of one batch.

    :param digest: SHA-256 of the request body.
    :param state: ``sending``, ``accepted``, ``uncertain`` or ``failed``.
    :param rejected: Braze's minor errors by object index, for accepted batches.
    :param info: everything else recorded (dispatch id, reason, run id, …).
    """

    digest: str
    state: str
    rejected: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """The state, with a batch left ``sending`` by a dead process read as uncertain."""
        return UNCERTAIN if self.state == SENDING else self.state


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
        existing = list(read_jsonl(path))
        self._writer = JsonlWriter(path, flush_every=10**9, append=True)
        if existing and not is_local(path):
            # object stores cannot append: carry the earlier records into the rewritten object
            for record in existing:
                self._writer.write(record)
        if fresh:
            self._writer.write({"reset": True, "run_id": run_id, "try": try_number, "at": time.time()})
            self._writer.flush()
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
        """Record that a batch is about to be sent (made durable by :meth:`flush`).

        :param batch: the batch.
        """
        self._write(batch, SENDING, {})

    def record(self, batch: Batch, state: str, **info: Any) -> None:
        """Record a batch's outcome.

        :param batch: the batch.
        :param state: ``accepted``, ``uncertain`` or ``failed``.
        :param info: details worth keeping (``rejected`` by index, ``dispatch_id``, ``reason``, …).
        """
        self._write(batch, state, info)

    def flush(self) -> None:
        """Make every record written so far durable."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and release the file."""
        self._writer.close()

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
        self._writer.write(record)
        self._entries[batch.digest] = _entry_from_record(record)


def _entry_from_record(record: dict[str, Any]) -> LedgerEntry:
    rejected_raw = record.get("rejected") or {}
    rejected = {int(k): str(v) for k, v in rejected_raw.items()} if isinstance(rejected_raw, dict) else {}
    info = {k: v for k, v in record.items() if k not in ("digest", "state", "rejected")}
    return LedgerEntry(
        digest=str(record["digest"]), state=str(record.get("state")), rejected=rejected, info=info
    )
