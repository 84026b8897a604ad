"""The membership delta: what to write to Braze so its profiles match a new ActionIQ snapshot.

Everything runs in an in-memory DuckDB with a memory limit that spills to ``work_dir``: the
input batches stream in through an Arrow reader (:mod:`.normalise`), rows are validated in SQL
(:mod:`.rejects`), each split is planned (:mod:`.plan`), the new snapshot is joined with the
applied one (:mod:`.sql`), and the writes are streamed back out in identifier order.

The outcome is a :class:`DeltaPlan`: the updates grouped per profile, the rejected rows, counts
(:mod:`.counts`), and the new state files to commit once the updates were delivered.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import duckdb
import pyarrow as pa

from airflow_provider_aiq_braze.audiences.counts import DeltaCounts, count_delta
from airflow_provider_aiq_braze.audiences.keys import checked_snapshot_key
from airflow_provider_aiq_braze.audiences.model import (
    DEFAULT_ATTRIBUTE_TEMPLATE,
    DeltaInput,
    Mode,
    NewStateFile,
    Reject,
    SkippedSplit,
    SplitPlan,
    UserUpdate,
    check_config,
)
from airflow_provider_aiq_braze.audiences.normalise import _Normaliser
from airflow_provider_aiq_braze.audiences.plan import SplitPlanner
from airflow_provider_aiq_braze.audiences.rejects import iter_rejects, row_checks
from airflow_provider_aiq_braze.audiences.sql import DeltaSql, literal, one_row, text_table
from airflow_provider_aiq_braze.audiences.state import PendingMarker, SnapshotStore, StateConflict

log = logging.getLogger(__name__)


def compute_delta(
    inp: DeltaInput,
    store: SnapshotStore,
    *,
    mode: Mode = "delta",
    exit_value: bool | None = False,
    attribute_template: str = DEFAULT_ATTRIBUTE_TEMPLATE,
    work_dir: str,
    force: bool = False,
    snapshot_key: str,
    memory_limit: str = "300MB",
    threads: int = 2,
) -> DeltaPlan:
    """Compute the writes that bring Braze from the applied snapshots to this one.

    Splits in scope are those named by the input rows, plus the ``audience_id``/``split_id``
    arguments when both are given (so an empty single-split snapshot exits every member), plus
    those pending markers name (repaired only). A split whose applied snapshot is newer than
    ``snapshot_key`` is skipped; one whose applied key equals it was already delivered and is
    skipped too (nothing to send); ``force`` computes both against the applied state anyway.

    :param inp: the rows and how to read them.
    :param store: the applied state.
    :param mode: ``delta`` sends only changes; ``full`` re-sends every member and every exit.
    :param exit_value: what a leaving profile's attribute is set to: ``False``, or ``None`` to
        remove the attribute.
    :param attribute_template: the membership attribute name, from ``{audience_id}`` and
        ``{split_id}``.
    :param work_dir: a local directory for DuckDB's spill files, downloaded state and the new state
        files; it must outlive the plan (until :meth:`DeltaPlan.commit`).
    :param force: compute even when the applied snapshot is newer or the same.
    :param snapshot_key: this snapshot's key, an ISO 8601 date or date-time (see :mod:`.keys`).
    :param memory_limit: DuckDB's memory limit; beyond it DuckDB spills to ``work_dir``.
    :param threads: DuckDB's worker threads.
    :raises ValueError: a setting that cannot work (:func:`~.model.check_config`).
    :raises SnapshotKeyError: ``snapshot_key`` is not a date or date-time.
    """
    check_config(inp, mode=mode, exit_value=exit_value, attribute_template=attribute_template)
    snapshot_time = checked_snapshot_key(snapshot_key, "the snapshot_key argument")
    run_dir = os.path.join(work_dir, f"aiq-delta-{uuid.uuid4().hex[:12]}")
    os.makedirs(os.path.join(run_dir, "spill"), exist_ok=True)
    # in memory, spilling to work_dir beyond memory_limit: measured faster than a database file,
    # whose compressed writes cost more than the spill they avoid
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": threads,
            "memory_limit": memory_limit,
            "temp_directory": os.path.join(run_dir, "spill"),
            "preserve_insertion_order": False,
        },
    )
    sql = DeltaSql(inp.input_kind, tuple(inp.attribute_columns), mode, exit_value)
    plan = DeltaPlan(con=con, run_dir=run_dir, inp=inp, sql=sql, snapshot_key=snapshot_key, force=force)
    try:
        plan._build(store, attribute_template, snapshot_time)
    except BaseException:
        plan.close()
        raise
    return plan


class DeltaPlan:
    """The outcome of :func:`compute_delta`: updates to send, rejects, counts and new state.

    Holds a DuckDB connection: iterate what you need, call :meth:`publish_pending` before sending
    the updates and :meth:`commit` once they were delivered, then :meth:`close` (or use the plan
    as a context manager).

    :param con: the plan's DuckDB connection.
    :param run_dir: its working directory (removed by :meth:`close`).
    :param inp: the input description.
    :param sql: the statements for its settings.
    :param snapshot_key: this snapshot's key.
    :param force: whether splits are computed whatever their applied key.
    """

    def __init__(
        self,
        *,
        con: duckdb.DuckDBPyConnection,
        run_dir: str,
        inp: DeltaInput,
        sql: DeltaSql,
        snapshot_key: str,
        force: bool,
    ) -> None:
        self._con = con
        self.run_dir = run_dir
        self._inp = inp
        self._sql = sql
        self.snapshot_key = snapshot_key
        self.force = force
        self.counts = DeltaCounts()
        self.skipped_splits: list[SkippedSplit] = []
        self.new_state_files: list[NewStateFile] = []
        #: the pending markers of earlier runs found when the plan was computed
        self.pending_markers: list[PendingMarker] = []
        #: the name of the marker :meth:`publish_pending` stored for this plan's writes
        self.own_marker: str | None = None
        self._writer = ""
        self._splits: list[SplitPlan] = []
        self._files: list[str] = []
        self._spec: list[tuple[str, str, bool]] = []

    # -- building ---------------------------------------------------------------------------

    def _build(self, store: SnapshotStore, attribute_template: str, snapshot_time: datetime) -> None:
        con, sql = self._con, self._sql
        with self._step("load rows"):
            normaliser = self._load_rows()
        with self._step("plan splits"):
            planner = SplitPlanner(
                con,
                normaliser,
                self._inp,
                store,
                snapshot_key=self.snapshot_key,
                snapshot_time=snapshot_time,
                force=self.force,
                mode=sql.mode,
                local_dir=self.run_dir,
            )
            planner.plan(attribute_template)
            self._splits, self.skipped_splits, self.pending_markers = (
                planner.splits,
                planner.skipped,
                planner.markers,
            )
        processed = [s for s in self._splits if s.processed]
        repaired = [s.no for s in self._splits if s.repair]
        with self._step("load applied state"):
            con.execute(sql.applied_state([s for s in processed if s.state_path is not None]))
        with self._step("find duplicates"):
            for statement in sql.duplicates():
                con.execute(statement)
            has_dups = bool(one_row(con, "SELECT count(*) FROM dups")[0])
            con.execute(sql.new_rows(has_dups=has_dups, repaired=repaired))
        with self._step("join"):
            con.execute(sql.delta(has_dirty=planner.has_dirty))
        with self._step("collect writes"):
            con.execute(sql.writes(processed=len(processed)))
        with self._step("write new state"):
            self._write_state(repaired=bool(repaired))
        with self._step("count"):
            members = {(f.audience_id, f.split_id): f.members for f in self.new_state_files}
            self.counts = count_delta(con, sql, self._splits, members)
        if not repaired:  # (the rows of a repaired split are its applied ones: still needed)
            con.execute("DROP TABLE IF EXISTS old")

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        if log.isEnabledFor(logging.DEBUG):
            memory = one_row(self._con, "SELECT sum(memory_usage_bytes) >> 20 FROM duckdb_memory()")[0]
            log.debug(
                "audience delta: %s took %.2f s (DuckDB memory %s MiB, Arrow %d MiB)",
                name,
                time.perf_counter() - started,
                memory,
                pa.total_allocated_bytes() >> 20,
            )

    def _load_rows(self) -> _Normaliser:
        """Stream the input into the ``rows`` table, normalised and validated row by row."""
        inp, con = self._inp, self._con
        spec: list[tuple[str, str, bool]] = []
        if inp.audience_id is None:
            spec.append(("c_aud", inp.audience_col, True))
        if inp.split_id is None:
            spec.append(("c_split", inp.split_col, True))
        if inp.external_id_col and "external_id" in inp.identifier_preference:
            spec.append(("c_ext", inp.external_id_col, False))
        if inp.braze_id_col and "braze_id" in inp.identifier_preference:
            spec.append(("c_bid", inp.braze_id_col, False))
        if inp.input_kind == "changes":
            assert inp.member_col is not None
            spec.append(("c_member", inp.member_col, True))
        for internal, name in zip(self._sql.attrs, inp.attribute_columns, strict=True):
            spec.append((f"c_{internal}", name, True))
        self._spec = spec
        normaliser = _Normaliser(inp, spec)
        con.register("src", normaliser.reader(inp.batches))
        try:
            con.execute(
                "CREATE TABLE rows AS SELECT *, hash(identifier) AS h, "
                f"{row_checks(inp, self._sql.attrs)} AS reason FROM src"
            )
        except duckdb.Error:
            # an error raised while reading the input (a missing column, a reader failure) is
            # re-raised as itself rather than as DuckDB's wrapper
            if normaliser.error is not None:
                raise normaliser.error from None
            raise
        con.unregister("src")
        self._files = normaliser.files
        text_table(con, "files", normaliser.files)
        return normaliser

    def _write_state(self, *, repaired: bool) -> None:
        """Write the new state of every computed split as one local Parquet file each."""
        con = self._con
        computed = [s for s in self._splits if s.status == "computed"]
        if not computed:
            return
        out_dir = os.path.join(self.run_dir, "state")
        os.makedirs(out_dir, exist_ok=True)
        source = self._sql.new_state([s.no for s in computed], repaired=repaired)
        if len(computed) == 1:  # the usual case: its file directly, no partitioning pass
            path = os.path.join(out_dir, f"split-{computed[0].no}.parquet")
            con.execute(
                f"COPY (SELECT * EXCLUDE (split_no) FROM ({source})) TO {literal(path)} (FORMAT parquet)"
            )
            self._add_state_file(computed[0], path)
            return
        con.execute(f"COPY ({source}) TO {literal(out_dir)} (FORMAT parquet, PARTITION_BY (split_no))")
        for split in computed:
            parts = sorted(glob.glob(os.path.join(out_dir, f"split_no={split.no}", "*.parquet")))
            path = os.path.join(out_dir, f"split-{split.no}.parquet")
            if len(parts) == 1:
                shutil.move(parts[0], path)
            else:  # several parts, or none (a split left empty)
                query = "SELECT * FROM read_parquet(?)" if parts else self._sql.empty_state()
                con.execute(f"COPY ({query}) TO {literal(path)} (FORMAT parquet)", [parts] if parts else None)
            self._add_state_file(split, path)

    def _add_state_file(self, split: SplitPlan, path: str) -> None:
        members = int(one_row(self._con, "SELECT count(*) FROM read_parquet(?)", [path])[0])
        self.new_state_files.append(
            NewStateFile(
                split.audience_id,
                split.split_id,
                path,
                split.attribute,
                members,
                tuple(self._inp.attribute_columns),
                split.manifest,
            )
        )

    # -- results -----------------------------------------------------------------------------

    def iter_updates(self, batch_rows: int = 100_000) -> Iterator[UserUpdate]:
        """The writes grouped per profile, ordered by identifier kind then identifier.

        Streamed from DuckDB ``batch_rows`` writes at a time; a profile's writes are never split
        across two updates.

        :param batch_rows: writes fetched per chunk.
        """
        reader = self._con.sql(self._sql.updates()).to_arrow_reader(batch_rows)
        current: UserUpdate | None = None
        for batch in reader:
            cols = batch.to_pydict()
            for kind, identifier, name, is_str, b, s, rows in zip(
                cols["kind"],
                cols["identifier"],
                cols["name"],
                cols["is_str"],
                cols["b"],
                cols["s"],
                cols["rows"],
                strict=True,
            ):
                if current is None or current.identifier != identifier or current.identifier_kind != kind:
                    if current is not None:
                        yield current
                    current = UserUpdate(kind, identifier, {}, int(rows))
                current.attributes[name] = s if is_str else b
        if current is not None:
            yield current

    def iter_rejects(self, batch_rows: int = 10_000) -> Iterator[Reject]:
        """Every rejected row with its reason, in input order (file, then row).

        ``row_dict`` holds the columns the delta reads, as normalised: ids trimmed, empty values
        as ``None``.

        :param batch_rows: rows fetched per chunk.
        """
        return iter_rejects(self._con, self._inp, self._spec, self._files, batch_rows)

    # -- delivering and committing -------------------------------------------------------------

    def publish_pending(self, store: SnapshotStore, writer: str) -> str | None:
        """Store a pending marker naming every profile this plan writes; call it before sending.

        Until :meth:`commit` removes it, the marker tells later runs that these profiles may hold
        this plan's values in Braze whatever the applied state says. Returns its name (``None``
        when the plan writes nothing).

        :param store: the state store the plan was computed against.
        :param writer: the ledger of the run delivering the plan.
        """
        if not self.counts.data_points:
            return None
        path = os.path.join(self.run_dir, "own-pending.parquet")
        self._con.execute(
            f"""
            COPY (
                SELECT DISTINCT s.audience_id, s.split_id, w.kind AS identifier_kind, w.identifier
                FROM writes w JOIN splits s USING (split_no)
            ) TO {literal(path)} (FORMAT parquet)
            """
        )
        self._writer = writer
        self.own_marker = store.publish_pending(path, writer)
        return self.own_marker

    def republish_pending(self, store: SnapshotStore) -> str | None:
        """Store this plan's marker again under a new name (after losing the namespace's lease, a
        run that took over may have repaired and removed the first one before this run's last
        request landed). Returns the new name, ``None`` when there was no marker.

        :param store: the state store.
        """
        path = os.path.join(self.run_dir, "own-pending.parquet")
        if self.own_marker is None or not os.path.exists(path):
            return None
        return store.publish_pending(path, self._writer)

    def commit(self, store: SnapshotStore) -> list[tuple[str, str]]:
        """Record the new state of every computed split; call only after delivery succeeded.

        Each split's manifest is swapped only if it is still the one the plan was computed
        against. Then the pending markers this plan covered (its own, and those of earlier runs
        whose profiles it rewrote) are removed; a plan whose splits were all skipped commits no
        manifest but still does this. Returns the splits committed.

        :param store: the state store the plan was computed against.
        :raises StateConflict: a split's state changed since the plan was computed (another run
            committed): that split and the following ones are not committed and no marker is removed.
        """
        committed = []
        for state in self.new_state_files:
            store.commit(
                state.audience_id,
                state.split_id,
                state.path,
                snapshot_key=self.snapshot_key,
                attribute=state.attribute,
                members=state.members,
                attribute_columns=state.attribute_columns,
                base=state.base,
            )
            committed.append((state.audience_id, state.split_id))
        self._settle_markers(store)
        return committed

    def _settle_markers(self, store: SnapshotStore) -> None:
        """Remove the markers whose profiles now match the applied state; keep the rows of splits
        this plan did not process in a new marker."""
        for split in self._splits:
            if split.repair:  # rewritten to the applied state: still the applied one?
                current = store.manifest(split.audience_id, split.split_id)
                if (current and current.version) != (split.manifest and split.manifest.version):
                    raise StateConflict(
                        f"the applied state of audience {split.audience_id!r} split {split.split_id!r} "
                        "changed while this run repaired it (another run committed meanwhile)"
                    )
        handled = [list(s.key) for s in self._splits if s.processed]
        others = "FROM markers WHERE filename = ? AND NOT list_contains(?, [audience_id, split_id])"
        for marker in self.pending_markers:
            if one_row(self._con, f"SELECT count(*) {others}", [marker.local_path, handled])[0]:
                path = os.path.join(self.run_dir, f"rest-{marker.name}")
                self._con.execute(
                    f"COPY (SELECT * EXCLUDE (filename) {others}) TO {literal(path)} (FORMAT parquet)",
                    [marker.local_path, handled],
                )
                store.publish_pending(path, writer=marker.name)  # (its digest no ledger's: never trusted)
            store.remove_pending(marker.name)
        if self.own_marker is not None:
            store.remove_pending(self.own_marker)
            self.own_marker = None

    def close(self, *, remove_files: bool = True) -> None:
        """Close the DuckDB connection and remove the plan's working files.

        :param remove_files: also delete the working directory (new state files included).
        """
        try:
            self._con.close()
        finally:
            if remove_files:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> DeltaPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
