"""The plan of a delta: what a run does with each split of its input.

A split is *computed* (its new state replaces the applied one), *skipped* (the applied snapshot is
newer, the same, or cannot be ordered; or only a pending marker names it), or *rejected* (its
attribute name cannot be used). A skipped split with profiles named by pending markers is
*repaired*: those profiles are rewritten to its applied state.
"""

from __future__ import annotations

import os
from datetime import datetime

import duckdb
import pyarrow as pa

from airflow_provider_aiq_braze.audiences.keys import parse_snapshot_key
from airflow_provider_aiq_braze.audiences.model import DeltaInput, Mode, SkippedSplit, SplitPlan
from airflow_provider_aiq_braze.audiences.normalise import _Normaliser
from airflow_provider_aiq_braze.audiences.sql import kind_code, text_table
from airflow_provider_aiq_braze.audiences.state import PendingMarker, SnapshotStore
from airflow_provider_aiq_braze.braze.rules import RESERVED_ATTRIBUTE_NAMES, name_problem


class SplitPlanner:
    """Plans the splits of one delta, once its rows are loaded (table ``rows``).

    Builds the tables ``splits`` (what happens to each split), ``cur`` (the valid rows of the
    computed splits), ``markers`` (the pending markers' rows) and ``dirty`` (the profiles of
    processed splits whose value in Braze is unknown).

    :param con: the delta's connection.
    :param normaliser: the input's normaliser (it numbered the audiences, splits and pairs).
    :param inp: the input description.
    :param store: the applied state.
    :param snapshot_key: this snapshot's key.
    :param snapshot_time: its instant.
    :param force: compute splits whatever their applied key.
    :param mode: ``delta`` or ``full``.
    :param local_dir: where remote state and markers are downloaded.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        normaliser: _Normaliser,
        inp: DeltaInput,
        store: SnapshotStore,
        *,
        snapshot_key: str,
        snapshot_time: datetime,
        force: bool,
        mode: Mode,
        local_dir: str,
    ) -> None:
        self._con = con
        self._normaliser = normaliser
        self._inp = inp
        self._store = store
        self._key = snapshot_key
        self._time = snapshot_time
        self._force = force
        self._mode = mode
        self._local_dir = local_dir
        self._owners: dict[str, tuple[str, str]] | None = None
        self._marker_splits: list[tuple[str, str]] = []
        #: every split of the run, numbered as the rows' ``pair_no``
        self.splits: list[SplitPlan] = []
        #: the splits skipped (repaired or not), for the caller
        self.skipped: list[SkippedSplit] = []
        #: the pending markers of earlier runs found
        self.markers: list[PendingMarker] = []
        #: whether the ``dirty`` table has rows for processed splits
        self.has_dirty = False

    def plan(self, attribute_template: str) -> None:
        """Decide, per split, whether to compute it, skip it (state), repair it or reject it (its name).

        :param attribute_template: the membership attribute's template.
        """
        self._read_markers()
        self._make_splits()
        names_in_use: dict[str, tuple[str, str]] = {}
        # in id order, so which of two clashing splits is rejected does not depend on row order
        for split in sorted(self.splits, key=lambda s: s.key):
            split.attribute = attribute_template.format(
                audience_id=split.audience_id, split_id=split.split_id
            )
            problem = self._name_problem(split, names_in_use)
            if problem is None:
                split.manifest = self._store.manifest(split.audience_id, split.split_id)
                if split.in_input:
                    problem = self._renamed(split) or self._owned_by_another(split)
            if problem is not None:
                split.status = "rejected"
                split.problem = (
                    f"invalid membership attribute for audience {split.audience_id!r} split "
                    f"{split.split_id!r}: {problem}"
                )
            elif split.in_input:
                names_in_use[split.attribute] = split.key
                self._order(split)
            else:  # named only by a pending marker: repaired below, never computed
                split.status, split.problem = "skipped", "not in this run's input"
        self._mark_repairs()
        self._download_applied()
        self._tables()

    # -- the splits --------------------------------------------------------------------------

    def _make_splits(self) -> None:
        """One split per (audience, split) pair of the input, the arguments and the markers."""
        inp, normaliser = self._inp, self._normaliser
        counted = {
            pair_no: (n, r)
            for pair_no, n, r in self._con.execute(
                "SELECT pair_no, count(*), count(reason) FROM rows WHERE pair_no IS NOT NULL GROUP BY 1"
            ).fetchall()
        }
        in_input = set(range(len(normaliser.pairs)))
        if inp.audience_id is not None and inp.split_id is not None:
            in_input.add(self._pair_of(inp.audience_id.strip(), inp.split_id.strip()))
        for audience_id, split_id in self._marker_splits:
            self._pair_of(audience_id, split_id)
        text_table(self._con, "audiences", normaliser.audiences)
        text_table(self._con, "split_ids", normaliser.split_ids)
        for no, (aud_no, sid_no) in enumerate(normaliser.pairs):
            rows, rejects = counted.get(no, (0, 0))
            split = SplitPlan(no, normaliser.audiences[aud_no], normaliser.split_ids[sid_no], rows, rejects)
            split.in_input = no in in_input
            self.splits.append(split)

    def _pair_of(self, audience_id: str, split_id: str) -> int:
        """The number of an (audience, split) pair given by its ids (numbered on first sight)."""
        normaliser = self._normaliser
        aud_no = normaliser.numbers(pa.array([audience_id]), normaliser.audiences)[0].as_py()
        sid_no = normaliser.numbers(pa.array([split_id]), normaliser.split_ids)[0].as_py()
        return normaliser.pair(aud_no, sid_no)

    def _name_problem(self, split: SplitPlan, names_in_use: dict[str, tuple[str, str]]) -> str | None:
        """Why a split's attribute name cannot be used in this run, if it cannot."""
        problem = name_problem(split.attribute, what="attribute", reserved=RESERVED_ATTRIBUTE_NAMES)
        if problem is None and split.attribute in self._inp.attribute_columns:
            problem = f"attribute {split.attribute!r} is also an attribute column"
        if problem is None and split.attribute in names_in_use:
            other = names_in_use[split.attribute]
            problem = (
                f"attribute {split.attribute!r} is also the attribute of audience {other[0]!r} "
                f"split {other[1]!r} (the attribute template must tell splits apart)"
            )
        return problem

    def _renamed(self, split: SplitPlan) -> str | None:
        """Why a split cannot change the attribute its state was applied as, unless ``mode="full"``."""
        applied = split.manifest
        if applied is None or applied.attribute == split.attribute or self._mode == "full":
            return None
        return (
            f"its state was applied as attribute {applied.attribute!r}, and this run would write "
            f"{split.attribute!r}: a renamed attribute must be written for every member, so run "
            "once with mode='full' to rename it (see 'Renaming an attribute' in docs/audiences.md)"
        )

    def _owned_by_another(self, split: SplitPlan) -> str | None:
        """Why a split may not write its attribute: another split of the applied state writes it."""
        if split.manifest is not None and split.manifest.attribute == split.attribute:
            return None  # checked when the split was first committed
        if self._owners is None:
            self._owners = self._store.attribute_owners()
        owner = self._owners.get(split.attribute)
        if owner is None or owner == split.key:
            return None
        return (
            f"attribute {split.attribute!r} is already written by audience {owner[0]!r} split {owner[1]!r} "
            f"(applied state of namespace {self._store.namespace!r}); two splits writing one attribute would "
            "overwrite each other's members. Rename one of them (see 'Renaming an attribute' in "
            "docs/audiences.md)"
        )

    def _order(self, split: SplitPlan) -> None:
        """Skip a split whose applied snapshot is newer, the same, or cannot be ordered (unless ``force``)."""
        applied = split.manifest
        if applied is None or self._force:
            return
        applied_time = parse_snapshot_key(applied.snapshot_key)
        split.status = "skipped"
        if applied_time is None:
            split.needs_force = True
            split.problem = (
                f"the applied snapshot key {applied.snapshot_key!r} is not a date or date-time (written by "
                "an earlier version, e.g. from an unset template parameter), so no snapshot can be ordered "
                f"against it: run once with force=True to apply snapshot {self._key} over it"
            )
        elif self._time > applied_time:
            split.status = "computed"
        elif self._time < applied_time:
            split.problem = (
                f"snapshot {self._key} is older than the applied {applied.snapshot_key}; "
                "an older snapshot never overwrites a newer one (use force to apply it)"
            )
        else:
            split.problem = (
                f"snapshot {self._key} was already applied; nothing to send "
                "(use force to compute it again against the applied state)"
            )

    def _mark_repairs(self) -> None:
        """Skipped splits with profiles named by pending markers are repaired (rewritten to their
        applied state); list every skipped split."""
        dirty = set(self._marker_splits)
        for split in self.splits:
            if split.status != "skipped":
                continue
            split.repair = split.key in dirty
            if split.repair:
                split.problem = (
                    f"{split.problem}; the profiles an interrupted run may have changed are rewritten "
                    "to the applied state"
                )
                if split.manifest is not None:
                    split.attribute = split.manifest.attribute  # restore what the state describes
            self.skipped.append(
                SkippedSplit(
                    split.audience_id,
                    split.split_id,
                    split.problem or "",
                    split.rows - split.row_rejects,
                    split.manifest.snapshot_key if split.manifest else None,
                    split.needs_force,
                )
            )

    def _download_applied(self) -> None:
        """A local copy of the applied members of every computed or repaired split."""
        for split in self.splits:
            if split.processed and split.manifest is not None:
                applied = self._store.download(
                    split.manifest, local_dir=os.path.join(self._local_dir, "applied")
                )
                split.state_path = applied.local_path
                split.state_columns = applied.attribute_columns

    # -- the tables --------------------------------------------------------------------------

    def _read_markers(self) -> None:
        """Load the pending markers of earlier runs into the ``markers`` table."""
        self.markers = self._store.pending(local_dir=os.path.join(self._local_dir, "pending"))
        if not self.markers:
            return
        self._con.execute(
            "CREATE TABLE markers AS SELECT audience_id, split_id, identifier_kind, identifier, filename "
            "FROM read_parquet(?, filename = true)",
            [[m.local_path for m in self.markers]],
        )
        self._marker_splits = [
            (str(a), str(s))
            for a, s in self._con.execute(
                "SELECT DISTINCT audience_id, split_id FROM markers ORDER BY ALL"
            ).fetchall()
        ]

    def _tables(self) -> None:
        """``splits``, then ``cur`` and ``dirty``."""
        con, splits = self._con, self.splits
        table = pa.table(
            {
                "split_no": pa.array([s.no for s in splits], pa.int32()),
                "audience_id": pa.array([s.audience_id for s in splits], pa.string()),
                "split_id": pa.array([s.split_id for s in splits], pa.string()),
                "attribute": pa.array([s.attribute for s in splits], pa.string()),
                "status": pa.array([s.status for s in splits], pa.string()),
                "processed": pa.array([s.processed for s in splits], pa.bool_()),
                "problem": pa.array([s.problem for s in splits], pa.string()),
            }
        )
        con.register("splits_arrow", table)
        con.execute("CREATE TABLE splits AS SELECT * FROM splits_arrow")
        con.unregister("splits_arrow")
        computed = [s.no for s in splits if s.status == "computed"]
        if len(computed) == len(splits):
            where = "reason IS NULL"
        elif computed:
            where = f"reason IS NULL AND pair_no IN ({', '.join(map(str, computed))})"
        else:
            where = "false"
        con.execute(f"CREATE VIEW cur AS SELECT *, pair_no AS split_no FROM rows WHERE {where}")
        self.has_dirty = bool(self._marker_splits) and any(s.processed for s in splits)
        if self.has_dirty:
            con.execute(
                f"""
                CREATE TABLE dirty AS
                SELECT DISTINCT s.split_no, {kind_code("m.identifier_kind")} AS kind, m.identifier,
                       hash(m.identifier) AS h
                FROM markers m JOIN splits s ON m.audience_id = s.audience_id AND m.split_id = s.split_id
                WHERE s.processed
                """
            )
