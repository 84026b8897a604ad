"""The events contract: one staged row per event, mapped to a ``/users/track`` event object."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.braze.limits import (
    EVENT_PROPERTIES_MAX_BYTES,
    MAX_KEY_LENGTH,
    MAX_STRING_VALUE_LENGTH,
)
from airflow_provider_aiq_braze.braze.rules import (
    RESERVED_EVENT_PROPERTY_NAMES,
    name_problem,
    properties_problem,
    value_problem,
)
from airflow_provider_aiq_braze.contracts import columnar as col
from airflow_provider_aiq_braze.contracts.common import (
    not_text_problem,
    parse_timestamp,
    pick_identifier,
    properties_from_row,
    text_or_none,
)


@dataclass
class EventContract:
    """Column names and rules for staged events.

    :param event_name_column: the event name.
    :param external_id_column: the Braze ``external_id``.
    :param braze_id_column: the Braze ``braze_id``.
    :param timestamp_column: when the event happened.
    :param properties_column: a JSON object of properties; when absent or empty, other columns are used.
    :param property_columns: the columns that become properties (``None``: every column that is
        not one of the above).
    :param app_id_column: the optional Braze ``app_id``.
    :param identifier_preference: which identifier to send when a row has both.
    :param properties_max_bytes: the largest serialized properties object holding arrays or objects
        (Braze bounds no other; 100 KB in its current pages, 50 KB in older ones).
    :param update_existing_only: add ``_update_existing_only: true`` (Braze then drops events of
        unknown users instead of creating them).
    """

    event_name_column: str = "event_name"
    external_id_column: str = "external_id"
    braze_id_column: str = "braze_id"
    timestamp_column: str = "timestamp"
    properties_column: str | None = "properties"
    property_columns: Sequence[str] | None = None
    app_id_column: str | None = "app_id"
    identifier_preference: Sequence[str] = ("external_id", "braze_id")
    properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES
    update_existing_only: bool = False
    _excluded: frozenset[str] = field(init=False, repr=False)
    _id_columns: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("event_name_column", "external_id_column", "braze_id_column", "timestamp_column"):
            arguments.column_name(name, getattr(self, name))
        for name in ("properties_column", "app_id_column"):
            arguments.column_name(name, getattr(self, name), optional=True)
        self.property_columns = arguments.column_names(
            "property_columns", self.property_columns, optional=True
        )
        self.identifier_preference = arguments.identifier_preference(self.identifier_preference)
        self.properties_max_bytes = arguments.whole_number(
            "properties_max_bytes", self.properties_max_bytes, minimum=2
        )
        self.update_existing_only = arguments.flag("update_existing_only", self.update_existing_only)
        self._id_columns = {"external_id": self.external_id_column, "braze_id": self.braze_id_column}
        self._excluded = frozenset(
            c
            for c in (
                self.event_name_column,
                self.external_id_column,
                self.braze_id_column,
                self.timestamp_column,
                self.properties_column,
                self.app_id_column,
            )
            if c
        )

    @property
    def required_columns(self) -> list[str]:
        """Columns every file must have."""
        return [self.event_name_column, self.timestamp_column]

    @property
    def identifier_columns(self) -> list[str]:
        """At least one of these columns must exist."""
        return [self._id_columns[kind] for kind in self.identifier_preference]

    def to_event(self, data: Mapping[str, Any]) -> dict[str, Any] | str:
        """Map one row to a Braze event object.

        :param data: the row.
        :return: the event object, or the reason the row is rejected.
        """
        identifier = pick_identifier(data, self.identifier_preference, self._id_columns)
        if identifier.__class__ is str:
            return identifier  # type: ignore[return-value]
        cell = data.get(self.event_name_column)
        if cell.__class__ is not str and cell is not None:
            problem = not_text_problem(cell, self.event_name_column)
            if problem:
                return problem
        name = text_or_none(cell)
        if name is None:
            return f"event name ({self.event_name_column!r}) is empty"
        if len(name) > MAX_KEY_LENGTH or name[0] == "$":
            problem = name_problem(name, what="event name")
            if problem:
                return problem
        time = parse_timestamp(data.get(self.timestamp_column))
        if time.__class__ is tuple:
            return time[0]
        properties = properties_from_row(
            data, json_column=self.properties_column, columns=self.property_columns, excluded=self._excluded
        )
        if properties.__class__ is tuple:
            return properties[0]  # type: ignore[index]
        event: dict[str, Any] = {identifier[0]: identifier[1], "name": name, "time": time}
        if properties:
            problem = properties_problem(properties, max_bytes=self.properties_max_bytes)
            if problem:
                return problem
            event["properties"] = properties
        if self.app_id_column:
            app_id = text_or_none(data.get(self.app_id_column))
            if app_id is not None:
                problem = value_problem(app_id, where="app_id")
                if problem:
                    return problem
                event["app_id"] = app_id
        if self.update_existing_only:
            event["_update_existing_only"] = True
        return event

    def encode_batch(self, batch: pa.RecordBatch, *, ignore: Collection[str] = ()) -> list[str | None]:
        """The JSON text of each row's event, for the rows that are plainly valid.

        The columnar fast path of :meth:`to_event`: one pass of Arrow compute over the batch. A
        row gets the exact text ``to_json(to_event(row))`` would give; a row this path is not
        sure about (a reject, an epoch or offset timestamp, a value to trim or escape, a JSON
        ``properties`` cell, a column that is not text) gets ``None`` and must go through
        :meth:`to_event`.

        :param batch: staged rows (columns as :func:`~airflow_provider_aiq_braze.staging.read_record_batches`
            gives them).
        :param ignore: columns that are not part of the row (e.g. the row number column).
        :return: one entry per row: the event's JSON text, or ``None``.
        """
        rows = batch.num_rows
        columns = {name: batch.column(i) for i, name in enumerate(batch.schema.names) if name not in ignore}
        name = columns.get(self.event_name_column)
        stamp = columns.get(self.timestamp_column)
        candidates = [
            (kind, columns[self._id_columns[kind]])
            for kind in self.identifier_preference
            if self._id_columns[kind] in columns
        ]
        if (
            name is None
            or stamp is None
            or not candidates
            or not all(col.is_string_column(c) for c in columns.values())
        ):
            return [None] * rows
        checks: list[col.Mask] = []
        parts, _ = col.identifier_parts(candidates, checks)
        checks.append(col.clean_text(name))
        checks.append(col.negated(pc.fill_null(pc.starts_with(name, "$"), True)))
        checks.append(col.at_most_chars(name, MAX_KEY_LENGTH))
        checks.append(col.matches(stamp, col.UTC_TIMESTAMP))
        parts += [',"name":"', name, '","time":"', *_time_parts(stamp), 'Z"']
        if self.properties_column in columns:  # a JSON ``properties`` cell takes the row path
            checks.append(col.absent(columns[self.properties_column]))
        # text properties only: Braze bounds the size of properties objects holding arrays or
        # objects, never of flat ones, so no size check is needed here
        if self.property_columns is not None:
            names: list[str] = list(dict.fromkeys(self.property_columns))
        else:
            names = [c for c in columns if c not in self._excluded]
        members = col.text_members(columns, names, checks, reserved=RESERVED_EVENT_PROPERTY_NAMES)
        parts += col.object_parts("properties", members)
        app_id = columns.get(self.app_id_column) if self.app_id_column else None
        if app_id is not None and (empty := col.absent(app_id)) is not True:
            valid = col.both(col.clean_text(app_id), col.at_most_chars(app_id, MAX_STRING_VALUE_LENGTH))
            checks.append(col.either(empty, valid))
            parts.append(col.when(empty, "", col.json_member("app_id", app_id)))
        parts.append(',"_update_existing_only":true}' if self.update_existing_only else "}")
        return col.texts_where(col.all_of(checks), parts, rows)


def _time_parts(stamp: pa.Array) -> list[pa.Array | str]:
    """A time written ``YYYY-MM-DD[T ]HH:MM:SS[.fff…]`` as ``YYYY-MM-DDTHH:MM:SS.mmm`` (``Z`` follows).

    :param stamp: the time column (rows not matching :data:`columnar.UTC_TIMESTAMP` are checked out).
    """
    with_fraction = pc.fill_null(pc.equal(pc.utf8_slice_codeunits(stamp, 19, 20), "."), False)
    return [
        pc.utf8_slice_codeunits(stamp, 0, 10),
        "T",
        pc.utf8_slice_codeunits(stamp, 11, 19),
        ".",
        col.when(with_fraction, pc.utf8_slice_codeunits(stamp, 20, 23), "000"),
    ]
