"""``BrazeAudienceMembershipOperator``: audience splits as ``AIQ_*`` boolean attributes, deltas only."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pyarrow as pa

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.arguments import ContractError
from airflow_provider_aiq_braze.audiences import (
    DEFAULT_ATTRIBUTE_TEMPLATE,
    INPUT_KINDS,
    MODES,
    STATE_IDENTIFIER_COLUMNS,
    DeltaInput,
    DeltaPlan,
    SnapshotStore,
    compute_delta,
)
from airflow_provider_aiq_braze.delivery.batching import Batch
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.input import read_input
from airflow_provider_aiq_braze.delivery.paths import RunPaths
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Deliverable, Record, Rejected, Skipped
from airflow_provider_aiq_braze.delivery.result import DeliveryCounts
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from airflow_provider_aiq_braze.operators.base import BrazeDeliveryOperator
from airflow_provider_aiq_braze.staging import ROW_NUMBER_COLUMN, StagedFile

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
    :param snapshot_key: this snapshot's point in time (templated; default the run's data interval
        end). A snapshot older than the applied one is skipped unless ``force=True``.
    :param state_namespace: the namespace of the applied state under ``state_path``
        (default: ``braze_conn_id``, i.e. one state per Braze workspace connection).
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
        self.check_arguments(rendered=False)
        self._plan: DeltaPlan | None = None
        self._store: SnapshotStore | None = None
        self._work_dir: str | None = None
        self._key = ""
        self._failed_attributes: set[str] = set()
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
        """Work out the snapshot key and open the applied state.

        :param hook: the Braze hook, ``None`` in a dry run.
        :param context: the task context.
        :param paths: the run's files.
        """
        self._key = self.snapshot_key or _interval_key(context)
        if not self._key:
            raise ContractError(
                "snapshot_key is empty and the run has no data interval, logical date or run_after: "
                "pass snapshot_key (e.g. '{{ data_interval_end | ts }}')"
            )
        self._store = SnapshotStore(paths.root / "audiences", self.state_namespace or self.braze_conn_id)
        self._failed_attributes = set()
        self._data_points = 0

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
        self.log.info(
            "Delta for snapshot %s: %d entered, %d exited, %d unchanged, %d attribute writes for %d profiles "
            "(a full re-sync would write %d)",
            self._key,
            counts.entered,
            counts.exited,
            counts.unchanged,
            counts.data_points,
            counts.profiles,
            counts.full_resync_data_points,
        )
        yield from unreadable
        for reject in plan.iter_rejects():
            yield Rejected(reject.file, reject.row, reject.reason, reject.row_dict)
        if counts.duplicates:
            yield Skipped("duplicate row", counts.duplicates)
        for skipped in plan.skipped_splits:
            self.log.warning(
                "Split %s/%s not applied: %s", skipped.audience_id, skipped.split_id, skipped.reason
            )
            if skipped.rows:
                yield Skipped(f"split not applied: {skipped.reason}", skipped.rows)
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
        assert plan is not None and self._store is not None
        try:
            delta = plan.counts
            result.update(
                snapshot_key=self._key,
                entered=delta.entered,
                exited=delta.exited,
                unchanged=delta.unchanged,
                members=delta.members,
                data_points=self._data_points if not self.is_dry_run else delta.data_points,
                data_points_full_resync=delta.full_resync_data_points,
                skipped_splits=[
                    {"audience_id": s.audience_id, "split_id": s.split_id, "reason": s.reason}
                    for s in plan.skipped_splits
                ],
                splits={
                    key: {
                        "entered": s.entered,
                        "exited": s.exited,
                        "unchanged": s.unchanged,
                        "members": s.members,
                    }
                    for key, s in delta.splits.items()
                },
            )
            if self.is_dry_run:
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
            committed = plan.commit(self._store)
            result["state_committed"] = True
            self.log.info("Committed the state of %d split(s) at snapshot %s", len(committed), self._key)
        finally:
            plan.close()
            if self._work_dir:
                shutil.rmtree(self._work_dir, ignore_errors=True)

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


def _interval_key(context: Context) -> str:
    for name in ("data_interval_end", "logical_date"):
        value: Any = context.get(name)
        if value is not None:
            return str(value.isoformat())
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    return str(run_after.isoformat()) if run_after is not None else ""
