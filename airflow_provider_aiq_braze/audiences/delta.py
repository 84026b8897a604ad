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

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.audiences.state import SnapshotStore, compare_snapshot_keys
from airflow_provider_aiq_braze.braze.limits import MAX_STRING_VALUE_LENGTH
from airflow_provider_aiq_braze.braze.rules import RESERVED_ATTRIBUTE_NAMES, name_problem, value_problem
from airflow_provider_aiq_braze.contracts.identifiers import (
    IDENTIFIER_KINDS,
    Refused,
    identifier_array,
    refusal_texts,
)
from airflow_provider_aiq_braze.contracts.identifiers import identifier as identifier_text
from airflow_provider_aiq_braze.staging import json_cells_column

log = logging.getLogger(__name__)

InputKind = Literal["snapshot", "changes"]
Mode = Literal["delta", "full"]
#: The values of ``input_kind`` and ``mode``.
INPUT_KINDS: tuple[InputKind, ...] = ("snapshot", "changes")
MODES: tuple[Mode, ...] = ("delta", "full")

#: Default name of the membership attribute of a split.
DEFAULT_ATTRIBUTE_TEMPLATE = "AIQ_{audience_id}_{split_id}"
#: Column names the state files use for the identifier; attribute columns may not take them.
STATE_IDENTIFIER_COLUMNS = ("identifier_kind", "identifier")
#: Accepted spellings of a ``member`` value (compared trimmed and case-insensitively).
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")

# reason codes of row-level rejects (the text is made when the rejects are read)
_NO_AUDIENCE, _NO_SPLIT, _NO_IDENTIFIER, _NOT_AN_IDENTIFIER, _BAD_MEMBER, _BAD_VALUE = 1, 2, 3, 4, 5, 100


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
    """

    audience_id: str
    split_id: str
    reason: str
    rows: int
    applied_key: str | None


@dataclass(frozen=True)
class NewStateFile:
    """The new state of one split, ready for :meth:`SnapshotStore.commit`.

    :param audience_id: the audience id.
    :param split_id: the split id.
    :param path: the local Parquet file.
    :param attribute: the membership attribute.
    :param members: members in the file.
    :param attribute_columns: the attribute columns in the file.
    """

    audience_id: str
    split_id: str
    path: str
    attribute: str
    members: int
    attribute_columns: tuple[str, ...]


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
    applied_key: str | None = None
    state_path: str | None = None
    state_columns: tuple[str, ...] = ()


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


def _q(name: str) -> str:
    """Quote an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    """Quote an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


#: The internal names of the columns read by the identifier rule, and the one of each identifier kind.
_ID_INTERNALS = frozenset({"c_aud", "c_split", "c_ext", "c_bid"})
_ID_COLUMN_OF = {"external_id": "c_ext", "braze_id": "c_bid"}


class _Identifiers:
    """The id columns of one input batch read by the one identifier rule (vectorised).

    :param batch: the input batch (JSON Lines batches mark non-string cells, see
        :func:`~airflow_provider_aiq_braze.staging.json_cells_column`).
    :param spec: ``(internal name, source column, required)`` of the columns read.
    :param columns: the columns read, by internal name.
    """

    def __init__(
        self, batch: pa.RecordBatch, spec: list[tuple[str, str, bool]], columns: dict[str, pa.Array]
    ) -> None:
        self._n = batch.num_rows
        self._sources = {internal: source for internal, source, _ in spec}
        self._read: dict[str, tuple[pa.Array, Refused, pa.Array | None]] = {}
        names = batch.schema.names
        for internal in _ID_INTERNALS.intersection(columns):
            marks = json_cells_column(self._sources[internal])
            cells = batch.column(marks) if marks in names else None
            values, refused = identifier_array(columns[internal], cells)
            self._read[internal] = (values, refused, cells)
        self._raw = columns

    def values(self, internal: str) -> pa.Array:
        """The identifiers of a column (null where empty or refused; all null when not read).

        :param internal: the column's internal name.
        """
        read = self._read.get(internal)
        return read[0] if read is not None else pa.nulls(self._n, pa.string())

    def chosen(self, preference: Sequence[str]) -> tuple[pa.Array, pa.Array, pa.Array]:
        """Each row's identifier kind (its position in :data:`IDENTIFIER_KINDS`), identifier, and problem.

        As :func:`~airflow_provider_aiq_braze.contracts.common.pick_identifier`: the first preferred
        kind with a value wins; a refused value met before it rejects the row. The audience and split
        columns are read first: a refused audience or split id rejects the row too.

        :param preference: identifier kinds in order of preference.
        """
        n = self._n
        kind = pa.nulls(n, pa.int8())
        chosen = pa.nulls(n, pa.string())
        problem = pa.nulls(n, pa.string())
        decided: Refused = False
        order = [c for c in ("c_aud", "c_split") if c in self._read] + [_ID_COLUMN_OF[k] for k in preference]
        for internal in order:
            if internal not in self._read:
                continue
            values, refused, cells = self._read[internal]
            if refused is not False:
                new = refused if decided is False else pc.and_(refused, pc.invert(decided))
                reasons = refusal_texts(self._raw[internal], cells, new, self._sources[internal])
                problem = pc.coalesce(problem, reasons)
                decided = new if decided is False else pc.or_(decided, new)
            if internal in ("c_aud", "c_split"):
                continue
            has = (
                pc.is_valid(values) if decided is False else pc.and_(pc.is_valid(values), pc.invert(decided))
            )
            position = IDENTIFIER_KINDS.index(next(k for k, c in _ID_COLUMN_OF.items() if c == internal))
            kind = pc.if_else(has, pa.scalar(position, pa.int8()), kind)
            chosen = pc.if_else(has, values, chosen)
            decided = has if decided is False else pc.or_(decided, has)
        return kind, chosen, problem


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
            pa.field("id_problem", pa.string()),
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
                    if internal in _ID_INTERNALS or column.type == pa.string():
                        columns[internal] = column  # ids keep their type: the identifier rule reads it
                    else:
                        columns[internal] = pc.cast(column, pa.string())
                elif required:
                    where = file_col[0].as_py() if n else "input"
                    raise ValueError(f"{where}: the input has no column {source!r}")
                else:
                    columns[internal] = pa.nulls(n, pa.string())
            ids = _Identifiers(batch, self.spec, columns)
            if inp.audience_id is not None:
                aud = self._constant(identifier_text(inp.audience_id, "audience_id") or "", self.audiences, n)
            else:
                aud = self.numbers(ids.values("c_aud"), self.audiences)
            if inp.split_id is not None:
                sid = self._constant(identifier_text(inp.split_id, "split_id") or "", self.split_ids, n)
            else:
                sid = self.numbers(ids.values("c_split"), self.split_ids)
            kind, identifier_col, problem = ids.chosen(inp.identifier_preference)
            ids_by_kind = {kind_name: ids.values(_ID_COLUMN_OF[kind_name]) for kind_name in IDENTIFIER_KINDS}
            # the identifier not chosen (kept only for the rejects' row values)
            alt = pc.if_else(
                pc.equal(kind, IDENTIFIER_KINDS.index("external_id")),
                ids_by_kind["braze_id"],
                pc.if_else(
                    pc.equal(kind, IDENTIFIER_KINDS.index("braze_id")), ids_by_kind["external_id"], null_str
                ),
            )
            arrays: list[pa.Array] = [
                self.numbers(file_col, self.files),
                pc.cast(batch.column("_row"), pa.int64()),
                aud,
                sid,
                self._pairs(aud, sid),
                kind,
                identifier_col,
                alt,
                problem,
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
    """Refuse configurations that cannot work, before reading any row (the operator's own checks)."""
    arguments.choice("input_kind", inp.input_kind, INPUT_KINDS)
    if inp.input_kind == "changes" and not inp.member_col:
        raise ValueError("input_kind='changes' needs member_col (the column saying member true/false)")
    for kind in arguments.identifier_preference(inp.identifier_preference):
        if _identifier_col(inp, kind) is None:
            raise ValueError(f"identifier_preference names {kind!r} but no column is configured for it")
    for arg, value in (("audience_id", inp.audience_id), ("split_id", inp.split_id)):
        if value is not None:
            arguments.identifier_argument(arg, value, optional=False)
    arguments.attribute_columns(
        "attribute_columns",
        list(inp.attribute_columns),
        reserved=STATE_IDENTIFIER_COLUMNS,
        reserved_by="the audience state's own columns",
    )
    arguments.attribute_template(attribute_template)


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
    arguments.choice("mode", mode, MODES)
    arguments.choice("exit_value", exit_value, (False, None))
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
    plan = DeltaPlan(
        con=con,
        run_dir=run_dir,
        inp=inp,
        snapshot_key=snapshot_key,
        force=force,
    )
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

    Holds a DuckDB connection: iterate what you need, call :meth:`commit` once the updates were
    delivered, then :meth:`close` (or use the plan as a context manager).
    """

    def __init__(
        self, *, con: duckdb.DuckDBPyConnection, run_dir: str, inp: DeltaInput, snapshot_key: str, force: bool
    ) -> None:
        self._con = con
        self.run_dir = run_dir
        self._inp = inp
        self.snapshot_key = snapshot_key
        self.force = force
        self.counts = DeltaCounts()
        self.skipped_splits: list[SkippedSplit] = []
        self.new_state_files: list[NewStateFile] = []
        self._splits: list[_Split] = []
        self._attr_internal = [f"v{i}" for i in range(len(inp.attribute_columns))]

    # -- building ---------------------------------------------------------------------------

    def _build(
        self, store: SnapshotStore, *, mode: Mode, exit_value: bool | None, attribute_template: str
    ) -> None:
        inp, con = self._inp, self._con
        with self._step("load rows"):
            self._load_rows()
        with self._step("plan splits"):
            self._plan_splits(store, attribute_template)
        with self._step("find duplicates"):
            self._find_duplicates()
        with self._step("load applied state"):
            self._load_old_state()
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
        row = self._con.execute("SELECT sum(memory_usage_bytes) >> 20 FROM duckdb_memory()").fetchone()
        return f"{row[0]} MiB" if row else "?"

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
        checks = [
            f"WHEN id_problem IS NOT NULL THEN {_NOT_AN_IDENTIFIER}",
            f"WHEN aud_no IS NULL THEN {_NO_AUDIENCE}",
            f"WHEN sid_no IS NULL THEN {_NO_SPLIT}",
            f"WHEN kind IS NULL THEN {_NO_IDENTIFIER}",
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
        """Decide, per split, whether to compute it, skip it (state) or reject it (bad name)."""
        inp, con = self._inp, self._con
        normaliser = self._normaliser
        counted = {
            pair_no: (n, r)
            for pair_no, n, r in con.execute(
                "SELECT pair_no, count(*), count(reason) FROM rows WHERE pair_no IS NOT NULL GROUP BY 1"
            ).fetchall()
        }
        if inp.audience_id is not None and inp.split_id is not None:
            aud_no = normaliser.numbers(pa.array([inp.audience_id.strip()]), normaliser.audiences)[0].as_py()
            sid_no = normaliser.numbers(pa.array([inp.split_id.strip()]), normaliser.split_ids)[0].as_py()
            normaliser.pair(aud_no, sid_no)
            self._text_table("audiences", normaliser.audiences)
            self._text_table("split_ids", normaliser.split_ids)
        for no, (aud_no, sid_no) in enumerate(normaliser.pairs):
            rows, rejects = counted.get(no, (0, 0))
            self._splits.append(
                _Split(no, normaliser.audiences[aud_no], normaliser.split_ids[sid_no], rows, rejects)
            )
        attributes_in_use: dict[str, tuple[str, str]] = {}
        # in id order, so which of two clashing splits is rejected does not depend on row order
        for split in sorted(self._splits, key=lambda s: (s.audience_id, s.split_id)):
            audience_id, split_id = split.audience_id, split.split_id
            split.attribute = attribute_template.format(audience_id=audience_id, split_id=split_id)
            problem = name_problem(split.attribute, what="attribute", reserved=RESERVED_ATTRIBUTE_NAMES)
            if problem is None and split.attribute in inp.attribute_columns:
                problem = f"attribute {split.attribute!r} is also an attribute column"
            if problem is None and split.attribute in attributes_in_use:
                other = attributes_in_use[split.attribute]
                problem = (
                    f"attribute {split.attribute!r} is also the attribute of audience {other[0]!r} "
                    f"split {other[1]!r} (the attribute template must tell splits apart)"
                )
            if problem is not None:
                split.status = "rejected"
                split.problem = (
                    f"invalid membership attribute for audience {audience_id!r} split {split_id!r}: {problem}"
                )
                continue
            attributes_in_use[split.attribute] = (audience_id, split_id)
            applied = store.applied_key(audience_id, split_id)
            split.applied_key = applied
            if applied is not None and not self.force:
                order = compare_snapshot_keys(self.snapshot_key, applied)
                if order < 0:
                    split.status = "skipped"
                    split.problem = (
                        f"snapshot {self.snapshot_key} is older than the applied {applied}; "
                        "an older snapshot never overwrites a newer one (use force to apply it)"
                    )
                elif order == 0:
                    split.status = "skipped"
                    split.problem = (
                        f"snapshot {self.snapshot_key} was already applied; nothing to send "
                        "(use force to compute it again against the applied state)"
                    )
            if split.status == "skipped":
                self.skipped_splits.append(
                    SkippedSplit(
                        audience_id, split_id, split.problem or "", split.rows - split.row_rejects, applied
                    )
                )
                continue
            if applied is not None:
                snapshot = store.load(audience_id, split_id, local_dir=os.path.join(self.run_dir, "applied"))
                if snapshot is not None:
                    split.state_path = snapshot.local_path
                    split.state_columns = snapshot.attribute_columns
        table = pa.table(
            {
                "split_no": pa.array([s.no for s in self._splits], pa.int32()),
                "audience_id": pa.array([s.audience_id for s in self._splits], pa.string()),
                "split_id": pa.array([s.split_id for s in self._splits], pa.string()),
                "attribute": pa.array([s.attribute for s in self._splits], pa.string()),
                "status": pa.array([s.status for s in self._splits], pa.string()),
                "problem": pa.array([s.problem for s in self._splits], pa.string()),
            }
        )
        con.register("splits_arrow", table)
        con.execute("CREATE TABLE splits AS SELECT * FROM splits_arrow")
        con.unregister("splits_arrow")
        computed = [s.no for s in self._splits if s.status == "computed"]
        if len(computed) == len(self._splits):
            where = "reason IS NULL"
        elif computed:
            where = f"reason IS NULL AND pair_no IN ({', '.join(map(str, computed))})"
        else:
            where = "false"
        con.execute(f"CREATE VIEW cur AS SELECT *, pair_no AS split_no FROM rows WHERE {where}")

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
        has_dups = con.execute("SELECT count(*) FROM dups").fetchone()
        attrs = "".join(f", {a}" for a in self._attr_internal)
        member = "member" if changes else "NULL::BOOLEAN AS member"
        base = f"SELECT split_no, kind, identifier, h, {member}{attrs}, file_no, _row FROM cur"
        if has_dups and has_dups[0]:
            con.execute(f"CREATE VIEW new AS {base} c ANTI JOIN dups d USING (file_no, _row)")
        else:
            con.execute(f"CREATE VIEW new AS {base}")

    def _load_old_state(self) -> None:
        """Read the applied state of every computed split into the ``old`` table."""
        con = self._con
        parts = []
        for split in self._splits:
            if split.status != "computed" or split.state_path is None:
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
        """Join the new members with the applied ones (full outer join, changes only kept)."""
        changed = [f"(n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self._attr_internal]
        keep = "" if mode == "full" else "WHERE " + " OR ".join(["n.h IS NULL", "o.h IS NULL", *changed])
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self._attr_internal)
        self._con.execute(
            f"""
            CREATE TABLE delta AS
            SELECT coalesce(n.split_no, o.split_no) AS split_no, coalesce(n.kind, o.kind) AS kind,
                   coalesce(n.identifier, o.identifier) AS identifier,
                   n.h IS NOT NULL AS in_new, o.h IS NOT NULL AS in_old, n.h IS NOT NULL AS member{attrs}
            FROM new n FULL OUTER JOIN old o ON {self._join_on()}
            {keep}
            """
        )

    def _delta_changes(self, mode: Mode) -> None:
        """Join the change rows with the applied members (left join: only change rows matter)."""
        changed = [
            f"(n.member AND n.{a} IS NOT NULL AND n.{a} IS DISTINCT FROM o.{a})" for a in self._attr_internal
        ]
        keep = (
            ""
            if mode == "full"
            else "WHERE "
            + " OR ".join(["(n.member AND o.h IS NULL)", "(NOT n.member AND o.h IS NOT NULL)", *changed])
        )
        attrs = "".join(f", n.{a} AS {a}, o.{a} AS old_{a}" for a in self._attr_internal)
        self._con.execute(
            f"""
            CREATE TABLE delta AS
            SELECT n.split_no, n.kind, n.identifier, n.member AS in_new, o.h IS NOT NULL AS in_old,
                   n.member{attrs}
            FROM new n LEFT JOIN old o ON {self._join_on()}
            {keep}
            """
        )

    def _collect_writes(self, mode: Mode, exit_value: bool | None) -> None:
        """Turn the delta into attribute writes: one row per (profile, attribute)."""
        con = self._con
        exit_sql = "NULL::BOOLEAN" if exit_value is None else "false"
        if self._inp.input_kind == "snapshot":
            enter_cond = "d.in_new" if mode == "full" else "d.in_new AND NOT d.in_old"
            exit_cond = "d.in_old AND NOT d.in_new"
        else:
            enter_cond = "d.member" if mode == "full" else "d.member AND NOT d.in_old"
            exit_cond = "NOT d.member" if mode == "full" else "NOT d.member AND d.in_old"
        # 'enter'/'exit' change the membership; 'resend' repeats it (full mode only)
        membership = f"""
            SELECT {_kind_text("d.kind")} AS kind, d.identifier, s.attribute AS name, false AS is_str,
                   CASE WHEN {enter_cond} THEN true ELSE {exit_sql} END AS b, NULL::VARCHAR AS s,
                   d.split_no,
                   CASE WHEN ({enter_cond}) = d.in_old THEN 'resend'
                        WHEN {enter_cond} THEN 'enter' ELSE 'exit' END AS what
            FROM delta d JOIN splits s USING (split_no)
            WHERE ({enter_cond}) OR ({exit_cond})
        """
        attr_parts = []
        for a, name in zip(self._attr_internal, self._inp.attribute_columns, strict=True):
            cond = f"d.member AND d.{a} IS NOT NULL"
            if mode != "full":
                cond += f" AND d.{a} IS DISTINCT FROM d.old_{a}"
            attr_parts.append(
                f"SELECT {_kind_text('d.kind')} AS kind, d.identifier, {_lit(name)} AS name, true AS is_str, "
                "NULL::BOOLEAN AS b, "
                f"d.{a} AS s, d.split_no, 'attribute' AS what FROM delta d WHERE {cond}"
            )
        computed = sum(1 for s in self._splits if s.status == "computed")
        if attr_parts:
            attr_sql = " UNION ALL ".join(attr_parts)
            if computed > 1:
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
            row = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchone()
            members = int(row[0]) if row else 0
            self.new_state_files.append(
                NewStateFile(split.audience_id, split.split_id, path, split.attribute, members, tuple(names))
            )

    def _count(self) -> None:
        """Fill :attr:`counts` from the tables."""
        con, inp = self._con, self._inp
        counts = self.counts
        one = con.execute("SELECT count(*), count(reason) FROM rows").fetchone()
        counts.rows_read, counts.rejected = (int(one[0]), int(one[1])) if one else (0, 0)
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
            else:
                sc.duplicates = dups.get((split.no, "duplicate"), 0)
                conflicts = dups.get((split.no, "conflict"), 0)
                sc.rejected += conflicts
                counts.rejected += conflicts
                sc.entered = writes.get((split.no, "enter"), 0)
                sc.exited = writes.get((split.no, "exit"), 0)
                sc.resent = writes.get((split.no, "resend"), 0)
                sc.attribute_updates = writes.get((split.no, "attribute"), 0)
                sc.members = members.get((split.audience_id, split.split_id), 0)
                # snapshot input: the members that were already applied
                sc.unchanged = (
                    sc.members - sc.entered if inp.input_kind == "snapshot" else unchanged.get(split.no, 0)
                )
                sc.members = members.get((split.audience_id, split.split_id), 0)
                sc.data_points = sc.entered + sc.exited + sc.resent + sc.attribute_updates
                counts.duplicates += sc.duplicates
                counts.entered += sc.entered
                counts.exited += sc.exited
                counts.resent += sc.resent
                counts.unchanged += sc.unchanged
                counts.members += sc.members
                counts.attribute_updates += sc.attribute_updates
                counts.full_resync_data_points += sc.members * (1 + len(inp.attribute_columns))
            counts.splits[f"{split.audience_id}/{split.split_id}"] = sc
        total = con.execute("SELECT count(*), count(DISTINCT (kind, identifier)) FROM writes").fetchone()
        counts.data_points, counts.profiles = (int(total[0]), int(total[1])) if total else (0, 0)

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
                     SELECT {_kind_text("n.kind")} AS kind, n.identifier, count(*) AS rows
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
            SELECT r.file_no, r._row, r.reason, r.id_problem, s.problem AS split_problem,
                   s.status AS split_status, a.text AS s_aud, i.text AS s_split, d.what, d.first_file,
                   d.first_row{values_sql}
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
        if code == _NOT_AN_IDENTIFIER:
            return str(rec["id_problem"])
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

    def commit(self, store: SnapshotStore) -> list[tuple[str, str]]:
        """Record the new state of every computed split; call only after delivery succeeded.

        Returns the splits committed; a split is not committed when a newer snapshot was
        committed meanwhile (unless the plan was computed with ``force``).

        :param store: the state store (normally the one the plan was computed against).
        """
        committed = []
        for state in self.new_state_files:
            done = store.commit(
                state.audience_id,
                state.split_id,
                state.path,
                snapshot_key=self.snapshot_key,
                attribute=state.attribute,
                members=state.members,
                attribute_columns=state.attribute_columns,
                force=self.force,
            )
            if done:
                committed.append((state.audience_id, state.split_id))
        return committed

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
