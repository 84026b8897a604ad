"""The membership delta: what to write to Braze so its profiles match a new ActionIQ snapshot.

Everything runs in an in-memory DuckDB with a memory limit that spills to ``work_dir``: the
input batches stream in through an Arrow reader (normalised in Arrow: ids trimmed, files,
audiences and splits numbered), rows are validated in SQL, the new snapshot is joined with the
applied one on a 64-bit hash of the identifier (checked against the identifier itself, so a hash
collision cannot merge two profiles), and the writes are streamed back out in identifier order.

The outcome is a :class:`DeltaPlan`: the updates grouped per profile, the rejected rows, counts,
and the new state files to commit once the updates were delivered.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_aiq_braze.audiences.keys import checked_snapshot_key, parse_snapshot_key
from airflow_provider_aiq_braze.audiences.state import Manifest, PendingMarker, SnapshotStore, StateConflict
from airflow_provider_aiq_braze.braze.limits import MAX_STRING_VALUE_LENGTH
from airflow_provider_aiq_braze.braze.rules import (
    BRAZE_ID_PATTERN,
    RESERVED_ATTRIBUTE_NAMES,
    braze_id_problem,
    name_problem,
    value_problem,
)

log = logging.getLogger(__name__)

InputKind = Literal["snapshot", "changes"]
Mode = Literal["delta", "full"]

#: The identifier kinds a membership row may carry, as named in Braze attribute objects.
IDENTIFIER_KINDS = ("external_id", "braze_id")
#: Default name of the membership attribute of a split.
DEFAULT_ATTRIBUTE_TEMPLATE = "AIQ_{audience_id}_{split_id}"
#: Column names the state files use for the identifier; attribute columns may not take them.
STATE_IDENTIFIER_COLUMNS = ("identifier_kind", "identifier")
#: Accepted spellings of a ``member`` value (compared trimmed and case-insensitively).
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")

# reason codes of row-level rejects (the text is made when the rejects are read)
_NO_AUDIENCE, _NO_SPLIT, _NO_IDENTIFIER, _BAD_BRAZE_ID, _BAD_MEMBER, _BAD_VALUE = 1, 2, 3, 4, 5, 100


class UserUpdate(NamedTuple):
    """All the attribute writes for one profile: one Braze attribute object.

    :param identifier_kind: ``external_id`` or ``braze_id``.
    :param identifier: the identifier's value.
    :param attributes: attribute name → value (``True``/``False`` membership, ``None`` to remove,
        or a string for attribute columns), in name order.
    :param rows: the input rows (of computed splits, duplicates excluded) naming this profile: the
        rows this update delivers. ``0`` for a profile that only left.
    """

    identifier_kind: str
    identifier: str
    attributes: dict[str, bool | str | None]
    rows: int = 0


class Reject(NamedTuple):
    """A row that cannot be delivered.

    :param file: the ``_file`` the row came from.
    :param row: the ``_row`` number the caller gave it.
    :param reason: why it is rejected.
    :param row_dict: the row's columns as read (column name → value).
    """

    file: str
    row: int
    reason: str
    row_dict: dict[str, Any]


@dataclass
class DeltaInput:
    """The membership rows and how to read them.

    Every batch must carry ``_file`` (string) and ``_row`` (int64) columns naming each row's
    source, plus the configured columns; values are read as strings.

    :param batches: the rows, as Arrow record batches (streamed, never held all at once).
    :param audience_col: the column holding the audience id (unused when ``audience_id`` is set).
    :param split_col: the column holding the split id (unused when ``split_id`` is set).
    :param external_id_col: the column holding the Braze ``external_id``, or ``None``.
    :param braze_id_col: the column holding the ``braze_id``, or ``None``.
    :param member_col: for ``changes`` input, the column saying whether the profile is a member.
    :param audience_id: the audience of every row, for single-audience files.
    :param split_id: the split of every row, for single-split files.
    :param attribute_columns: other columns to set as custom attributes of the same name.
    :param identifier_preference: identifier kinds in order of preference; a row uses the first
        one with a value.
    :param input_kind: ``snapshot`` (the rows are all the members) or ``changes`` (each row says
        whether the profile entered or left).
    """

    batches: Iterable[pa.RecordBatch]
    audience_col: str = "audience_id"
    split_col: str = "split_id"
    external_id_col: str | None = "external_id"
    braze_id_col: str | None = "braze_id"
    member_col: str | None = None
    audience_id: str | None = None
    split_id: str | None = None
    attribute_columns: Sequence[str] = ()
    identifier_preference: Sequence[str] = IDENTIFIER_KINDS
    input_kind: InputKind = "snapshot"


@dataclass
class SplitCounts:
    """What the plan does for one split.

    :param audience_id: the audience id.
    :param split_id: the split id.
    :param attribute: the membership attribute (may be invalid when ``status`` is ``rejected``).
    :param status: ``computed``, ``skipped`` or ``rejected``.
    :param rows: input rows that named this split (rejected ones included).
    :param entered: profiles set to ``true`` because they joined.
    :param exited: profiles set to the exit value because they left.
    :param unchanged: members already applied (snapshot input) or change rows restating the
        applied membership (changes input); no membership change for them.
    :param resent: membership writes repeating the applied value (``mode="full"`` only).
    :param repaired: membership writes restoring profiles an interrupted run may have changed
        (named by a pending marker) that no other write of this split covers.
    :param members: members in the new state.
    :param attribute_updates: attribute-column writes for this split's profiles.
    :param data_points: writes attributed to this split (membership + attribute columns).
    :param rejected: rows of this split that are rejected.
    :param duplicates: rows of this split repeating an earlier identical row.
    :param skipped_rows: valid rows not used because the split is skipped.
    :param reason: why the split is skipped or rejected.
    """

    audience_id: str
    split_id: str
    attribute: str
    status: str = "computed"
    rows: int = 0
    entered: int = 0
    exited: int = 0
    unchanged: int = 0
    resent: int = 0
    repaired: int = 0
    members: int = 0
    attribute_updates: int = 0
    data_points: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped_rows: int = 0
    reason: str | None = None


@dataclass
class DeltaCounts:
    """Totals over the input and every split.

    ``rows_read == rejected + duplicates + skipped_rows + rows used`` where the rows used are
    the members (snapshot input) or the change rows (changes input) of the computed splits.

    :param rows_read: input rows.
    :param rejected: rejected rows (row problems, invalid splits, conflicting duplicates).
    :param duplicates: rows repeating an earlier identical row (counted once).
    :param skipped_rows: valid rows of skipped splits.
    :param entered: membership writes of entering profiles.
    :param exited: membership writes of leaving profiles.
    :param unchanged: members or change rows needing no membership change.
    :param resent: membership writes repeating the applied value (``mode="full"`` only).
    :param repaired: membership writes restoring profiles an interrupted run may have changed.
    :param members: members in the new state of the computed splits.
    :param attribute_updates: attribute-column writes.
    :param data_points: total attribute writes in the plan (what Braze bills).
    :param profiles: profiles with at least one write (attribute objects to send).
    :param full_resync_data_points: what re-sending every member of the computed splits would
        cost (one membership write per member plus its attribute values), for comparison.
    :param splits: the counts of every split, keyed ``"<audience_id>/<split_id>"``.
    """

    rows_read: int = 0
    rejected: int = 0
    duplicates: int = 0
    skipped_rows: int = 0
    entered: int = 0
    exited: int = 0
    unchanged: int = 0
    resent: int = 0
    repaired: int = 0
    members: int = 0
    attribute_updates: int = 0
    data_points: int = 0
    profiles: int = 0
    full_resync_data_points: int = 0
    splits: dict[str, SplitCounts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The counts as plain JSON-able values (for XCom and logs)."""
        return asdict(self)


@dataclass(frozen=True)
class SkippedSplit:
    """A split the plan leaves alone.

    :param audience_id: the audience id.
    :param split_id: the split id.
    :param reason: why, e.g. an older snapshot than the applied one.
    :param rows: valid input rows of the split.
    :param applied_key: the key of the snapshot already applied.
    :param needs_force: the applied key cannot be ordered (not a date): only ``force`` applies
        a snapshot over it.
    """

    audience_id: str
    split_id: str
    reason: str
    rows: int
    applied_key: str | None
    needs_force: bool = False


@dataclass(frozen=True)
class NewStateFile:
    """The new state of one split, ready for :meth:`SnapshotStore.commit`.

    :param audience_id: the audience id.
    :param split_id: the split id.
    :param path: the local Parquet file.
    :param attribute: the membership attribute.
    :param members: members in the file.
    :param attribute_columns: the attribute columns in the file.
    :param base: the manifest the new state was computed against (``None``: the split had none);
        the commit succeeds only while it is still the applied one.
    """

    audience_id: str
    split_id: str
    path: str
    attribute: str
    members: int
    attribute_columns: tuple[str, ...]
    base: Manifest | None


@dataclass
class _Split:
    no: int
    audience_id: str
    split_id: str
    rows: int
    row_rejects: int
    attribute: str = ""
    status: str = "computed"
    problem: str | None = None
    in_input: bool = True  # False: named only by a pending marker
    manifest: Manifest | None = None
    repair: bool = False  # skipped, but profiles named by pending markers are rewritten to the applied state
    needs_force: bool = False
    state_path: str | None = None
    state_columns: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.audience_id, self.split_id)

    @property
    def processed(self) -> bool:
        """Whether the plan writes for this split (computed, or repaired)."""
        return self.status == "computed" or self.repair


def _kind_text(expr: str) -> str:
    """SQL turning a kind code into its name (``external_id``, ``braze_id``)."""
    return (
        f"CASE {expr} "
        + " ".join(f"WHEN {i} THEN {_lit(k)}" for i, k in enumerate(IDENTIFIER_KINDS))
        + " END"
    )


def _kind_code(expr: str) -> str:
    """SQL turning a kind name into its code."""
    whens = " ".join(f"WHEN {_lit(k)} THEN {i}" for i, k in enumerate(IDENTIFIER_KINDS))
    return f"(CASE {expr} {whens} END)::TINYINT"


def _one_row(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> tuple[Any, ...]:
    """The one row a query returns (fetched to its end, so the connection is free for the next one)."""
    rows = con.execute(sql, params).fetchall()
    return tuple(rows[0])


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


class _Normaliser:
    """Turn the caller's batches into compact, normalised batches for DuckDB (vectorised in Arrow).

    File names, audience ids, split ids and (audience, split) pairs become small integers (their
    texts are kept in :attr:`files`, :attr:`audiences`, :attr:`split_ids`, :attr:`pairs`); ids
    are trimmed and empty ones become nulls; the identifier is chosen by preference (``kind``
    is its position in :data:`IDENTIFIER_KINDS`) and the other one, if any, kept as ``alt_id``;
    ``member`` becomes a boolean (null when it does not parse, the text then kept).

    :param inp: the input description.
    :param spec: ``(internal name, source column, required)`` of the string columns to read.
    """

    def __init__(self, inp: DeltaInput, spec: list[tuple[str, str, bool]]) -> None:
        self.inp = inp
        self.spec = spec
        self.files: list[str] = []
        self.audiences: list[str] = []
        self.split_ids: list[str] = []
        self.pairs: list[tuple[int, int]] = []
        self._texts: dict[int, dict[str, int]] = {}
        self._pair_index: dict[tuple[int, int], int] = {}
        self.error: Exception | None = None
        fields = [
            pa.field("file_no", pa.int32()),
            pa.field("_row", pa.int64()),
            pa.field("aud_no", pa.int32()),
            pa.field("sid_no", pa.int32()),
            pa.field("pair_no", pa.int32()),
            pa.field("kind", pa.int8()),
            pa.field("identifier", pa.string()),
            pa.field("alt_id", pa.string()),
        ]
        internals = [internal for internal, _, _ in spec]
        if "c_member" in internals:
            fields += [pa.field("member", pa.bool_()), pa.field("raw_member", pa.string())]
        fields += [
            pa.field(internal[2:], pa.string()) for internal in internals if internal.startswith("c_v")
        ]
        self.schema = pa.schema(fields)

    def numbers(self, values: pa.Array, texts: list[str]) -> pa.Array:
        """Map strings to their positions in ``texts`` (appending new ones); nulls stay null.

        :param values: the strings.
        :param texts: the list of known texts (one of this object's lists).
        """
        index = self._texts.setdefault(id(texts), {})
        encoded = pc.dictionary_encode(values)
        numbers = []
        for text in encoded.dictionary.to_pylist():
            if text not in index:
                index[text] = len(texts)
                texts.append(text)
            numbers.append(index[text])
        return pc.take(pa.array(numbers, pa.int32()), encoded.indices)

    def pair(self, aud_no: int, sid_no: int) -> int:
        """The number of an (audience, split) pair, assigned on first sight.

        :param aud_no: the audience's number.
        :param sid_no: the split's number.
        """
        key = (aud_no, sid_no)
        if key not in self._pair_index:
            self._pair_index[key] = len(self.pairs)
            self.pairs.append(key)
        return self._pair_index[key]

    def _pairs(self, aud: pa.Array, sid: pa.Array) -> pa.Array:
        combo = pc.add(pc.multiply(pc.cast(aud, pa.int64()), 1 << 31), pc.cast(sid, pa.int64()))
        unique = pc.drop_null(pc.unique(combo))
        numbers = pa.array([self.pair(c >> 31, c & ((1 << 31) - 1)) for c in unique.to_pylist()], pa.int32())
        return pc.take(numbers, pc.index_in(combo, value_set=unique))

    @staticmethod
    def _clean(values: pa.Array) -> pa.Array:
        """Trim whitespace; an empty value becomes null."""
        trimmed = pc.utf8_trim(values, characters=" \t\n\r")
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)

    def _constant(self, value: str, texts: list[str], n: int) -> pa.Array:
        number = self.numbers(pa.array([value], pa.string()), texts)[0].as_py()
        return pa.nulls(n, pa.int32()).fill_null(number)

    def batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The normalised batches (an exception is also kept in :attr:`error`).

        :param batches: the caller's batches.
        """
        try:
            yield from self._batches(batches)
        except Exception as exc:
            self.error = exc
            raise

    def _batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        inp = self.inp
        null_str = pa.scalar(None, pa.string())
        for batch in batches:
            names = batch.schema.names
            if "_file" not in names or "_row" not in names:
                raise ValueError("input batches must carry '_file' and '_row' columns (the source rows)")
            n = batch.num_rows
            file_col = pc.cast(batch.column("_file"), pa.string())
            columns: dict[str, pa.Array] = {}
            for internal, source, required in self.spec:
                if source in names:
                    column = batch.column(source)
                    columns[internal] = column if column.type == pa.string() else pc.cast(column, pa.string())
                elif required:
                    where = file_col[0].as_py() if n else "input"
                    raise ValueError(f"{where}: the input has no column {source!r}")
                else:
                    columns[internal] = pa.nulls(n, pa.string())
            if inp.audience_id is not None:
                aud = self._constant(inp.audience_id.strip(), self.audiences, n)
            else:
                aud = self.numbers(self._clean(columns["c_aud"]), self.audiences)
            if inp.split_id is not None:
                sid = self._constant(inp.split_id.strip(), self.split_ids, n)
            else:
                sid = self.numbers(self._clean(columns["c_split"]), self.split_ids)
            ids = {
                "external_id": self._clean(columns["c_ext"])
                if "c_ext" in columns
                else pa.nulls(n, pa.string()),
                "braze_id": self._clean(columns["c_bid"]) if "c_bid" in columns else pa.nulls(n, pa.string()),
            }
            kind = pa.nulls(n, pa.int8())
            identifier = pa.nulls(n, pa.string())
            for preferred in reversed(inp.identifier_preference):
                has = pc.is_valid(ids[preferred])
                kind = pc.if_else(has, pa.scalar(IDENTIFIER_KINDS.index(preferred), pa.int8()), kind)
                identifier = pc.if_else(has, ids[preferred], identifier)
            # the identifier not chosen (kept only for the rejects' row values)
            alt = pc.if_else(
                pc.equal(kind, IDENTIFIER_KINDS.index("external_id")),
                ids["braze_id"],
                pc.if_else(pc.equal(kind, IDENTIFIER_KINDS.index("braze_id")), ids["external_id"], null_str),
            )
            arrays: list[pa.Array] = [
                self.numbers(file_col, self.files),
                pc.cast(batch.column("_row"), pa.int64()),
                aud,
                sid,
                self._pairs(aud, sid),
                kind,
                identifier,
                alt,
            ]
            if "c_member" in columns:
                column = columns["c_member"]
                word = pc.utf8_lower(pc.utf8_trim(column, characters=" \t\n\r"))
                member = pc.if_else(
                    pc.is_in(word, pa.array(TRUE_WORDS)),
                    True,
                    pc.if_else(pc.is_in(word, pa.array(FALSE_WORDS)), False, pa.scalar(None, pa.bool_())),
                )
                arrays += [member, pc.if_else(pc.is_null(member), column, null_str)]
            arrays += [columns[internal] for internal, _, _ in self.spec if internal.startswith("c_v")]
            yield pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def reader(self, batches: Iterable[pa.RecordBatch]) -> pa.RecordBatchReader:
        """The normalised batches as an Arrow stream DuckDB can scan.

        :param batches: the caller's batches.
        """
        return pa.RecordBatchReader.from_batches(self.schema, self.batches(batches))


def _check_config(inp: DeltaInput, attribute_template: str) -> None:
    """Refuse configurations that cannot work, before reading any row."""
    if inp.input_kind not in ("snapshot", "changes"):
        raise ValueError(f"input_kind must be 'snapshot' or 'changes', got {inp.input_kind!r}")
    if inp.input_kind == "changes" and not inp.member_col:
        raise ValueError("input_kind='changes' needs member_col (the column saying member true/false)")
    if not inp.identifier_preference:
        raise ValueError("identifier_preference must name at least one identifier kind")
    for kind in inp.identifier_preference:
        if kind not in IDENTIFIER_KINDS:
            raise ValueError(f"unknown identifier kind {kind!r}; use {', '.join(IDENTIFIER_KINDS)}")
        if _identifier_col(inp, kind) is None:
            raise ValueError(f"identifier_preference names {kind!r} but no column is configured for it")
    if len(set(inp.identifier_preference)) != len(inp.identifier_preference):
        raise ValueError("identifier_preference repeats a kind")
    for arg, value in (("audience_id", inp.audience_id), ("split_id", inp.split_id)):
        if value is not None and not value.strip():
            raise ValueError(f"{arg} must not be empty")
    seen: set[str] = set()
    for name in inp.attribute_columns:
        problem = name_problem(name, what="attribute", reserved=RESERVED_ATTRIBUTE_NAMES)
        if problem:
            raise ValueError(f"attribute column: {problem}")
        if name in STATE_IDENTIFIER_COLUMNS:
            raise ValueError(f"attribute column {name!r} clashes with the state's own columns")
        if name in seen:
            raise ValueError(f"attribute column {name!r} is listed twice")
        seen.add(name)
    try:
        attribute_template.format(audience_id="a", split_id="s")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"attribute_template {attribute_template!r} is invalid ({exc!r}); "
            "it may use only {audience_id} and {split_id}"
        ) from exc


def _identifier_col(inp: DeltaInput, kind: str) -> str | None:
    return inp.external_id_col if kind == "external_id" else inp.braze_id_col


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
    arguments when both are given (so an empty single-split snapshot exits every member). A
    split whose applied snapshot is newer than ``snapshot_key`` is skipped; one whose applied
    key equals it was already delivered and is skipped too (nothing to send); ``force`` computes
    both against the applied state anyway.

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
    :param snapshot_key: this snapshot's key (ISO 8601 date or timestamp, e.g. the data
        interval end).
    :param memory_limit: DuckDB's memory limit; beyond it DuckDB spills to ``work_dir``.
    :param threads: DuckDB's worker threads.
    """
    if mode not in ("delta", "full"):
        raise ValueError(f"mode must be 'delta' or 'full', got {mode!r}")
    if exit_value not in (False, None):
        raise ValueError("exit_value must be False or None")
    _check_config(inp, attribute_template)
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
    try:
        plan = DeltaPlan(con=con, run_dir=run_dir, inp=inp, snapshot_key=snapshot_key, force=force)
    except BaseException:
        con.close()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        plan._build(
            store,
            mode=mode,
            exit_value=exit_value,
            attribute_template=attribute_template,
        )
    except BaseException:
        plan.close()
        raise
    return plan


class DeltaPlan:
    """The outcome of :func:`compute_delta`: updates to send, rejects, counts and new state.

    Holds a DuckDB connection: iterate what you need, call :meth:`publish_pending` before sending
    the updates and :meth:`commit` once they were delivered, then :meth:`close` (or use the plan
    as a context manager).
    """

    def __init__(
        self, *, con: duckdb.DuckDBPyConnection, run_dir: str, inp: DeltaInput, snapshot_key: str, force: bool
    ) -> None:
        self._con = con
        self.run_dir = run_dir
        self._inp = inp
        self.snapshot_key = snapshot_key
        self._time = checked_snapshot_key(snapshot_key, "the snapshot_key argument")
        self.force = force
        self.counts = DeltaCounts()
        self.skipped_splits: list[SkippedSplit] = []
        self.new_state_files: list[NewStateFile] = []
        #: the pending markers of earlier runs found when the plan was computed
        self.pending_markers: list[PendingMarker] = []
        #: the name of the marker :meth:`publish_pending` stored for this plan's writes
        self.own_marker: str | None = None
        self._writer = ""
        self._splits: list[_Split] = []
        self._attr_internal = [f"v{i}" for i in range(len(inp.attribute_columns))]
        self._mode: Mode = "delta"
        self._owners: dict[str, tuple[str, str]] | None = None

    # -- building ---------------------------------------------------------------------------

    def _build(
        self, store: SnapshotStore, *, mode: Mode, exit_value: bool | None, attribute_template: str
    ) -> None:
        inp, con = self._inp, self._con
        self._mode = mode
        with self._step("load rows"):
            self._load_rows()
        with self._step("plan splits"):
            self._plan_splits(store, attribute_template)
        with self._step("load applied state"):
            self._load_old_state()
        with self._step("find duplicates"):
            self._find_duplicates()
        with self._step("join"):
            if inp.input_kind == "snapshot":
                self._delta_snapshot(mode)
            else:
                self._delta_changes(mode)
        with self._step("collect writes"):
            self._collect_writes(mode, exit_value)
        with self._step("write new state"):
            self._write_state()
        with self._step("count"):
            self._count()
        if not any(s.repair for s in self._splits):  # (the rows of a repaired split are its applied ones)
            con.execute("DROP TABLE IF EXISTS old")

    @contextlib.contextmanager
    def _step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        log.debug(
            "audience delta: %s took %.2f s (DuckDB memory %s, Arrow %d MiB)",
            name,
            time.perf_counter() - started,
            self._duckdb_memory(),
            pa.total_allocated_bytes() >> 20,
        )

    def _duckdb_memory(self) -> str:
        row = _one_row(self._con, "SELECT sum(memory_usage_bytes) >> 20 FROM duckdb_memory()")
        return f"{row[0]} MiB"

    def _load_rows(self) -> None:
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
        for internal, name in zip(self._attr_internal, inp.attribute_columns, strict=True):
            spec.append((f"c_{internal}", name, True))
        self._spec = spec
        normaliser = _Normaliser(inp, spec)
        self._normaliser = normaliser
        braze = IDENTIFIER_KINDS.index("braze_id")
        checks = [
            f"WHEN aud_no IS NULL THEN {_NO_AUDIENCE}",
            f"WHEN sid_no IS NULL THEN {_NO_SPLIT}",
            f"WHEN kind IS NULL THEN {_NO_IDENTIFIER}",
            f"WHEN kind = {braze} AND NOT regexp_full_match(identifier, {_lit(BRAZE_ID_PATTERN.pattern)}) "
            f"THEN {_BAD_BRAZE_ID}",
        ]
        if inp.input_kind == "changes":
            checks.append(f"WHEN member IS NULL THEN {_BAD_MEMBER}")
        for i, internal in enumerate(self._attr_internal):
            checks.append(f"WHEN length({internal}) > {MAX_STRING_VALUE_LENGTH} THEN {_BAD_VALUE + i}")
        con.register("src", normaliser.reader(inp.batches))
        try:
            con.execute(
                f"""
                CREATE TABLE rows AS
                SELECT *, hash(identifier) AS h, (CASE {" ".join(checks)} END)::SMALLINT AS reason FROM src
                """
            )
        except duckdb.Error:
            # an error raised while reading the input (a missing column, a reader failure) is
            # re-raised as itself rather than as DuckDB's wrapper
            if normaliser.error is not None:
                raise normaliser.error from None
            raise
        con.unregister("src")
        for table, texts in (("files", normaliser.files), ("audiences", normaliser.audiences)):
            self._text_table(table, texts)
        self._text_table("split_ids", normaliser.split_ids)

    def _text_table(self, table: str, texts: list[str]) -> None:
        arrow = pa.table(
            {"no": pa.array(range(len(texts)), pa.int32()), "text": pa.array(texts, pa.string())}
        )
        self._con.register(f"{table}_arrow", arrow)
        self._con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}_arrow")
        self._con.unregister(f"{table}_arrow")

    def _plan_splits(self, store: SnapshotStore, attribute_template: str) -> None:
        """Decide, per split, whether to compute it, skip it (state), repair it or reject it (its name)."""
        self._read_markers(store)
        self._make_splits()
        names_in_use: dict[str, tuple[str, str]] = {}
        # in id order, so which of two clashing splits is rejected does not depend on row order
        for split in sorted(self._splits, key=lambda s: s.key):
            split.attribute = attribute_template.format(
                audience_id=split.audience_id, split_id=split.split_id
            )
            problem = self._name_problem(split, names_in_use)
            if problem is None:
                split.manifest = store.manifest(split.audience_id, split.split_id)
                if split.in_input:
                    problem = self._renamed(split) or self._owned_by_another(split, store)
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
        for split in self._splits:
            if split.processed and split.manifest is not None:
                applied = store.download(split.manifest, local_dir=os.path.join(self.run_dir, "applied"))
                split.state_path = applied.local_path
                split.state_columns = applied.attribute_columns
        self._splits_table()
        computed = [s.no for s in self._splits if s.status == "computed"]
        if len(computed) == len(self._splits):
            where = "reason IS NULL"
        elif computed:
            where = f"reason IS NULL AND pair_no IN ({', '.join(map(str, computed))})"
        else:
            where = "false"
        self._con.execute(f"CREATE VIEW cur AS SELECT *, pair_no AS split_no FROM rows WHERE {where}")
        self._dirty_table()

    def _make_splits(self) -> None:
        """One :class:`_Split` per (audience, split) pair of the input, the arguments and the markers."""
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
        self._text_table("audiences", normaliser.audiences)
        self._text_table("split_ids", normaliser.split_ids)
        for no, (aud_no, sid_no) in enumerate(normaliser.pairs):
            rows, rejects = counted.get(no, (0, 0))
            split = _Split(no, normaliser.audiences[aud_no], normaliser.split_ids[sid_no], rows, rejects)
            split.in_input = no in in_input
            self._splits.append(split)

    def _pair_of(self, audience_id: str, split_id: str) -> int:
        """The number of an (audience, split) pair given by its ids (numbered on first sight)."""
        normaliser = self._normaliser
        aud_no = normaliser.numbers(pa.array([audience_id]), normaliser.audiences)[0].as_py()
        sid_no = normaliser.numbers(pa.array([split_id]), normaliser.split_ids)[0].as_py()
        return normaliser.pair(aud_no, sid_no)

    def _owned_by_another(self, split: _Split, store: SnapshotStore) -> str | None:
        """Why a split may not write its attribute: another split of the applied state writes it."""
        if split.manifest is not None and split.manifest.attribute == split.attribute:
            return None  # checked when the split was first committed
        if self._owners is None:
            self._owners = store.attribute_owners()
        owner = self._owners.get(split.attribute)
        if owner is None or owner == split.key:
            return None
        return (
            f"attribute {split.attribute!r} is already written by audience {owner[0]!r} split {owner[1]!r} "
            f"(applied state of namespace {store.namespace!r}); two splits writing one attribute would "
            "overwrite each other's members. Rename one of them (see 'Renaming an attribute' in "
            "docs/audiences.md)"
        )

    def _mark_repairs(self) -> None:
        """Skipped splits with profiles named by pending markers are repaired (rewritten to their
        applied state); list every skipped split."""
        dirty = self._dirty_splits()
        for split in self._splits:
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
            self.skipped_splits.append(
                SkippedSplit(
                    split.audience_id,
                    split.split_id,
                    split.problem or "",
                    split.rows - split.row_rejects,
                    split.manifest.snapshot_key if split.manifest else None,
                    split.needs_force,
                )
            )

    def _name_problem(self, split: _Split, names_in_use: dict[str, tuple[str, str]]) -> str | None:
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

    def _renamed(self, split: _Split) -> str | None:
        """Why a split cannot change the attribute its state was applied as, unless ``mode="full"``."""
        applied = split.manifest
        if applied is None or applied.attribute == split.attribute or self._mode == "full":
            return None
        return (
            f"its state was applied as attribute {applied.attribute!r}, and this run would write "
            f"{split.attribute!r}: a renamed attribute must be written for every member, so run "
            "once with mode='full' to rename it (see 'Renaming an attribute' in docs/audiences.md)"
        )

    def _order(self, split: _Split) -> None:
        """Skip a split whose applied snapshot is newer, the same, or cannot be ordered (unless ``force``)."""
        applied = split.manifest
        if applied is None or self.force:
            return
        applied_time = parse_snapshot_key(applied.snapshot_key)
        split.status = "skipped"
        if applied_time is None:
            split.needs_force = True
            split.problem = (
                f"the applied snapshot key {applied.snapshot_key!r} is not a date or date-time (written by "
                "an earlier version, e.g. from an unset template parameter), so no snapshot can be ordered "
                f"against it: run once with force=True to apply snapshot {self.snapshot_key} over it"
            )
        elif self._time > applied_time:
            split.status = "computed"
        elif self._time < applied_time:
            split.problem = (
                f"snapshot {self.snapshot_key} is older than the applied {applied.snapshot_key}; "
                "an older snapshot never overwrites a newer one (use force to apply it)"
            )
        else:
            split.problem = (
                f"snapshot {self.snapshot_key} was already applied; nothing to send "
                "(use force to compute it again against the applied state)"
            )

    # -- pending markers ----------------------------------------------------------------------

    def _read_markers(self, store: SnapshotStore) -> None:
        """Load the pending markers of earlier runs into the ``markers`` table."""
        self.pending_markers = store.pending(local_dir=os.path.join(self.run_dir, "pending"))
        self._marker_splits: list[tuple[str, str]] = []
        if not self.pending_markers:
            return
        files = [m.local_path for m in self.pending_markers]
        self._con.execute(
            "CREATE TABLE markers AS SELECT audience_id, split_id, identifier_kind, identifier, filename "
            "FROM read_parquet(?, filename = true)",
            [files],
        )
        self._marker_splits = [
            (str(a), str(s))
            for a, s in self._con.execute(
                "SELECT DISTINCT audience_id, split_id FROM markers ORDER BY ALL"
            ).fetchall()
        ]

    def _dirty_splits(self) -> set[tuple[str, str]]:
        """The splits some pending marker names profiles of."""
        return set(self._marker_splits)

    def _dirty_table(self) -> None:
        """The ``dirty`` table: profiles of processed splits whose Braze value is unknown."""
        self._has_dirty = bool(self._marker_splits) and any(s.processed for s in self._splits)
        if not self._has_dirty:
            return
        self._con.execute(
            f"""
            CREATE TABLE dirty AS
            SELECT DISTINCT s.split_no, {_kind_code("m.identifier_kind")} AS kind, m.identifier,
                   hash(m.identifier) AS h
            FROM markers m JOIN splits s ON m.audience_id = s.audience_id AND m.split_id = s.split_id
            WHERE s.processed
            """
        )

    def _splits_table(self) -> None:
        table = pa.table(
            {
                "split_no": pa.array([s.no for s in self._splits], pa.int32()),
                "audience_id": pa.array([s.audience_id for s in self._splits], pa.string()),
                "split_id": pa.array([s.split_id for s in self._splits], pa.string()),
                "attribute": pa.array([s.attribute for s in self._splits], pa.string()),
                "status": pa.array([s.status for s in self._splits], pa.string()),
                "processed": pa.array([s.processed for s in self._splits], pa.bool_()),
                "problem": pa.array([s.problem for s in self._splits], pa.string()),
            }
        )
        self._con.register("splits_arrow", table)
        self._con.execute("CREATE TABLE splits AS SELECT * FROM splits_arrow")
        self._con.unregister("splits_arrow")

    def _find_duplicates(self) -> None:
        """Find rows repeating a profile already seen in the same split (the first row wins).

        An identical repeat is a duplicate (counted, not sent); a repeat with different values is
        a conflict (rejected). Only hash-equal candidates are compared, so the common case of no
        duplicates costs one aggregation.
        """
        con = self._con
        con.execute(
            "CREATE TABLE dupkeys AS SELECT split_no, kind, h FROM cur GROUP BY ALL HAVING count(*) > 1"
        )
        changes = self._inp.input_kind == "changes"
        values = ["member"] * changes + self._attr_internal
        same = " AND ".join(f"{v} IS NOT DISTINCT FROM first_value({v}) OVER w" for v in values) or "true"
        con.execute(
            f"""
            CREATE TABLE dups AS
            SELECT file_no, _row, split_no, CASE WHEN same THEN 'duplicate' ELSE 'conflict' END AS what,
                   first_file, first_row
            FROM (
                SELECT c.file_no, c._row, c.split_no, {same} AS same,
                       first_value(c.file_no) OVER w AS first_file, first_value(c._row) OVER w AS first_row,
                       row_number() OVER w AS rn
                FROM cur c SEMI JOIN dupkeys d ON c.split_no = d.split_no AND c.kind = d.kind AND c.h = d.h
                WINDOW w AS (PARTITION BY c.split_no, c.kind, c.identifier ORDER BY c.file_no, c._row)
            ) WHERE rn > 1
            """
        )
        has_dups = _one_row(con, "SELECT count(*) FROM dups")
        attrs = "".join(f", {a}" for a in self._attr_internal)
        member = "member" if changes else "NULL::BOOLEAN AS member"
        base = f"SELECT split_no, kind, identifier, h, {member}{attrs}, file_no, _row FROM cur"
        if has_dups[0]:
            base += " c ANTI JOIN dups d USING (file_no, _row)"
        repaired = [s.no for s in self._splits if s.repair]
        if repaired:
            # a repaired split keeps its applied members: they are its "new" rows (from no file)
            member = "true AS member" if changes else "NULL::BOOLEAN AS member"
            base += (
                f" UNION ALL SELECT split_no, kind, identifier, h, {member}{attrs}, NULL::INTEGER, "
                f"NULL::BIGINT FROM old WHERE split_no IN ({', '.join(map(str, repaired))})"
            )
        con.execute(f"CREATE VIEW new AS {base}")

    def _load_old_state(self) -> None:
        """Read the applied state of every computed or repaired split into the ``old`` table."""
        con = self._con
        parts = []
        for split in self._splits:
            if not split.processed or split.state_path is None:
                continue
            attrs = "".join(
                f", {_q(name) if name in split.state_columns else 'NULL::VARCHAR'} AS {a}"
                for a, name in zip(self._attr_internal, self._inp.attribute_columns, strict=True)
            )
            parts.append(
                f"SELECT {split.no}::INTEGER AS split_no, {_kind_code('identifier_kind')} AS kind, "
                "identifier, "
                f"hash(identifier) AS h{attrs} FROM read_parquet({_lit(split.state_path)})"
            )
        attrs = "".join(f", NULL::VARCHAR AS {a}" for a in self._attr_internal)
        empty = (
            "SELECT NULL::INTEGER AS split_no, NULL::TINYINT AS kind, NULL::VARCHAR AS identifier, "
            f"NULL::UBIGINT AS h{attrs} WHERE false"
        )
        con.execute(f"CREATE TABLE old AS {' UNION ALL '.join(parts) if parts else empty}")

    def _join_on(self) -> str:
        # the 64-bit hash drives the hash join; the residual check on the string makes a hash
        # collision harmless (the pair simply does not match)
        return (
            "n.split_no = o.split_no AND n.h = o.h AND n.kind = o.kind AND NOT (n.identifier <> o.identifier)"
        )

    def _delta_snapshot(self, mode: Mode) -> None:
        """Join the new members with the applied ones (full outer join, changes only kept) and with
        the dirty profiles (whose Braze value is unknown: always written)."""
        changed = [f"(n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self._attr_internal]
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self._attr_internal)
        source = f"new n FULL OUTER JOIN old o ON {self._join_on()}"
        split_no, kind, identifier, dirty = (
            "coalesce(n.split_no, o.split_no)",
            "coalesce(n.kind, o.kind)",
            ("coalesce(n.identifier, o.identifier)"),
            "false",
        )
        if self._has_dirty:
            source += (
                f" FULL OUTER JOIN dirty x ON x.split_no = {split_no} AND x.kind = {kind} "
                f"AND x.h = coalesce(n.h, o.h) AND x.identifier = {identifier}"
            )
            split_no, kind = (
                "coalesce(n.split_no, o.split_no, x.split_no)",
                "coalesce(n.kind, o.kind, x.kind)",
            )
            identifier, dirty = "coalesce(n.identifier, o.identifier, x.identifier)", "x.h IS NOT NULL"
        keep = (
            "" if mode == "full" else "WHERE " + " OR ".join(["n.h IS NULL", "o.h IS NULL", dirty, *changed])
        )
        self._con.execute(
            f"""
            CREATE TABLE delta AS
            SELECT {split_no} AS split_no, {kind} AS kind, {identifier} AS identifier,
                   n.h IS NOT NULL AS in_new, o.h IS NOT NULL AS in_old, n.h IS NOT NULL AS member,
                   {dirty} AS dirty{attrs}
            FROM {source}
            {keep}
            """
        )

    def _delta_changes(self, mode: Mode) -> None:
        """Join the change rows with the applied members (left join: only change rows matter), plus
        the dirty profiles no change row names (written with their applied membership)."""
        changed = [
            f"(n.member AND n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self._attr_internal
        ]
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self._attr_internal)
        source, dirty = f"new n LEFT JOIN old o ON {self._join_on()}", "false"
        if self._has_dirty:
            source += " LEFT JOIN dirty x ON x.split_no = n.split_no AND x.kind = n.kind AND x.h = n.h"
            source += " AND x.identifier = n.identifier"
            dirty = "x.h IS NOT NULL"
        conditions = ["(n.member AND o.h IS NULL)", "(NOT n.member AND o.h IS NOT NULL)", dirty, *changed]
        keep = "" if mode == "full" else "WHERE " + " OR ".join(conditions)
        sql = f"""
            SELECT n.split_no, n.kind, n.identifier, n.member AS in_new, o.h IS NOT NULL AS in_old,
                   n.member, {dirty} AS dirty{attrs}
            FROM {source}
            {keep}
        """
        if self._has_dirty:
            old_attrs = "".join(f", o.{a} AS {a}, o.{a} AS old_{a}" for a in self._attr_internal)
            sql += f"""
            UNION ALL
            SELECT x.split_no, x.kind, x.identifier, o.h IS NOT NULL AS in_new, o.h IS NOT NULL AS in_old,
                   o.h IS NOT NULL AS member, true AS dirty{old_attrs}
            FROM dirty x
            LEFT JOIN old o ON x.split_no = o.split_no AND x.kind = o.kind AND x.h = o.h
                AND x.identifier = o.identifier
            ANTI JOIN new n ON x.split_no = n.split_no AND x.kind = n.kind AND x.h = n.h
                AND x.identifier = n.identifier
            """
        self._con.execute(f"CREATE TABLE delta AS {sql}")

    def _collect_writes(self, mode: Mode, exit_value: bool | None) -> None:
        """Turn the delta into attribute writes: one row per (profile, attribute)."""
        con = self._con
        exit_sql = "NULL::BOOLEAN" if exit_value is None else "false"
        # a dirty profile (named by a pending marker) is written whatever the applied state says;
        # mode="full" rewrites every membership of the splits it computes (not of repaired ones)
        full = "s.status = 'computed'" if mode == "full" else "false"
        if self._inp.input_kind == "snapshot":
            enter_cond = f"d.in_new AND (NOT d.in_old OR d.dirty OR {full})"
            exit_cond = "NOT d.in_new AND (d.in_old OR d.dirty)"
        else:
            enter_cond = f"d.member AND (NOT d.in_old OR d.dirty OR {full})"
            exit_cond = f"NOT d.member AND (d.in_old OR d.dirty OR {full})"
        # 'enter'/'exit' change the membership; 'resend' repeats it (full mode only); 'repair'
        # repeats it for a dirty profile
        membership = f"""
            SELECT {_kind_text("d.kind")} AS kind, d.identifier, s.attribute AS name, false AS is_str,
                   CASE WHEN {enter_cond} THEN true ELSE {exit_sql} END AS b, NULL::VARCHAR AS s,
                   d.split_no,
                   CASE WHEN ({enter_cond}) = d.in_old THEN CASE WHEN d.dirty THEN 'repair' ELSE 'resend' END
                        WHEN {enter_cond} THEN 'enter' ELSE 'exit' END AS what
            FROM delta d JOIN splits s USING (split_no)
            WHERE ({enter_cond}) OR ({exit_cond})
        """
        attr_parts = []
        for a, name in zip(self._attr_internal, self._inp.attribute_columns, strict=True):
            cond = (
                f"d.member AND d.{a} IS NOT NULL AND (d.{a} IS DISTINCT FROM d.old_{a} OR d.dirty OR {full})"
            )
            attr_parts.append(
                f"SELECT {_kind_text('d.kind')} AS kind, d.identifier, {_lit(name)} AS name, true AS is_str, "
                f"NULL::BOOLEAN AS b, d.{a} AS s, d.split_no, 'attribute' AS what "
                f"FROM delta d JOIN splits s USING (split_no) WHERE {cond}"
            )
        processed = sum(1 for s in self._splits if s.processed)
        if attr_parts:
            attr_sql = " UNION ALL ".join(attr_parts)
            if processed > 1:
                # a profile in several splits gets each attribute column once (lowest split wins)
                attr_sql = (
                    f"SELECT * FROM ({attr_sql}) QUALIFY row_number() OVER "
                    "(PARTITION BY kind, identifier, name ORDER BY split_no) = 1"
                )
            con.execute(f"CREATE TABLE writes AS {membership} UNION ALL {attr_sql}")
        else:
            con.execute(f"CREATE TABLE writes AS {membership}")

    def _write_state(self) -> None:
        """Write the new state of every computed split as one Parquet file each."""
        con, inp = self._con, self._inp
        computed = [s for s in self._splits if s.status == "computed"]
        if not computed:
            return
        out_dir = os.path.join(self.run_dir, "state")
        names = list(inp.attribute_columns)
        merged = "".join(
            f", coalesce(n.{a}, o.{a}) AS {_q(name)}"
            for a, name in zip(self._attr_internal, names, strict=True)
        )
        if inp.input_kind == "snapshot" and not names:
            source = f"SELECT split_no, {_kind_text('kind')} AS identifier_kind, identifier FROM new"
        elif inp.input_kind == "snapshot":
            # a missing value is not sent, so the state keeps the value Braze still holds
            source = (
                f"SELECT n.split_no, {_kind_text('n.kind')} AS identifier_kind, n.identifier{merged} "
                f"FROM new n LEFT JOIN old o ON {self._join_on()}"
            )
        else:
            source = (
                "SELECT coalesce(n.split_no, o.split_no) AS split_no, "
                f"{_kind_text('coalesce(n.kind, o.kind)')} AS identifier_kind, "
                f"coalesce(n.identifier, o.identifier) AS identifier{merged} "
                f"FROM new n FULL OUTER JOIN old o ON {self._join_on()} WHERE n.h IS NULL OR n.member"
            )
        if any(s.repair for s in self._splits):  # repaired splits keep their applied state
            source = f"SELECT * FROM ({source}) WHERE split_no IN ({', '.join(str(s.no) for s in computed)})"
        os.makedirs(out_dir, exist_ok=True)
        if len(computed) == 1:
            # one split (the usual case): write its file directly, no partitioning pass
            only = os.path.join(out_dir, f"split-{computed[0].no}.parquet")
            con.execute(
                f"COPY (SELECT * EXCLUDE (split_no) FROM ({source})) TO {_lit(only)} (FORMAT parquet)"
            )
        else:
            con.execute(f"COPY ({source}) TO {_lit(out_dir)} (FORMAT parquet, PARTITION_BY (split_no))")
        empty_cols = "".join(f", NULL::VARCHAR AS {_q(name)}" for name in names)
        for split in computed:
            files = sorted(glob.glob(os.path.join(out_dir, f"split_no={split.no}", "*.parquet")))
            path = os.path.join(out_dir, f"split-{split.no}.parquet")
            if len(computed) == 1:
                pass
            elif len(files) == 1:
                shutil.move(files[0], path)
            elif files:
                con.execute(f"COPY (SELECT * FROM read_parquet(?)) TO {_lit(path)} (FORMAT parquet)", [files])
            else:
                con.execute(
                    f"COPY (SELECT NULL::VARCHAR AS identifier_kind, NULL::VARCHAR AS identifier{empty_cols} "
                    f"WHERE false) TO {_lit(path)} (FORMAT parquet)"
                )
            members = int(_one_row(con, "SELECT count(*) FROM read_parquet(?)", [path])[0])
            self.new_state_files.append(
                NewStateFile(
                    split.audience_id,
                    split.split_id,
                    path,
                    split.attribute,
                    members,
                    tuple(names),
                    split.manifest,
                )
            )

    def _count(self) -> None:
        """Fill :attr:`counts` from the tables."""
        con, inp = self._con, self._inp
        counts = self.counts
        rows_read, rejected = _one_row(con, "SELECT count(*), count(reason) FROM rows")
        counts.rows_read, counts.rejected = int(rows_read), int(rejected)
        dups = {
            (no, what): n
            for no, what, n in con.execute(
                "SELECT split_no, what, count(*) FROM dups GROUP BY ALL"
            ).fetchall()
        }
        writes = {
            (no, what): n
            for no, what, n in con.execute(
                "SELECT split_no, what, count(*) FROM writes GROUP BY ALL"
            ).fetchall()
        }
        members = {(f.audience_id, f.split_id): f.members for f in self.new_state_files}
        unchanged: dict[int, int] = {}
        if inp.input_kind == "changes":
            # change rows restating the applied membership (true for a member, false for a non-member)
            unchanged = dict(
                con.execute(
                    f"""
                    SELECT n.split_no, count(*) FROM new n LEFT JOIN old o ON {self._join_on()}
                    WHERE n.member = (o.h IS NOT NULL) GROUP BY 1
                    """
                ).fetchall()
            )
        for split in self._splits:
            sc = SplitCounts(
                split.audience_id, split.split_id, split.attribute, split.status, rows=split.rows
            )
            sc.rejected = split.row_rejects
            sc.reason = split.problem
            if split.status == "rejected":
                sc.rejected = split.rows
                counts.rejected += split.rows - split.row_rejects
            elif split.status == "skipped":
                sc.skipped_rows = split.rows - split.row_rejects
                counts.skipped_rows += sc.skipped_rows
                sc.repaired = writes.get((split.no, "repair"), 0) + writes.get((split.no, "resend"), 0)
                sc.attribute_updates = writes.get((split.no, "attribute"), 0)
                sc.data_points = sc.repaired + sc.attribute_updates
                counts.repaired += sc.repaired
                counts.attribute_updates += sc.attribute_updates
            else:
                sc.duplicates = dups.get((split.no, "duplicate"), 0)
                conflicts = dups.get((split.no, "conflict"), 0)
                sc.rejected += conflicts
                counts.rejected += conflicts
                sc.entered = writes.get((split.no, "enter"), 0)
                sc.exited = writes.get((split.no, "exit"), 0)
                sc.resent = writes.get((split.no, "resend"), 0)
                sc.repaired = writes.get((split.no, "repair"), 0)
                sc.attribute_updates = writes.get((split.no, "attribute"), 0)
                sc.members = members.get((split.audience_id, split.split_id), 0)
                # snapshot input: the members that were already applied
                sc.unchanged = (
                    sc.members - sc.entered if inp.input_kind == "snapshot" else unchanged.get(split.no, 0)
                )
                sc.members = members.get((split.audience_id, split.split_id), 0)
                sc.data_points = sc.entered + sc.exited + sc.resent + sc.repaired + sc.attribute_updates
                counts.duplicates += sc.duplicates
                counts.entered += sc.entered
                counts.exited += sc.exited
                counts.resent += sc.resent
                counts.repaired += sc.repaired
                counts.unchanged += sc.unchanged
                counts.members += sc.members
                counts.attribute_updates += sc.attribute_updates
                counts.full_resync_data_points += sc.members * (1 + len(inp.attribute_columns))
            counts.splits[f"{split.audience_id}/{split.split_id}"] = sc
        data_points, profiles = _one_row(
            con, "SELECT count(*), count(DISTINCT (kind, identifier)) FROM writes"
        )
        counts.data_points, counts.profiles = int(data_points), int(profiles)

    # -- results -----------------------------------------------------------------------------

    def iter_updates(self, batch_rows: int = 100_000) -> Iterator[UserUpdate]:
        """The writes grouped per profile, ordered by identifier kind then identifier.

        Streamed from DuckDB ``batch_rows`` writes at a time; a profile's writes are never split
        across two updates.

        :param batch_rows: writes fetched per chunk.
        """
        reader = self._con.sql(
            f"""
            WITH profiles AS (SELECT DISTINCT kind, identifier FROM writes),
                 used AS (
                     SELECT {_kind_text("n.kind")} AS kind, n.identifier, count(n.file_no) AS rows
                     FROM new n SEMI JOIN profiles p
                         ON {_kind_text("n.kind")} = p.kind AND n.identifier = p.identifier
                     GROUP BY ALL
                 )
            SELECT w.kind, w.identifier, w.name, w.is_str, w.b, w.s, coalesce(u.rows, 0) AS rows
            FROM writes w LEFT JOIN used u ON w.kind = u.kind AND w.identifier = u.identifier
            ORDER BY w.kind, w.identifier, w.name
            """
        ).to_arrow_reader(batch_rows)
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
        inp = self._inp
        files = self._normaliser.files
        ext, bid = IDENTIFIER_KINDS.index("external_id"), IDENTIFIER_KINDS.index("braze_id")
        exprs = {
            "c_aud": "a.text",
            "c_split": "i.text",
            "c_ext": f"CASE r.kind WHEN {ext} THEN r.identifier ELSE r.alt_id END",
            "c_bid": f"CASE r.kind WHEN {bid} THEN r.identifier ELSE r.alt_id END",
            "c_member": "coalesce(r.raw_member, r.member::VARCHAR)",
        }
        cols = [name for _, name, _ in self._spec]
        values_sql = "".join(
            f", {exprs.get(internal, 'r.' + internal[2:])} AS c{n}"
            for n, (internal, _, _) in enumerate(self._spec)
        )
        reader = self._con.sql(
            f"""
            SELECT r.file_no, r._row, r.reason, s.problem AS split_problem, s.status AS split_status,
                   a.text AS s_aud, i.text AS s_split, d.what, d.first_file, d.first_row{values_sql}
            FROM rows r
            LEFT JOIN splits s ON r.pair_no = s.split_no
            LEFT JOIN audiences a ON r.aud_no = a.no
            LEFT JOIN split_ids i ON r.sid_no = i.no
            LEFT JOIN (SELECT * FROM dups WHERE what = 'conflict') d
                ON r.file_no = d.file_no AND r._row = d._row
            WHERE r.reason IS NOT NULL OR s.status = 'rejected' OR d.what IS NOT NULL
            ORDER BY r.file_no, r._row
            """
        ).to_arrow_reader(batch_rows)
        for batch in reader:
            for rec in batch.to_pylist():
                row_dict = {name: rec[f"c{n}"] for n, name in enumerate(cols)}
                if rec["first_file"] is not None:
                    rec["first_file"] = files[rec["first_file"]]
                yield Reject(files[rec["file_no"]], rec["_row"], self._reason(rec, row_dict, inp), row_dict)

    def _reason(self, rec: dict[str, Any], row_dict: dict[str, Any], inp: DeltaInput) -> str:
        """The text of a reject's reason (codes are turned into words only for rejected rows)."""
        code = rec["reason"]
        if code == _NO_AUDIENCE:
            return f"audience id column {inp.audience_col!r} is empty"
        if code == _NO_SPLIT:
            return f"split id column {inp.split_col!r} is empty"
        if code == _NO_IDENTIFIER:
            named = [repr(_identifier_col(inp, kind)) for kind in inp.identifier_preference]
            if len(named) == 1:
                return f"no identifier: {named[0]} is empty"
            return f"no identifier: {' and '.join(named)} are all empty"
        if code == _BAD_BRAZE_ID:
            return braze_id_problem(row_dict.get(inp.braze_id_col or "")) or "invalid braze_id"
        if code == _BAD_MEMBER:
            return (
                f"{inp.member_col!r} value {row_dict.get(inp.member_col or '')!r} is not a boolean "
                f"({'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)})"
            )
        if code is not None and code >= _BAD_VALUE:
            name = inp.attribute_columns[code - _BAD_VALUE]
            value = row_dict.get(name)
            return value_problem(value, where=f"attribute {name!r}") or f"attribute {name!r} is invalid"
        if rec["split_status"] == "rejected":
            return str(rec["split_problem"])
        if rec["what"] == "conflict":
            return (
                f"conflicts with row {rec['first_row']} of {rec['first_file']}: same profile in audience "
                f"{rec['s_aud']!r} split {rec['s_split']!r} with different values (the first row is used)"
            )
        return "rejected"

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
            ) TO {_lit(path)} (FORMAT parquet)
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
            if _one_row(self._con, f"SELECT count(*) {others}", [marker.local_path, handled])[0]:
                path = os.path.join(self.run_dir, f"rest-{marker.name}")
                self._con.execute(
                    f"COPY (SELECT * EXCLUDE (filename) {others}) TO {_lit(path)} (FORMAT parquet)",
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
