"""``BrazeEventExportOperator``: staged ActionIQ events to Braze ``/users/track`` events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa

from airflow_provider_aiq_braze.braze.limits import EVENT_PROPERTIES_MAX_BYTES
from airflow_provider_aiq_braze.contracts.events import EventContract
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.input import read_input
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import BatchRows, Deliverable, Record, Rejected
from airflow_provider_aiq_braze.operators.base import BrazeDeliveryOperator
from airflow_provider_aiq_braze.staging import ROW_NUMBER_COLUMN, StagedBatch, StagedFile


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
    :param properties_max_bytes: the largest serialized properties object holding arrays or objects
        (default 100 KB, Braze's current pages; 51200 for its older ones). Braze bounds no other.
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
        properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES,
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

        Each staged batch is checked and serialized a batch at a time where it can be
        (:meth:`EventContract.encode_batch`, for the rows the batch holds exactly); the other rows
        go through :meth:`EventContract.to_event`. Both give the same bodies for the same rows.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        contract = self.contract
        staged = read_input(
            files,
            progress,
            required_columns=contract.required_columns,
            any_of_columns=[contract.identifier_columns],
        )
        for item in staged:
            if isinstance(item, Rejected):
                yield item
            else:
                yield from self._batch_records(item)

    def _record(self, file: str, row_number: int, data: dict[str, Any]) -> Record:
        """The row path: one row to its event, or to its reject."""
        event = self.contract.to_event(data)
        if isinstance(event, str):
            return Rejected(file, row_number, event, data)
        return Deliverable(file, row_number, event, raw=data)

    def _batch_records(self, staged: StagedBatch) -> Iterator[Record]:
        """The columnar path for one staged batch, deferring to the row path row by row."""
        numbers = staged.row_numbers()
        rows = staged.columns
        texts = self.contract.encode_batch(rows)
        if isinstance(staged.exact, pa.Array):  # JSON Lines rows whose columns do not hold them as they are
            texts = [t if exact else None for t, exact in zip(texts, staged.exact.to_pylist(), strict=True)]
        deferred_at = [i for i, text in enumerate(texts) if text is None]
        if staged.objects is not None:
            deferred = iter([staged.objects[i] for i in deferred_at])
        else:
            deferred = iter(rows.take(pa.array(deferred_at, pa.int64())).to_pylist())
        raw = BatchRows(staged.batch, ROW_NUMBER_COLUMN)
        uri = staged.file
        for number, text in zip(numbers, texts, strict=True):
            if text is None:
                yield self._record(uri, number, next(deferred))
            else:  # positional: the fastest way to build one per row
                yield Deliverable(uri, number, None, "", 1, raw, text)
