"""The campaign recipients contract: one staged row per recipient of an API-triggered campaign."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.braze.limits import EVENT_PROPERTIES_MAX_BYTES
from airflow_provider_aiq_braze.braze.rules import properties_problem
from airflow_provider_aiq_braze.contracts import columnar as col
from airflow_provider_aiq_braze.contracts.common import ContractError, pick_identifier, properties_from_row
from airflow_provider_aiq_braze.contracts.identifiers import NotAnIdentifier, identifier

#: The key of each identifier kind in a recipient object. Braze's endpoint page names only
#: ``external_user_id``; its recipients-object page also lists ``braze_id``.
RECIPIENT_KEYS = {"external_id": "external_user_id", "braze_id": "braze_id"}


@dataclass
class RecipientContract:
    """Column names and rules for staged campaign recipients.

    :param external_id_column: the ``external_id`` column (sent as ``external_user_id``).
    :param braze_id_column: the ``braze_id`` column.
    :param campaign_id_column: a column naming each row's campaign (optional).
    :param campaign_id: the campaign when the file has no campaign column.
    :param trigger_properties_column: a column holding a JSON object of trigger properties.
    :param property_columns: the columns that become trigger properties (default: every column
        not used otherwise).
    :param attribute_columns: columns applied to the recipient's profile before the send.
    :param identifier_preference: which identifier to send when a row has both.
    :param send_to_existing_only: only message users who already exist in Braze.
    :param properties_max_bytes: the largest serialized trigger properties object holding arrays or
        objects (as for event properties).
    """

    external_id_column: str = "external_id"
    braze_id_column: str = "braze_id"
    campaign_id_column: str | None = "campaign_id"
    campaign_id: str | None = None
    trigger_properties_column: str | None = "trigger_properties"
    property_columns: Sequence[str] | None = None
    attribute_columns: Sequence[str] = ()
    identifier_preference: Sequence[str] = ("external_id", "braze_id")
    send_to_existing_only: bool = True
    properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES
    _excluded: frozenset[str] = field(init=False, repr=False)
    _id_columns: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        arguments.column_name("external_id_column", self.external_id_column)
        arguments.column_name("braze_id_column", self.braze_id_column)
        for name in ("campaign_id_column", "trigger_properties_column"):
            arguments.column_name(name, getattr(self, name), optional=True)
        self.campaign_id = arguments.identifier_argument("campaign_id", self.campaign_id)
        self.property_columns = arguments.column_names(
            "property_columns", self.property_columns, optional=True
        )
        self.attribute_columns = arguments.attribute_columns("attribute_columns", self.attribute_columns)
        self.identifier_preference = arguments.identifier_preference(self.identifier_preference)
        self.send_to_existing_only = arguments.flag("send_to_existing_only", self.send_to_existing_only)
        self.properties_max_bytes = arguments.whole_number(
            "properties_max_bytes", self.properties_max_bytes, minimum=2
        )
        if not self.send_to_existing_only and not self.attribute_columns:
            raise ContractError(
                "send_to_existing_only=False needs attribute_columns: Braze creates a missing user only "
                "from the attributes sent with the recipient"
            )
        self._id_columns = {"external_id": self.external_id_column, "braze_id": self.braze_id_column}
        self._excluded = frozenset(
            c
            for c in (
                self.external_id_column,
                self.braze_id_column,
                self.campaign_id_column,
                self.trigger_properties_column,
                *self.attribute_columns,
            )
            if c
        )

    @property
    def identifier_columns(self) -> list[str]:
        """At least one of these columns must exist."""
        return [self._id_columns[kind] for kind in self.identifier_preference]

    def campaign_of(self, data: Mapping[str, Any]) -> str | None:
        """The campaign a row belongs to: its campaign column, else the operator's ``campaign_id``.

        The column's value follows the one identifier rule (text trimmed, whole numbers in decimal).

        :param data: the row.
        :raises NotAnIdentifier: when the column holds another kind of value.
        """
        if self.campaign_id_column:
            value = identifier(data.get(self.campaign_id_column), self.campaign_id_column)
            if value is not None:
                return value
        return self.campaign_id

    def to_recipient(self, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | str:
        """Map one row to ``(campaign_id, recipient object)``.

        :param data: the row.
        :return: the campaign and recipient, or the reason the row is rejected.
        """
        try:
            campaign = self.campaign_of(data)
        except NotAnIdentifier as exc:
            return str(exc)
        if campaign is None:
            return "no campaign: the row has no campaign_id and the operator was given none"
        identifier = pick_identifier(data, self.identifier_preference, self._id_columns)
        if isinstance(identifier, str):
            return identifier
        recipient: dict[str, Any] = {RECIPIENT_KEYS[identifier[0]]: identifier[1]}
        properties = properties_from_row(
            data,
            json_column=self.trigger_properties_column,
            columns=self.property_columns,
            excluded=self._excluded,
        )
        if isinstance(properties, tuple):
            return properties[0]
        if properties:
            problem = properties_problem(
                properties, max_bytes=self.properties_max_bytes, reserved=frozenset(), what="trigger property"
            )
            if problem:
                return problem
            recipient["trigger_properties"] = properties
        if self.attribute_columns:
            attributes = {c: data.get(c) for c in self.attribute_columns if data.get(c) not in (None, "")}
            problem = properties_problem(
                attributes, max_bytes=self.properties_max_bytes, reserved=frozenset(), what="attribute"
            )
            if problem:
                return problem
            if attributes:
                recipient["attributes"] = attributes
        if not self.send_to_existing_only:
            recipient["send_to_existing_only"] = False
        return campaign, recipient

    def encode_batch(
        self, batch: pa.RecordBatch, *, ignore: Collection[str] = ()
    ) -> tuple[list[str | None], list[str | None], list[str | None]]:
        """The JSON text, campaign and key of each row's recipient, for the rows that are plainly valid.

        The columnar fast path of :meth:`to_recipient`, as
        :meth:`~airflow_provider_aiq_braze.contracts.events.EventContract.encode_batch` is for
        events: a row gets the exact text ``to_json(to_recipient(row)[1])`` would give; a row this
        path is not sure about (a reject, a value to trim or escape, a ``trigger_properties`` cell,
        attribute columns, a column that is not text) gets ``None`` and must go through
        :meth:`to_recipient`.

        :param batch: staged rows.
        :param ignore: columns that are not part of the row (e.g. the row number column).
        :return: per row, the recipient's JSON text, its campaign and its :meth:`recipient_key`
            (all ``None`` for the rows to take the row path).
        """
        rows = batch.num_rows
        none: list[str | None] = [None] * rows
        nothing = (none, none, none)
        columns = {name: batch.column(i) for i, name in enumerate(batch.schema.names) if name not in ignore}
        candidates = [
            (RECIPIENT_KEYS[kind], columns[self._id_columns[kind]])
            for kind in self.identifier_preference
            if self._id_columns[kind] in columns
        ]
        if (
            not candidates
            or self.attribute_columns
            or not self.send_to_existing_only
            or not all(col.is_string_column(c) for c in columns.values())
        ):
            return nothing
        checks: list[col.Mask] = []
        campaign = self._campaign_column(columns, checks)
        if campaign is None:
            return nothing
        parts, identity = col.identifier_parts(candidates, checks)
        if self.trigger_properties_column in columns:  # a JSON cell takes the row path
            checks.append(col.absent(columns[self.trigger_properties_column]))
        if self.property_columns is not None:
            names: list[str] = list(dict.fromkeys(self.property_columns))
        else:
            names = [c for c in columns if c not in self._excluded]
        parts += col.object_parts("trigger_properties", col.text_members(columns, names, checks))
        valid = col.all_of(checks)
        texts = col.texts_where(valid, [*parts, "}"], rows)
        keys = col.texts_where(valid, [campaign, "\0", identity], rows)
        if isinstance(campaign, str):
            return texts, [campaign if t is not None else None for t in texts], keys
        return texts, col.texts_where(valid, [campaign], rows), keys

    def _campaign_column(self, columns: dict[str, pa.Array], checks: list[col.Mask]) -> pa.Array | str | None:
        """Each row's campaign (its column, else ``campaign_id``), or ``None`` when no row has one."""
        cells = columns.get(self.campaign_id_column) if self.campaign_id_column else None
        empty = col.absent(cells) if cells is not None else True
        if empty is True:
            return self.campaign_id
        checks.append(col.either(empty, col.clean_text(cells)))
        if self.campaign_id is None:
            checks.append(col.negated(empty))  # no campaign: the row path rejects it
            return cells
        return col.when(empty, self.campaign_id, cells)

    def recipient_key(self, campaign: str, recipient: Mapping[str, Any]) -> str:
        """What makes two rows the same recipient of the same campaign.

        :param campaign: the campaign id.
        :param recipient: the recipient object.
        """
        for key in ("external_user_id", "braze_id"):
            if key in recipient:
                return f"{campaign}\x00{key}\x00{recipient[key]}"
        raise AssertionError("a recipient object always carries its identifier")
