"""The delivery engine: records in, batches out, every row accounted for.

Operators turn staged rows into :mod:`records <airflow_provider_aiq_braze.delivery.records>`;
the engine batches the deliverables, sends them concurrently through one :class:`Sender`
(the Braze client), records each batch in the :class:`~.ledger.Ledger`, writes rejects, and
returns the counts. Accounting happens on the calling thread only; a sender thread sends, writes
a batch's "sending" intent to the ledger right before its request goes on the wire, and records
its outcome as soon as the answer is in (:func:`~.outcomes.outcome`).

What each verdict of Braze's answer does to a batch (``docs/guarantees.md`` has the table):

* ``accepted``: sent, minus the objects Braze named (rejects with its reason);
* ``refused_items``: the named objects are rejects; the others go again once, in a request of
  their own (:meth:`~.batching.Batcher.remainder`); the run goes on;
* ``refused``: every object is a reject with Braze's reason; recorded, never resent;
* ``uncertain``: reported, not resent (unless ``resend_uncertain``);
* ``setup_error``, and ``retry`` / ``rate_limited`` once their attempts are spent: the batch was
  not sent; the run stops sending at once and fails with the reason (:class:`DeliveryFailed`).

Nothing raised while sending escapes unaccounted: failures of the sender threads, and of the
rejects or ledger files, end the run with :class:`DeliveryFailed` naming the cause.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.braze.answers import describe
from airflow_provider_aiq_braze.braze.errors import BrazeApiError, BrazeConfigError, BrazeError
from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict
from airflow_provider_aiq_braze.delivery.batching import Batch, Batcher, BodyTemplate, OversizedObjectError
from airflow_provider_aiq_braze.delivery.ledger import (
    ACCEPTED,
    NOT_SENT,
    REFUSED,
    UNCERTAIN,
    Ledger,
    LedgerEntry,
    LedgerError,
)
from airflow_provider_aiq_braze.delivery.outcomes import STOPPING, outcome
from airflow_provider_aiq_braze.delivery.progress import Progress, TaskLog
from airflow_provider_aiq_braze.delivery.records import Deliverable, Record, Rejected, Skipped, materialized
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.delivery.storage import JsonlWriter
from airflow_provider_aiq_braze.storage import unwritable

#: The interpreter's thread switch interval while a delivery runs (seconds).
SENDING_SWITCH_INTERVAL = 0.05


class Sender(Protocol):
    """What the engine needs from the Braze client."""

    def send(
        self,
        endpoint: str,
        body: bytes,
        *,
        safe_to_retry: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> BrazeResponse:
        """Send one request body under the retry policy and return its final verdict.

        ``before_send`` must be called right before each attempt goes on the wire; what it raises
        must propagate (then nothing was sent).
        """
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
    """The run stopped before delivering everything; what was delivered is in the ledger.

    :param counts: the accounting at the time of the failure.
    :param reason: what stopped it, and what to do.
    :param setup: whether the cause is the setup (connection, permissions, ``batch_size``, the
        rejects or ledger location): a retry cannot succeed before it is fixed.
    :param status: the HTTP status of Braze's answer, when there was one.
    """

    def __init__(
        self, counts: DeliveryCounts, reason: str, *, setup: bool = False, status: int | None = None
    ):
        self.counts = counts
        self.reason = reason
        self.setup = setup
        self.status = status
        retry = "a retry once this is fixed" if setup else "a retry"
        super().__init__(
            f"{reason.rstrip('. ')}. Delivery stopped: {counts.sent} rows delivered, {counts.failed} not "
            f"sent (sent by {retry}); batches Braze accepted or refused are recorded in the ledger and "
            "are not sent again."
        )


#: Called for each accepted batch with its ``dispatch_id`` (if any) and whether it was accepted
#: in an earlier attempt (found in the ledger) rather than now.
AcceptedCallback = Callable[[Batch, "str | None", bool], None]


@dataclass(frozen=True)
class _Attempt:
    """What a sender thread brings back: Braze's final answer (if any) and the outcome it recorded.

    :param response: the answer, when the request was sent.
    :param state: the ledger state of the outcome (``accepted``, ``refused``, ``uncertain``,
        ``not_sent``).
    :param info: what the ledger recorded with it (``rejected`` by index, ``reason``, …).
    :param setup: for a batch not sent: whether the cause is the setup.
    :param ledger_error: why the outcome could not be written to the ledger, if it could not.
    """

    response: BrazeResponse | None
    state: str
    info: dict[str, Any]
    setup: bool = False
    ledger_error: str = ""


@dataclass(frozen=True)
class _Failure:
    reason: str
    setup: bool
    status: int | None = None


class _Stopped(Exception):
    """Raised right before sending when the run is stopping: the request is not sent."""


class DeliveryEngine:
    """Batch, send and account for one run.

    :param spec: how objects become requests.
    :param sender: the Braze client (``None`` in a dry run).
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
        self._inflight: dict[Future[_Attempt], Batch] = {}
        # finished requests, queued by their own callbacks: no polling of every future in flight
        self._completed: queue.SimpleQueue[Future[_Attempt]] = queue.SimpleQueue()
        self._failure: _Failure | None = None
        self._stop = threading.Event()
        self._executor: ThreadPoolExecutor | None = None

    # -- public -----------------------------------------------------------------------------

    def run(self, records: Iterable[Record]) -> DeliveryCounts:
        """Deliver every record; return the counts (checked against the invariant).

        :param records: the operator's records, in a deterministic order.
        :raises DeliveryFailed: when the run had to stop (see the class docstring).
        """
        retries_before = self._sender.retries if self._sender is not None else 0
        self._check_locations()
        if self._failure is None and self._sender is not None and self._dry_run_bodies is None:
            self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="braze-sender")
        # The calling thread reads and validates (CPU) while the senders mostly wait on the network.
        # Python's default 5 ms switch interval makes the reader hand the GIL over far more often
        # than the senders need it; 50 ms measured 15% more events/s (see docs/performance.md).
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(max(switch_interval, SENDING_SWITCH_INTERVAL))
        try:
            try:
                self._deliver(records)
            finally:
                self._drain()  # every request in flight is settled, even when reading failed
        finally:
            sys.setswitchinterval(switch_interval)
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
            self._close_files()
        if self._sender is not None:
            self.counts.retries = self._sender.retries - retries_before
        if self._failure is not None:
            self.counts.failed += self.counts.unaccounted()
            failure = self._failure
            raise DeliveryFailed(self.counts, failure.reason, setup=failure.setup, status=failure.status)
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
            if self._failure is None:
                try:
                    for batch in self._batcher.add(record):
                        self._dispatch(batch)
                except OversizedObjectError as exc:
                    self.reject(record.file, record.row, str(exc), record.raw, record.rows)
                except BrazeError as exc:  # e.g. creating a campaign's send_id for its first batch
                    setup = isinstance(exc, BrazeConfigError) or (
                        isinstance(exc, BrazeApiError) and exc.status in (401, 403, 404)
                    )
                    self._fail(str(exc), setup=setup, status=getattr(exc, "status", None))
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
        try:
            self._rejects.write({"file": file, "row": row, "reason": reason, "data": materialized(raw, row)})
        except OSError as exc:
            self._fail(_unwritable_message("rejects file", self._rejects.path, describe(exc)), setup=True)

    # -- the run ----------------------------------------------------------------------------

    def _deliver(self, records: Iterable[Record]) -> None:
        if self._failure is not None:
            return
        for record in records:
            self.add(record)
            if self._failure is not None:
                return
        for batch in self._batcher.flush():
            self._dispatch(batch)

    def _check_locations(self) -> None:
        """Refuse, before anything is sent, a rejects or ledger location that cannot be written."""
        files = [("rejects file", self._rejects.path)]
        if self._ledger is not None:
            files.append(("ledger", self._ledger.path))
        if self._dry_run_bodies is not None:
            files.append(("dry-run file", self._dry_run_bodies.path))
        for what, path in files:
            problem = unwritable(path)
            if problem is not None:
                self._fail(_unwritable_message(what, path, problem) + " Nothing was sent.", setup=True)
                return

    def _fail(self, reason: str, *, setup: bool, status: int | None = None) -> None:
        """Stop sending (requests in flight finish); the first cause is the one reported."""
        if self._failure is None:
            self._failure = _Failure(reason, setup, status)
            self._log.error("Delivery stops: %s", reason)
        self._stop.set()

    def _close_files(self) -> None:
        writers: list[tuple[str, Any]] = [("rejects file", self._rejects), ("ledger", self._ledger)]
        writers.append(("dry-run file", self._dry_run_bodies))
        for what, writer in writers:
            if writer is None:
                continue
            try:
                writer.close()
            except (OSError, LedgerError) as exc:
                self._fail(
                    str(exc) if isinstance(exc, LedgerError) else f"Cannot write the {what}: {exc}",
                    setup=True,
                )

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
        if entry is not None and entry.outcome == REFUSED:
            self._refused_earlier(batch, entry)
            return
        if entry is not None and entry.outcome == UNCERTAIN and not self._resend_uncertain:
            self._count_uncertain(
                batch, "outcome unknown in an earlier attempt; not resent (resend_uncertain=True resends it)"
            )
            return
        if self._dry_run_bodies is not None:
            try:
                self._dry_run_bodies.write_line(batch.body.decode())
            except OSError as exc:
                self._fail(
                    _unwritable_message("dry-run file", self._dry_run_bodies.path, describe(exc)), setup=True
                )
            self.counts.requests += 1
            self.counts.sent += batch.rows
            self.counts.objects_sent += len(batch.items)
            return
        self._pending.append(batch)
        self._pump(block=len(self._inflight) >= 2 * self._max_workers)

    def _pump(self, *, block: bool) -> None:
        """Collect finished requests and start pending ones, keeping at most twice the workers queued."""
        if block and self._inflight:
            self._settle(self._completed.get())
        while True:  # every request finished so far, in completion order
            try:
                future = self._completed.get_nowait()
            except queue.Empty:
                break
            self._settle(future)
        room = 2 * self._max_workers - len(self._inflight)
        if room <= 0 or not self._pending or self._failure is not None:
            return
        starting, self._pending = self._pending[:room], self._pending[room:]
        assert self._executor is not None
        for batch in starting:
            future = self._executor.submit(self._send, batch)
            self._inflight[future] = batch
            future.add_done_callback(self._completed.put)

    def _drain(self) -> None:
        while self._pending or self._inflight:
            if self._failure is not None:
                for batch in self._pending:  # never handed to a sender: not sent
                    self.counts.failed += batch.rows
                self._pending = []
            if not self._inflight and not self._pending:
                break
            self._pump(block=True)

    def _send(self, batch: Batch) -> _Attempt:
        """Send one batch and record its outcome in the ledger (in a sender thread); never raises.

        The outcome is recorded here, as soon as the answer is in, so that a crash leaves without
        an outcome only the requests that were on the wire.
        """
        assert self._sender is not None
        on_wire = False

        def before_send() -> None:
            nonlocal on_wire
            if self._stop.is_set():
                raise _Stopped
            if self._ledger is not None:
                self._ledger.intend(batch)  # durable before the request leaves the process
            on_wire = True

        try:
            response = self._sender.send(
                self.spec.endpoint, batch.body, safe_to_retry=self.spec.safe_to_retry, before_send=before_send
            )
        except _Stopped:
            stopped = _Attempt(None, NOT_SENT, {"reason": "the run stopped before this batch was sent"})
            # an earlier attempt (a 5xx: nothing processed) left an intent: close it as not sent
            return self._recorded(batch, stopped) if on_wire else stopped
        except LedgerError as exc:
            if on_wire:  # an earlier attempt of this request may have reached Braze
                reason = f"an earlier attempt may have reached Braze; then: {exc}"
                return self._recorded(batch, _Attempt(None, UNCERTAIN, {"reason": reason}))
            return _Attempt(None, NOT_SENT, {"reason": str(exc)}, setup=True)
        except Exception as exc:  # a sender thread's failure is classified, never lost
            what = describe(exc)
            if on_wire:
                reason = f"{what} while the request may have been on the wire"
                return self._recorded(batch, _Attempt(None, UNCERTAIN, {"reason": reason}))
            setup = isinstance(exc, BrazeConfigError)
            self._stop.set()
            unsent = _Attempt(None, NOT_SENT, {"reason": f"{what} before the request was sent"}, setup=setup)
            return self._recorded(batch, unsent)
        if response.verdict in STOPPING:
            self._stop.set()  # at once: no other sender starts a request (the calling thread reports it)
        state, info = outcome(batch, response, self.spec.array)
        return self._recorded(batch, _Attempt(response, state, info))

    def _recorded(self, batch: Batch, attempt: _Attempt) -> _Attempt:
        """Write an attempt's outcome to the ledger; a failure to write is carried to the calling thread."""
        if self._ledger is None:
            return attempt
        try:
            self._ledger.record(batch, attempt.state, **attempt.info)
        except LedgerError as exc:
            return replace(attempt, ledger_error=str(exc))
        return attempt

    def _settle(self, future: Future[_Attempt]) -> None:
        batch = self._inflight.pop(future)
        try:
            attempt = future.result()
        except CancelledError:
            attempt = _Attempt(None, NOT_SENT, {"reason": "the run stopped before this batch was sent"})
        if attempt.ledger_error:
            self._fail(attempt.ledger_error, setup=True)
        response, info = attempt.response, attempt.info
        if response is not None:
            self.counts.requests += 1
        if attempt.state == ACCEPTED:
            assert response is not None
            self._accepted(batch, response, info["rejected"])
        elif attempt.state == REFUSED:
            assert response is not None
            self._refused(batch, response, info["rejected"])
        elif attempt.state == UNCERTAIN:
            self._count_uncertain(batch, info["reason"])
        else:
            self.counts.failed += batch.rows
            if response is not None:
                setup = response.verdict is Verdict.SETUP_ERROR
                message = f"Braze {response.endpoint} (batch {batch.seq}): {info['reason']}"
                self._fail(message, setup=setup, status=response.status)
            elif attempt.setup:
                self._fail(info["reason"], setup=True)
            elif self._failure is None:
                self._fail(f"Batch {batch.seq} could not be sent: {info['reason']}", setup=False)

    def _accepted(self, batch: Batch, response: BrazeResponse, rejected: dict[int, str]) -> None:
        self._count_accepted(batch, rejected, earlier=False)
        if response.unmapped_errors:
            self._log.warning(
                "Batch %d: Braze reported errors that name no object: %s",
                batch.seq,
                [e.type for e in response.unmapped_errors],
            )
        if response.items_unknown:
            self._log.warning("Batch %d: %s", batch.seq, response.reason)
        if self._on_accepted is not None:
            self._on_accepted(batch, response.dispatch_id, False)

    def _refused(self, batch: Batch, response: BrazeResponse, refused: dict[int, str]) -> None:
        """Braze refused objects (``refused_items``) or the whole request (``refused``)."""
        rest = self._batcher.remainder(batch, refused) if batch.parent is None else None
        self._log.warning(
            "Batch %d: Braze refused %d of its %d objects (HTTP %s)%s.",
            batch.seq,
            len(refused),
            len(batch.items),
            response.status,
            "; the others go again in a request of their own" if rest is not None else "",
        )
        self._reject_items(batch, refused, "Braze rejected: ")
        if rest is not None:
            self._dispatch(rest)

    def _refused_earlier(self, batch: Batch, entry: LedgerEntry) -> None:
        refused = self._in_batch(batch, entry.rejected)
        self._reject_items(batch, refused, "Braze rejected this object in an earlier attempt: ")
        if batch.parent is None and len(refused) < len(batch.items):
            rest = self._batcher.remainder(batch, refused)
            if rest is not None:
                self._dispatch(rest)

    def _count_accepted(self, batch: Batch, rejected: dict[int, str], *, earlier: bool) -> dict[int, str]:
        """Reject the objects Braze named; count the rest as sent (unless ``earlier``)."""
        valid = self._in_batch(batch, rejected)
        prefix = "Braze rejected this object in an earlier attempt: " if earlier else "Braze rejected: "
        self._reject_items(batch, valid, prefix)
        if not earlier:
            self.counts.sent += batch.rows - sum(batch.items[i].rows for i in valid)
            self.counts.objects_sent += len(batch.items) - len(valid)
        return valid

    @staticmethod
    def _in_batch(batch: Batch, by_index: dict[int, str]) -> dict[int, str]:
        return {i: reason for i, reason in by_index.items() if 0 <= i < len(batch.items)}

    def _reject_items(self, batch: Batch, refused: dict[int, str], prefix: str) -> None:
        for index, reason in sorted(refused.items()):
            item = batch.items[index]
            self.reject(item.file, item.row, prefix + reason, item.raw, item.rows)

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


def _unwritable_message(what: str, path: ObjectStoragePath, problem: str) -> str:
    where = "rejects_path" if what == "rejects file" else "state_path"
    return f"Cannot write the {what} {path}: {problem}. Point {where} at a writable location."
