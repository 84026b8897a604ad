"""The events contract: one staged row per event, mapped to a ``/users/track`` event object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aiq_braze.braze.limits import EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE, MAX_KEY_LENGTH
from airflow_provider_aiq_braze.braze.rules import name_problem, properties_problem, value_problem
from airflow_provider_aiq_braze.contracts.common import (
    check_identifier_preference,
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
    :param properties_max_bytes: the largest serialized properties object.
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
    properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE
    update_existing_only: bool = False
    _excluded: frozenset[str] = field(init=False, repr=False)
    _id_columns: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.identifier_preference = check_identifier_preference(self.identifier_preference)
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
