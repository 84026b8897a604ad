"""What the audience delta reads and produces: its input, its settings, and the plan's parts.

The delta's rooms: :mod:`.normalise` (the input batches, normalised in Arrow), :mod:`.rejects` (what
makes a row a reject, and its words), :mod:`.plan` (which splits a run computes, skips, repairs or
rejects), :mod:`.sql` (the DuckDB statements), :mod:`.counts` and :mod:`.delta` (the run of it all).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import pyarrow as pa

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.audiences.state import Manifest
from airflow_provider_aiq_braze.contracts.identifiers import IDENTIFIER_KINDS

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
class SplitPlan:
    """What a run does with one (audience, split): decided by :mod:`.plan`, carried out by the delta.

    :param no: the split's number in the run (its ``split_no`` in the SQL).
    :param audience_id: the audience id.
    :param split_id: the split id.
    :param rows: input rows that named the split (rejected ones included).
    :param row_rejects: those of them rejected for a row problem.
    :param attribute: the membership attribute.
    :param status: ``computed``, ``skipped`` or ``rejected``.
    :param problem: why it is skipped or rejected.
    :param in_input: named by the input (rows or arguments); ``False`` when only a pending marker
        names it.
    :param manifest: its applied state, if any.
    :param repair: skipped, but the profiles pending markers name are rewritten to the applied state.
    :param needs_force: skipped because its applied key cannot be ordered.
    :param state_path: a local copy of its applied members (computed and repaired splits).
    :param state_columns: the attribute columns stored with them.
    """

    no: int
    audience_id: str
    split_id: str
    rows: int
    row_rejects: int
    attribute: str = ""
    status: str = "computed"
    problem: str | None = None
    in_input: bool = True
    manifest: Manifest | None = None
    repair: bool = False
    needs_force: bool = False
    state_path: str | None = None
    state_columns: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """``(audience_id, split_id)``."""
        return (self.audience_id, self.split_id)

    @property
    def processed(self) -> bool:
        """Whether the plan writes for this split (computed, or repaired)."""
        return self.status == "computed" or self.repair


def check_config(inp: DeltaInput, *, mode: str, exit_value: object, attribute_template: str) -> None:
    """Refuse a configuration of :func:`~.delta.compute_delta` that cannot work, before reading any row.

    :param inp: the input description.
    :param mode: ``delta`` or ``full``.
    :param exit_value: ``False`` or ``None``.
    :param attribute_template: the membership attribute's template.
    :raises ValueError: naming the argument and what it accepts.
    """
    arguments.choice("mode", mode, MODES)
    arguments.choice("exit_value", exit_value, (False, None))
    arguments.choice("input_kind", inp.input_kind, INPUT_KINDS)
    if inp.input_kind == "changes" and not inp.member_col:
        raise ValueError("input_kind='changes' needs member_col (the column saying member true/false)")
    for kind in arguments.identifier_preference(inp.identifier_preference):
        if identifier_column(inp, kind) is None:
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


def identifier_column(inp: DeltaInput, kind: str) -> str | None:
    """The column configured for an identifier kind (``None``: none).

    :param inp: the input description.
    :param kind: ``external_id`` or ``braze_id``.
    """
    return inp.external_id_col if kind == "external_id" else inp.braze_id_col
