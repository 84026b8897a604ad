"""The delivery engine: records in, batches out, every row accounted for.

Operators turn staged rows into :mod:`records <airflow_provider_aiq_braze.delivery.records>`;
the engine batches the deliverables, sends them concurrently through one :class:`Sender`
(the Braze hook), records each batch in the :class:`~.ledger.Ledger`, writes rejects, and
returns the counts. Accounting happens on the calling thread only; worker threads just send.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_aiq_braze.braze.errors import BrazeApiError
from airflow_provider_aiq_braze.braze.responses import BrazeResponse
from airflow_provider_aiq_braze.delivery.batching import Batch, Batcher, BodyTemplate, OversizedObjectError
from airflow_provider_aiq_braze.delivery.ledger import ACCEPTED, FAILED, UNCERTAIN, Ledger
from airflow_provider_aiq_braze.delivery.progress import Progress, TaskLog
from airflow_provider_aiq_braze.delivery.records import Deliverable, Record, Rejected, Skipped, materialized
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.delivery.storage import JsonlWriter

#: The interpreter's thread switch interval while a delivery runs (seconds).
SENDING_SWITCH_INTERVAL = 0.05


class Sender(Protocol):
    """What the engine needs from the Braze hook."""

    def post(self, endpoint: str, body: bytes, *, safe_to_retry: bool = False) -> BrazeResponse:
        """Send one request body; return its outcome or raise ``BrazeApiError``."""
        ...

    @property
    def retries(self) -> int:
        """Retries made so far."""
        ...


@dataclass(frozen=True)
class RequestSpec:
    """How an operator's objects become requests.

    :param endpoint: the REST path, e.g. ``/users/track``.
    :param array: the name of the objects' array in the body and in Braze's minor errors.
    :param max_objects: the most objects per request.
    :param max_bytes: the largest request body.
    :param template_for: the body around the objects, per group.
    :param safe_to_retry: whether a request of unknown outcome may be sent again (idempotent writes).
    """

    endpoint: str
    array: str
    max_objects: int
    max_bytes: int
    template_for: Callable[[str], BodyTemplate]
    safe_to_retry: bool = False


class DeliveryFailed(RuntimeError):
    """Braze refused a request outright; accepted batches are in the ledger and will be skipped on retry.

    :param counts: the accounting at the time of the failure.
    :param error: Braze's error.
    """

    def __init__(self, counts: DeliveryCounts, error: BrazeApiError) -> None:
        self.counts = counts
        self.error = error
        super().__init__(
            f"{error}. Delivery stopped: {counts.sent} rows delivered, {counts.failed} not delivered; "
            "batches Braze accepted are recorded in the ledger and a retry will not resend them."
        )


#: Called for each accepted batch with its ``dispatch_id`` (if any) and whether it was accepted
#: in an earlier attempt (found in the ledger) rather than now.
AcceptedCallback = Callable[[Batch, "str | None", bool], None]


class DeliveryEngine:
    """Batch, send and account for one run.

    :param spec: how objects become requests.
    :param sender: the Braze hook (``None`` in a dry run).
    :param ledger: where batch outcomes are read from and written to (``None`` in a dry run
        without one).
    :param rejects: where rejected rows are written.
    :param log: the task logger.
    :param max_workers: concurrent requests.
    :param dry_run_bodies: in a dry run, where the exact request bodies are written instead of sent.
    :param resend_uncertain: resend batches whose earlier outcome is unknown.
    :param progress: progress reporter.
    :param on_accepted: called on the calling thread for each batch Braze accepted.
    """

    def __init__(
        self,
        spec: RequestSpec,
        *,
        sender: Sender | None,
        ledger: Ledger | None,
        rejects: JsonlWriter,
        log: TaskLog,
        max_workers: int = 16,
        dry_run_bodies: JsonlWriter | None = None,
        resend_uncertain: bool = False,
        progress: Progress | None = None,
        on_accepted: AcceptedCallback | None = None,
    ) -> None:
        if sender is None and dry_run_bodies is None:
            raise ValueError("a sender is required unless this is a dry run")
        self.spec = spec
        self.counts = DeliveryCounts()
        self._sender = sender
        self._ledger = ledger
        self._rejects = rejects
        self._log = log
        self._max_workers = max(1, max_workers)
        self._dry_run_bodies = dry_run_bodies
        self._resend_uncertain = resend_uncertain
        self._progress = progress or Progress(log)
        self._on_accepted = on_accepted
        self._batcher = Batcher(spec.template_for, max_objects=spec.max_objects, max_bytes=spec.max_bytes)
        self._pending: list[Batch] = []
        self._inflight: dict[Future[BrazeResponse], Batch] = {}
        # finished requests, queued by their own callbacks: no polling of every future in flight
        self._completed: queue.SimpleQueue[Future[BrazeResponse]] = queue.SimpleQueue()
        self._error: BrazeApiError | None = None
        self._executor: ThreadPoolExecutor | None = None

    # -- public -----------------------------------------------------------------------------

    def run(self, records: Iterable[Record]) -> DeliveryCounts:
        """Deliver every record; return the counts (checked against the invariant).

        :param records: the operator's records, in a deterministic order.
        :raises DeliveryFailed: when Braze refused a request outright.
        """
        retries_before = self._sender.retries if self._sender is not None else 0
        if self._sender is not None and self._dry_run_bodies is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="braze-sender")
        # The calling thread reads and validates (CPU) while the senders mostly wait on the network.
        # Python's default 5 ms switch interval makes the reader hand the GIL over far more often
        # than the senders need it; 50 ms measured 15% more events/s (see docs/performance.md).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(max(switch_interval, SENDING_SWITCH_INTERVAL))
        try:
            for record in records:
                self.add(record)
                if self._error is not None:
                    break
            for batch in self._batcher.flush():
                self._dispatch(batch)
            self._drain()
        finally:
            sys.setswitchinterval(switch_interval)
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
            if self._ledger is not None:
                self._ledger.close()
            self._rejects.close()
            if self._dry_run_bodies is not None:
                self._dry_run_bodies.close()
        if self._sender is not None:
            self.counts.retries = self._sender.retries - retries_before
        if self._error is not None:
            self.counts.failed += self.counts.unaccounted()
            raise DeliveryFailed(self.counts, self._error)
        self.counts.check()
        self._progress.log_now(self.counts.rows_read, self.counts.sent)
        return self.counts

    def add(self, record: Record) -> None:
        """Take one record.

        :param record: a deliverable, a reject or a skip.
        """
        counts = self.counts
        counts.rows_read += record.rows
        if type(record) is Deliverable:
            if self._error is None:
                try:
                    for batch in self._batcher.add(record):
                        self._dispatch(batch)
                except OversizedObjectError as exc:
                    self.reject(record.file, record.row, str(exc), record.raw, record.rows)
        elif isinstance(record, Rejected):
            self.reject(record.file, record.row, record.reason, record.raw, record.rows)
        elif isinstance(record, Skipped):
            counts.skipped += record.rows
            counts.skipped_reasons[record.reason] += record.rows
        if not counts.rows_read & 1023:
            self._progress.maybe_log(counts.rows_read, counts.sent)

    def reject(self, file: str, row: int, reason: str, raw: Any, rows: int = 1) -> None:
        """Count rows as rejected and write them to the rejects file.

        :param file: the source file.
        :param row: the row number.
        :param reason: why.
        :param raw: the row as read.
        :param rows: how many input rows.
        """
        self.counts.rejected += rows
        self._rejects.write({"file": file, "row": row, "reason": reason, "data": materialized(raw, row)})

    # -- batches ----------------------------------------------------------------------------

    def _dispatch(self, batch: Batch) -> None:
        entry = self._ledger.lookup(batch) if self._ledger is not None else None
        if entry is not None and entry.outcome == ACCEPTED:
            refused = self._count_accepted(batch, entry.rejected, earlier=True)
            if self._on_accepted is not None:
                dispatch_id = entry.info.get("dispatch_id")
                self._on_accepted(batch, str(dispatch_id) if dispatch_id else None, True)
            delivered_before = batch.rows - sum(batch.items[i].rows for i in refused)
            self.counts.skipped += delivered_before
            self.counts.skipped_reasons["already delivered"] += delivered_before
            return
        if entry is not None and entry.outcome == UNCERTAIN and not self._resend_uncertain:
            self._count_uncertain(
                batch, "outcome unknown in an earlier attempt; not resent (resend_uncertain=True resends it)"
            )
            return
        if self._dry_run_bodies is not None:
            self._dry_run_bodies.write_line(batch.body.decode())
            self.counts.requests += 1
            self.counts.sent += batch.rows
            self.counts.objects_sent += len(batch.items)
            return
        self._pending.append(batch)
        self._pump(block=len(self._inflight) >= 2 * self._max_workers)

    def _pump(self, *, block: bool) -> None:
        """Collect finished requests and start pending ones, keeping at most twice the workers in flight."""
        if block and self._inflight:
            self._settle(self._completed.get())
        while True:  # every request finished so far, in completion order
            try:
                future = self._completed.get_nowait()
            except queue.Empty:
                break
            self._settle(future)
        room = 2 * self._max_workers - len(self._inflight)
        if room <= 0 or not self._pending or self._error is not None:
            return
        starting, self._pending = self._pending[:room], self._pending[room:]
        if self._ledger is not None:
            for batch in starting:
                self._ledger.intend(batch)
            self._ledger.flush()
        assert self._executor is not None and self._sender is not None
        for batch in starting:
            future = self._executor.submit(
                self._sender.post, self.spec.endpoint, batch.body, safe_to_retry=self.spec.safe_to_retry
            )
            self._inflight[future] = batch
            future.add_done_callback(self._completed.put)

    def _drain(self) -> None:
        while self._pending or self._inflight:
            if self._error is not None:
                for batch in self._pending:
                    self.counts.failed += batch.rows
                self._pending = []
            if not self._inflight and not self._pending:
                break
            self._pump(block=True)

    def _settle(self, future: Future[BrazeResponse]) -> None:
        batch = self._inflight.pop(future)
        self.counts.requests += 1
        try:
            response = future.result()
        except BrazeApiError as exc:
            self.counts.failed += batch.rows
            if self._ledger is not None:
                self._ledger.record(batch, FAILED, status=exc.status, reason=exc.message)
            if self._error is None:
                self._error = exc
                self._log.error("Batch %d refused by Braze: %s", batch.seq, exc)
            return
        if response.accepted:
            rejected = self._count_accepted(batch, response.errors_by_index(self.spec.array), earlier=False)
            if response.unmapped_errors:
                self._log.warning(
                    "Batch %d: Braze reported errors that name no object: %s",
                    batch.seq,
                    [e.type for e in response.unmapped_errors],
                )
            if self._ledger is not None:
                info: dict[str, Any] = {"rejected": rejected, "status": response.status}
                if response.dispatch_id:
                    info["dispatch_id"] = response.dispatch_id
                self._ledger.record(batch, ACCEPTED, **info)
            if self._on_accepted is not None:
                self._on_accepted(batch, response.dispatch_id, False)
            return
        reason = response.uncertain_reason or "no response"
        if self._ledger is not None:
            self._ledger.record(batch, UNCERTAIN, reason=reason)
        self._count_uncertain(batch, reason)

    def _count_accepted(self, batch: Batch, rejected: dict[int, str], *, earlier: bool) -> dict[int, str]:
        """Reject the objects Braze named; count the rest as sent (unless ``earlier``)."""
        valid = {i: reason for i, reason in rejected.items() if 0 <= i < len(batch.items)}
        prefix = "Braze rejected this object in an earlier attempt: " if earlier else "Braze rejected: "
        for index, reason in sorted(valid.items()):
            item = batch.items[index]
            self.reject(item.file, item.row, prefix + reason, item.raw, item.rows)
        if not earlier:
            self.counts.sent += batch.rows - sum(batch.items[i].rows for i in valid)
            self.counts.objects_sent += len(batch.items) - len(valid)
        return valid

    def _count_uncertain(self, batch: Batch, reason: str) -> None:
        self.counts.uncertain += batch.rows
        first = batch.items[0]
        self.counts.uncertain_batches.append(
            {
                "seq": batch.seq,
                "digest": batch.digest[:16],
                "objects": len(batch.items),
                "rows": batch.rows,
                "first_row": f"{first.file}#{first.row}",
                "reason": reason,
            }
        )
        self._log.warning("Batch %d (%d objects) is uncertain: %s", batch.seq, len(batch.items), reason)
