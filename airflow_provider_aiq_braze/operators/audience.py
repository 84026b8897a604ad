"""``BrazeAudienceMembershipOperator``: audience splits as ``AIQ_*`` boolean attributes, deltas only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pyarrow as pa

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.arguments import ContractError
from airflow_provider_aiq_braze.audiences import (
    DEFAULT_ATTRIBUTE_TEMPLATE,
    INPUT_KINDS,
    MODES,
    STATE_IDENTIFIER_COLUMNS,
    DeltaInput,
    DeltaPlan,
    SnapshotKeyError,
    SnapshotStore,
    StateConflict,
    checked_snapshot_key,
    compute_delta,
)
from airflow_provider_aiq_braze.audiences.session import NamespaceSession
from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.input import read_input
from airflow_provider_aiq_braze.delivery.ledger import Ledger
from airflow_provider_aiq_braze.delivery.ownership import LeaseHeld, LeaseLost, LeaseSettings, OwnerId
from airflow_provider_aiq_braze.delivery.paths import RunPaths, TaskIdentity
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Deliverable, Record, Rejected, Skipped
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.operators.base import BrazeDeliveryOperator, task_identity
from airflow_provider_aiq_braze.staging import ROW_NUMBER_COLUMN, StagedFile
from airflow_provider_aiq_braze.storage import ConditionalWritesUnsupported, read_jsonl

if TYPE_CHECKING:
    from airflow.sdk import Context


class BrazeAudienceMembershipOperator(BrazeDeliveryOperator):
    """Sync ActionIQ audience membership to Braze, sending only what changed.

    Each audience split becomes the boolean custom attribute ``AIQ_<audience>_<split>``: profiles
    that entered get ``true``, profiles that left get ``exit_value``, the others nothing. Every
    argument of :class:`~airflow_provider_aiq_braze.operators.base.BrazeDeliveryOperator` applies
    (with ``resend_uncertain=True`` by default: attribute writes are idempotent), plus:

    :param audience_id: the audience of every row, for single-audience files (templated).
    :param split_id: the split of every row, for single-split files (templated).
    :param audience_id_column: the audience column.
    :param split_id_column: the split column.
    :param external_id_column: the ``external_id`` column.
    :param braze_id_column: the ``braze_id`` column.
    :param member_column: for ``input_kind="changes"``, the column saying whether the profile is a member.
    :param input_kind: ``snapshot`` (the files list every member) or ``changes`` (enter/exit rows).
    :param attribute_columns: other columns set as custom attributes of the same name, deltas only.
    :param attribute_template: the membership attribute name (``{audience_id}``, ``{split_id}``).
    :param mode: ``delta`` sends only changes; ``full`` re-sends every member and exit (repair).
    :param exit_value: ``False`` (default) or ``None`` to remove the attribute of a leaving profile.
    :param identifier_preference: which identifier to send when a row has both.
    :param update_existing_only: never create a profile just to hold a segment flag (default).
    :param snapshot_key: this snapshot's point in time, an ISO 8601 date or date-time (templated;
        default the run's data interval end). A snapshot older than the applied one is skipped
        unless ``force=True``.
    :param state_namespace: the namespace of the applied state under ``state_path``
        (default: ``braze_conn_id``, i.e. one state per Braze workspace connection).
    :param state_lease_wait: seconds a run waits for another run of the same namespace to finish
        (runs of one namespace take turns, from reading the state to committing it) before it fails
        and is retried.
    :param state_lease_ttl: seconds the namespace's lease lives without renewal: a run that died is
        taken over after about this long.
    :param require_exclusive: on a ``state_path`` without conditional writes (not local, NFS with
        locks or S3), refuse to run (``True``) or run without the lease and compare-and-swap after
        a warning (``False``).
    """

    template_fields: Sequence[str] = (
        *BrazeDeliveryOperator.template_fields,
        "audience_id",
        "split_id",
        "snapshot_key",
    )
    kind: ClassVar[str] = "audience"

    def __init__(
        self,
        *,
        audience_id: str | None = None,
        split_id: str | None = None,
        audience_id_column: str = "audience_id",
        split_id_column: str = "split_id",
        external_id_column: str = "external_id",
        braze_id_column: str = "braze_id",
        member_column: str = "member",
        input_kind: Literal["snapshot", "changes"] = "snapshot",
        attribute_columns: Sequence[str] = (),
        attribute_template: str = DEFAULT_ATTRIBUTE_TEMPLATE,
        mode: Literal["delta", "full"] = "delta",
        exit_value: bool | None = False,
        identifier_preference: Sequence[str] = ("external_id", "braze_id"),
        update_existing_only: bool = True,
        snapshot_key: str | None = None,
        state_namespace: str | None = None,
        state_lease_wait: float = 600.0,
        state_lease_ttl: float = 60.0,
        require_exclusive: bool = True,
        resend_uncertain: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(resend_uncertain=resend_uncertain, **kwargs)
        self.audience_id = audience_id
        self.split_id = split_id
        self.audience_id_column = audience_id_column
        self.split_id_column = split_id_column
        self.external_id_column = external_id_column
        self.braze_id_column = braze_id_column
        self.member_column = member_column
        self.input_kind = input_kind
        self.attribute_columns = attribute_columns
        self.attribute_template = attribute_template
        self.mode = mode
        self.exit_value = exit_value
        self.identifier_preference = identifier_preference
        self.update_existing_only = update_existing_only
        self.snapshot_key = snapshot_key
        self.state_namespace = state_namespace
        self.state_lease_wait = state_lease_wait
        self.state_lease_ttl = state_lease_ttl
        self.require_exclusive = require_exclusive
        self._lease_settings = _lease_settings(state_lease_wait, state_lease_ttl, require_exclusive)
        self.check_arguments(rendered=False)
        self._plan: DeltaPlan | None = None
        self._store: SnapshotStore | None = None
        self._session: NamespaceSession | None = None
        self._ledger = ""
        self._work_dir: str | None = None
        self._key = ""
        self._data_points = 0

    def argument_checks(self) -> dict[str, Callable[[Any], Any]]:
        """The base operator's checks, plus the membership columns, kinds and modes."""
        a = arguments
        columns = (
            "audience_id_column",
            "split_id_column",
            "external_id_column",
            "braze_id_column",
            "member_column",
        )
        return {
            **super().argument_checks(),
            "audience_id": lambda v: a.identifier_argument("audience_id", v),
            "split_id": lambda v: a.identifier_argument("split_id", v),
            **{name: partial(a.column_name, name) for name in columns},
            "input_kind": lambda v: a.choice("input_kind", v, INPUT_KINDS),
            "attribute_columns": lambda v: a.attribute_columns(
                "attribute_columns",
                v,
                reserved=STATE_IDENTIFIER_COLUMNS,
                reserved_by="the audience state's own columns",
            ),
            "attribute_template": a.attribute_template,
            "mode": lambda v: a.choice("mode", v, MODES),
            "exit_value": lambda v: a.choice("exit_value", v, (False, None)),
            "identifier_preference": a.identifier_preference,
            "update_existing_only": lambda v: a.flag("update_existing_only", v),
            "snapshot_key": _checked_snapshot_key,
            "state_namespace": lambda v: a.text("state_namespace", v, optional=True),
        }

    # -- engine hooks ------------------------------------------------------------------------

    def prepare(self, hook: BrazeHook | None, context: Context, paths: RunPaths) -> None:
        """Check the snapshot key, then take the namespace's lease (waiting for another run of it).

        :param hook: the Braze hook, ``None`` in a dry run.
        :param context: the task context.
        :param paths: the run's files.
        """
        key, origin = (
            (self.snapshot_key, "the snapshot_key argument") if self.snapshot_key else _interval_key(context)
        )
        if not key:
            raise ContractError(
                "snapshot_key is empty and the run has no data interval, logical date or run_after: "
                "pass snapshot_key (e.g. '{{ data_interval_end | ts }}')"
            )
        try:
            checked_snapshot_key(key, origin)
        except SnapshotKeyError as exc:
            raise ContractError(str(exc)) from None
        self._key = key
        self._store = SnapshotStore(paths.root / "audiences", self.state_namespace or self.braze_conn_id)
        self._ledger = str(paths.ledger)
        self._data_points = 0
        if self.is_dry_run:
            return  # a dry run reads the state, writes nothing: no lease
        identity = task_identity(context)
        self._session = NamespaceSession(
            self._store, owner=_owner(identity, key), settings=self._lease_settings
        )
        try:
            self._session.acquire()
        except LeaseHeld as exc:
            raise AirflowException(str(exc)) from None
        except ConditionalWritesUnsupported as exc:
            raise AirflowFailException(str(exc)) from None
        if not self.force and not self._session.trusts_ledger(self._ledger):
            _start_ledger_afresh(paths, identity, self.log)

    def request_guard(self) -> Callable[[], None] | None:
        """Stop before a request once the namespace's lease is lost."""
        return self._session.check if self._session is not None else None

    def request_spec(self) -> RequestSpec:
        """Attribute objects in ``/users/track``; safe to resend (idempotent writes)."""
        return self.users_track_spec("attributes", self.batch_size, safe_to_retry=True)

    def records(self, files: list[StagedFile], progress: Progress) -> Iterator[Record]:
        """Compute the delta on DuckDB, then yield rejects, skips and one update per profile.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        assert self._store is not None
        unreadable: list[Rejected] = []
        self._work_dir = tempfile.mkdtemp(prefix="aiq-braze-audience-")
        plan = compute_delta(
            DeltaInput(
                batches=self._batches(files, progress, unreadable),
                audience_col=self.audience_id_column,
                split_col=self.split_id_column,
                external_id_col=self.external_id_column,
                braze_id_col=self.braze_id_column,
                member_col=self.member_column if self.input_kind == "changes" else None,
                audience_id=self.audience_id or None,
                split_id=self.split_id or None,
                attribute_columns=self.attribute_columns,
                identifier_preference=self.identifier_preference,
                input_kind=self.input_kind,
            ),
            self._store,
            mode=self.mode,
            exit_value=self.exit_value,
            attribute_template=self.attribute_template,
            work_dir=self._work_dir,
            force=self.force,
            snapshot_key=self._key,
        )
        self._plan = plan
        counts = plan.counts
        self._log_plan(plan)
        yield from unreadable
        for reject in plan.iter_rejects():
            yield Rejected(reject.file, reject.row, reject.reason, reject.row_dict)
        if counts.duplicates:
            yield Skipped("duplicate row", counts.duplicates)
        for skipped in plan.skipped_splits:
            if skipped.rows:
                yield Skipped(f"split not applied: {skipped.reason}", skipped.rows)
        if self._session is not None:
            try:
                self._session.start_writing(plan, self._ledger)
            except LeaseLost as exc:
                raise AirflowException(f"{exc}. Nothing was sent.") from None
        unchanged_rows = counts.rows_read - counts.rejected - counts.duplicates - counts.skipped_rows
        for update in plan.iter_updates():
            obj: dict[str, Any] = {update.identifier_kind: update.identifier, **update.attributes}
            if self.update_existing_only:
                obj["_update_existing_only"] = True
            unchanged_rows -= update.rows
            yield Deliverable("", 0, obj, rows=update.rows, raw=obj)
        if unchanged_rows:
            yield Skipped("no change to send", unchanged_rows)

    def on_accepted(self, batch: Batch, dispatch_id: str | None, earlier: bool) -> None:
        """Count the attribute writes Braze accepted in this run (its data points).

        :param batch: the batch.
        :param dispatch_id: unused.
        :param earlier: whether it was accepted in an earlier attempt.
        """
        if not earlier:
            self._data_points += sum(_writes(item.obj) for item in batch.items)

    def finish(self, counts: DeliveryCounts, result: dict[str, Any], paths: RunPaths) -> None:
        """Commit the new state (unless this was a dry run or something was not delivered).

        :param counts: the run's counts.
        :param result: the result being built.
        :param paths: the run's files.
        """
        plan = self._plan
        assert plan is not None
        result.update(self._result_fields(plan))
        self._log_sent(plan, counts)
        if self.is_dry_run or self._session is None:
            result["state_committed"] = False
            return
        if counts.uncertain or counts.failed:
            result["state_committed"] = False
            self.log.warning(
                "State not committed: %d rows uncertain; the next run recomputes the same delta "
                "(attribute writes are idempotent).",
                counts.uncertain,
            )
            return
        try:
            committed = self._session.commit(plan)
        except (LeaseLost, StateConflict) as exc:
            raise AirflowException(
                f"{exc}. The profiles this run wrote stay named in its pending marker: a retry (or the "
                "next run of this namespace) computes against the state now applied and rewrites them."
            ) from None
        result["state_committed"] = True
        self.log.info("Committed the state of %d split(s) at snapshot %s", len(committed), self._key)
        blocked = [s for s in plan.skipped_splits if s.needs_force]
        if blocked:
            raise AirflowFailException(
                "; ".join(f"audience {s.audience_id!r} split {s.split_id!r}: {s.reason}" for s in blocked)
            )

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the sync; whatever happens, close the delta, remove its files and release the lease."""
        try:
            return super().execute(context)
        finally:
            self._close()

    def _close(self) -> None:
        """End the run's hold on the state: a run that lost its lease names its profiles again
        (a no-op once committed), then the delta is closed, its files removed, the lease released."""
        try:
            if self._session is not None:
                self._session.abandon(self._plan)
            if self._plan is not None:
                self._plan.close()
                self._plan = None
            if self._work_dir:
                shutil.rmtree(self._work_dir, ignore_errors=True)
                self._work_dir = None
        finally:
            if self._session is not None:
                self._session.release()
                self._session = None

    def _log_plan(self, plan: DeltaPlan) -> None:
        """Log the skipped splits, then the delta (only when some split is applied or repaired)."""
        for skipped in plan.skipped_splits:
            self.log.warning(
                "Split %s/%s not applied: %s", skipped.audience_id, skipped.split_id, skipped.reason
            )
        counts = plan.counts
        if not any(s.status == "computed" for s in counts.splits.values()):
            if counts.repaired:
                self.log.info(
                    "Snapshot %s applies to no split, but %d profiles an interrupted run may have changed "
                    "are rewritten to the applied state (%d attribute writes).",
                    self._key,
                    counts.repaired,
                    counts.data_points,
                )
            else:
                self.log.info(
                    "Nothing to apply from snapshot %s: every split was skipped (see above).", self._key
                )
            return
        self.log.info(
            "Delta for snapshot %s: %d profiles entered a split, %d exited, %d unchanged; %d repaired; "
            "%d attribute writes (data points) in %d profile updates (a full re-sync would write %d)",
            self._key,
            counts.entered,
            counts.exited,
            counts.unchanged,
            counts.repaired,
            counts.data_points,
            counts.profiles,
            counts.full_resync_data_points,
        )

    def _log_sent(self, plan: DeltaPlan, counts: DeliveryCounts) -> None:
        """One line relating ``sent`` (input rows) to the membership counts (profiles)."""
        delta = plan.counts
        self.log.info(
            "Membership: %d profile updates (%d split entries, %d exits, %d repairs, %d attribute changes "
            "= %d attribute writes). %s %d of these updates in this run, carrying sent=%d input rows (a "
            "profile that only exited has no row; one in several splits has a row in each); %d rows "
            "needed no update.",
            delta.profiles,
            delta.entered,
            delta.exited,
            delta.repaired,
            delta.attribute_updates,
            delta.data_points,
            "A dry run would send" if self.is_dry_run else "Braze accepted",
            counts.objects_sent,
            counts.sent,
            counts.skipped_reasons.get("no change to send", 0),
        )

    def _result_fields(self, plan: DeltaPlan) -> dict[str, Any]:
        delta = plan.counts
        return {
            "snapshot_key": self._key,
            "entered": delta.entered,
            "exited": delta.exited,
            "unchanged": delta.unchanged,
            "repaired": delta.repaired,
            "members": delta.members,
            "profiles_updated": delta.profiles,
            "data_points": self._data_points if not self.is_dry_run else delta.data_points,
            "data_points_full_resync": delta.full_resync_data_points,
            "skipped_splits": [
                {"audience_id": s.audience_id, "split_id": s.split_id, "reason": s.reason}
                for s in plan.skipped_splits
            ],
            "splits": {
                key: {
                    "entered": s.entered,
                    "exited": s.exited,
                    "unchanged": s.unchanged,
                    "repaired": s.repaired,
                    "members": s.members,
                }
                for key, s in delta.splits.items()
            },
        }

    # -- helpers -----------------------------------------------------------------------------

    def _batches(
        self, files: list[StagedFile], progress: Progress, unreadable: list[Rejected]
    ) -> Iterator[pa.RecordBatch]:
        """The membership rows for the delta: the shared input path, plus ``_file`` and ``_row``.

        :param files: the located input files.
        :param progress: to report each finished file.
        :param unreadable: collects the rows the readers could not read.
        """
        columns = [
            c
            for c in (
                None if self.audience_id else self.audience_id_column,
                None if self.split_id else self.split_id_column,
                self.external_id_column,
                self.braze_id_column,
                self.member_column if self.input_kind == "changes" else None,
                *self.attribute_columns,
            )
            if c
        ]
        required = [c for c in columns if c not in (self.external_id_column, self.braze_id_column)]
        staged = read_input(
            files,
            progress,
            columns=columns,
            required_columns=required,
            any_of_columns=[[self.external_id_column, self.braze_id_column]],
        )
        for item in staged:
            if isinstance(item, Rejected):
                unreadable.append(item)
                continue
            batch = item.with_json_cells().append_column("_row", item.batch.column(ROW_NUMBER_COLUMN))
            yield batch.append_column("_file", pa.array([item.file] * item.num_rows, pa.string()))


def _checked_snapshot_key(value: Any) -> str | None:
    """``snapshot_key``: text (rendered from a template) or ``None`` for the run's data interval end."""
    if value is None or isinstance(value, str):
        return value
    raise arguments.ArgumentError("snapshot_key", value, "text such as '2026-11-03T00:00:00+00:00', or None")


def _writes(obj: dict[str, Any] | None) -> int:
    """Attribute writes in an attribute object (identifiers and flags are not billed)."""
    assert obj is not None, "attribute objects are built as dicts"
    return sum(1 for key in obj if key not in ("external_id", "braze_id", "_update_existing_only"))


def _interval_key(context: Context) -> tuple[str, str]:
    """The run's default snapshot key and where it comes from."""
    for name, origin in (
        ("data_interval_end", "the run's data interval end"),
        ("logical_date", "the run's logical date"),
    ):
        value: Any = context.get(name)
        if value is not None:
            return str(value.isoformat()), origin
    run_after = getattr(context.get("dag_run"), "run_after", None)
    return (str(run_after.isoformat()), "the run's run_after") if run_after is not None else ("", "")


def _lease_settings(wait: float, ttl: float, require_exclusive: bool) -> LeaseSettings:
    """The namespace lease's settings (grace and polling scale with the TTL)."""
    for name, value, least in (("state_lease_wait", wait, 0.0), ("state_lease_ttl", ttl, 0.5)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= least:
            raise ValueError(f"{name} must be a number of seconds, at least {least:g}; got {value!r}")
    return LeaseSettings(
        ttl=float(ttl),
        wait=float(wait),
        poll_interval=min(2.0, ttl / 4),
        grace=ttl / 6,
        require_exclusive=bool(require_exclusive),
    )


def _owner(identity: TaskIdentity, key: str) -> OwnerId:
    label = f"{identity.dag_id}.{identity.task_id} {identity.run_id}, snapshot {key}"
    return OwnerId.current(try_number=identity.try_number, label=label)


def _start_ledger_afresh(paths: RunPaths, identity: TaskIdentity, log: Any) -> None:
    """Another run wrote to the namespace since this task's earlier attempts: what its ledger says
    Braze accepted may have been overwritten since, so the batches are sent again."""
    if next(iter(read_jsonl(paths.ledger)), None) is None:
        return  # no earlier attempt
    Ledger(paths.ledger, run_id=identity.run_id, try_number=identity.try_number, fresh=True).close()
    log.info(
        "Another run wrote to this audience state since this task's earlier attempts: the batches its "
        "ledger records as accepted are sent again (their profiles may have been rewritten since)."
    )
