"""``BrazeEventExportOperator``: staged ActionIQ events to Braze ``/users/track`` events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from airflow_provider_aiq_braze.braze.limits import EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE
from airflow_provider_aiq_braze.contracts.events import EventContract
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Deliverable, Record, Rejected
from airflow_provider_aiq_braze.operators.base import BrazeDeliveryOperator
from airflow_provider_aiq_braze.staging import StagedFile


class BrazeEventExportOperator(BrazeDeliveryOperator):
    """Send staged events to Braze as ``/users/track`` events.

    Every argument of :class:`~airflow_provider_aiq_braze.operators.base.BrazeDeliveryOperator`
    applies (``source``, ``state_path``, ``batch_size``, ``dry_run``…), plus the columns of the
    events contract (see ``docs/events.md``):

    :param event_name_column: the event name column.
    :param external_id_column: the ``external_id`` column.
    :param braze_id_column: the ``braze_id`` column.
    :param timestamp_column: the event time column (ISO 8601, or epoch seconds or milliseconds).
    :param properties_column: a column holding a JSON object of properties.
    :param property_columns: the columns that become properties (default: every other column).
    :param app_id_column: the optional ``app_id`` column.
    :param identifier_preference: which identifier to send when a row has both.
    :param properties_max_bytes: the largest serialized properties object (default 50 KB, Braze's
        conservative documented limit).
    :param update_existing_only: only record events for users that already exist in Braze.
    """

    kind: ClassVar[str] = "events"

    def __init__(
        self,
        *,
        event_name_column: str = "event_name",
        external_id_column: str = "external_id",
        braze_id_column: str = "braze_id",
        timestamp_column: str = "timestamp",
        properties_column: str | None = "properties",
        property_columns: Sequence[str] | None = None,
        app_id_column: str | None = "app_id",
        identifier_preference: Sequence[str] = ("external_id", "braze_id"),
        properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE,
        update_existing_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contract = EventContract(
            event_name_column=event_name_column,
            external_id_column=external_id_column,
            braze_id_column=braze_id_column,
            timestamp_column=timestamp_column,
            properties_column=properties_column,
            property_columns=property_columns,
            app_id_column=app_id_column,
            identifier_preference=identifier_preference,
            properties_max_bytes=properties_max_bytes,
            update_existing_only=update_existing_only,
        )

    def request_spec(self) -> RequestSpec:
        """Events go in the ``events`` array of ``/users/track``; never resent when uncertain."""
        return self.users_track_spec("events", self.batch_size, safe_to_retry=False)

    def records(self, files: list[StagedFile], progress: Progress) -> Iterator[Record]:
        """One record per staged row: the event, or the reason it is rejected.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        contract = self.contract
        rows = self.read_staged(
            files,
            progress,
            required_columns=contract.required_columns,
            any_of_columns=[contract.identifier_columns],
        )
        for row in rows:
            if isinstance(row, Rejected):
                yield row
                continue
            assert row.data is not None
            event = contract.to_event(row.data)
            if isinstance(event, str):
                yield Rejected(row.file, row.row_number, event, row.data)
            else:
                yield Deliverable(row.file, row.row_number, event, raw=row.data)
