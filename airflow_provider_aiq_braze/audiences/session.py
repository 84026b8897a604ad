"""One run's exclusive hold on a namespace of audience state, from reading it to committing it.

Two runs on one namespace (a backfill beside the nightly run, two instances of one task) would
each compute a delta against the same applied state and both send; the older one's writes could
land after the newer one's. So a run takes the namespace's lease
(:class:`~airflow_provider_aiq_braze.delivery.ownership.LedgerLease` on ``+lease.json``) before it
reads the state and holds it through delivery to the commit; the next run waits for it and then
computes against what the first committed. Around that:

* before its first write the run stores a *pending marker* naming the profiles it writes
  (:meth:`~airflow_provider_aiq_braze.audiences.delta.DeltaPlan.publish_pending`), removed once a
  matching state is committed: a run that died or lost its lease leaves it, and the next run
  rewrites those profiles (see ``docs/audiences.md``);
* the commit is a compare-and-swap on the manifest version the delta was computed against, and
  the lease is checked right before it and before each request;
* the task's ledger says which batches Braze accepted in earlier attempts; that holds only while
  no other run wrote to the namespace since, so the namespace records its last writer and a run
  that is not it starts its ledger afresh.
"""

from __future__ import annotations

import logging

from airflow_provider_aiq_braze.audiences.delta import DeltaPlan
from airflow_provider_aiq_braze.audiences.state import SnapshotStore, writer_digest
from airflow_provider_aiq_braze.delivery.ownership import LeaseSettings, LedgerLease, OwnerId

log = logging.getLogger(__name__)


class NamespaceSession:
    """A run's lease on one namespace of audience state and what it writes under it.

    :param store: the namespace's state.
    :param owner: who holds the lease (host, pid, try, label).
    :param settings: the lease's TTL and how long to wait for another run.
    """

    def __init__(self, store: SnapshotStore, *, owner: OwnerId, settings: LeaseSettings) -> None:
        self.store = store
        self.owner = owner
        self.lease = LedgerLease(
            store.lease_path,
            owner=owner,
            settings=settings,
            owned=f"Another run owns the audience state of namespace {store.namespace!r}",
            advice=(
                "Audience runs of one namespace take turns. If that run is dead, a retry takes over once "
                "its lease expires; otherwise let it finish (this run then computes its delta against "
                "what that one committed), or raise state_lease_wait."
            ),
        )

    def acquire(self) -> None:
        """Take the namespace's lease, waiting for another run to finish.

        :raises LeaseHeld: another run still holds it after the wait.
        :raises ConditionalWritesUnsupported: the state's storage cannot make it exclusive.
        """
        log.info(
            "Taking the lease of audience state namespace %r (%s); another run of this namespace makes "
            "this one wait up to %.0f s.",
            self.store.namespace,
            self.store.lease_path,
            self.lease.settings.wait,
        )
        self.lease.acquire()

    def check(self) -> None:
        """Raise :class:`~airflow_provider_aiq_braze.delivery.ownership.LeaseLost` unless this run
        still holds the lease (call it right before each request)."""
        self.lease.check()

    def trusts_ledger(self, ledger: str) -> bool:
        """Whether the batches an earlier attempt recorded in ``ledger`` as accepted still hold in
        Braze: no other run wrote to this namespace since that attempt (the last writer is this
        task, and no other run left a pending marker, e.g. after losing its lease).

        :param ledger: the task's ledger path.
        """
        if self.store.last_writer() != ledger:
            return False
        return self.store.pending_writers() <= {writer_digest(ledger)}

    def start_writing(self, plan: DeltaPlan, ledger: str) -> None:
        """Store the plan's pending marker and record this run as the namespace's last writer;
        call it before the first request.

        :param plan: the plan about to be delivered.
        :param ledger: the task's ledger path.
        """
        self.check()
        if plan.publish_pending(self.store, ledger) is not None:
            self.store.set_last_writer(ledger, self.owner.describe())

    def commit(self, plan: DeltaPlan) -> list[tuple[str, str]]:
        """Commit the plan's new state (compare-and-swap) and settle pending markers.

        :param plan: the delivered plan.
        :raises ~airflow_provider_aiq_braze.delivery.ownership.LeaseLost: the lease was lost before
            the commit (nothing committed).
        :raises StateConflict: another run committed meanwhile (see :meth:`DeltaPlan.commit`).
        """
        self.check()
        return plan.commit(self.store)

    def abandon(self, plan: DeltaPlan | None) -> None:
        """After a failure: if the lease was lost, store the plan's marker again under a new name.

        A run that took the lease over may have rewritten this run's profiles and removed its
        marker before this run's last request landed; the copy makes the next run rewrite them.

        :param plan: the plan being delivered, if any.
        """
        if plan is None or plan.own_marker is None or self.lease.held:
            return
        try:
            name = plan.republish_pending(self.store)
        except Exception as exc:  # the original marker may still be there; nothing more to do
            log.warning("Could not store the pending marker again after losing the lease: %s", exc)
            return
        log.warning(
            "This run lost the lease of namespace %r while delivering: its profiles are named again in the "
            "pending marker %s, so the next run of the namespace rewrites them.",
            self.store.namespace,
            name,
        )

    def release(self) -> None:
        """Let the next run in (idempotent)."""
        self.lease.release()
