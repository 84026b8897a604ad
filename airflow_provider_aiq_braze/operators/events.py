"""``BrazeEventExportOperator``: staged ActionIQ events to Braze ``/users/track`` events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pyarrow as pa

from airflow_provider_aiq_braze.braze.limits import EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE
from airflow_provider_aiq_braze.contracts.events import EventContract
from airflow_provider_aiq_braze.delivery.engine import RequestSpec
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import BatchRows, Deliverable, Record, Rejected
from airflow_provider_aiq_braze.operators.base import ROW_NUMBER_COLUMN, BrazeDeliveryOperator
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

        CSV and Parquet are read as Arrow record batches and checked and serialized a batch at a
        time (:meth:`EventContract.encode_batch`); rows that path does not take, and JSON Lines
        (whose values keep their JSON types only row by row), go through
        :meth:`EventContract.to_event`. Both give the same bodies for the same rows.

        :param files: the located input files.
        :param progress: to report each finished file.
        """
        contract = self.contract
        columns: dict[str, Any] = {
            "required_columns": contract.required_columns,
            "any_of_columns": [contract.identifier_columns],
        }
        for file in files:
            if file.format == "jsonl":
                for row in self.read_staged([file], progress, **columns):
                    if isinstance(row, Rejected):
                        yield row
                    else:
                        assert row.data is not None
                        yield self._record(row.file, row.row_number, row.data)
                continue
            for item in self.read_staged_batches([file], progress, **columns):
                if isinstance(item, Rejected):
                    yield item
                else:
                    yield from self._batch_records(*item)

    def _record(self, file: str, row_number: int, data: dict[str, Any]) -> Record:
        """The row path: one row to its event, or to its reject."""
        event = self.contract.to_event(data)
        if isinstance(event, str):
            return Rejected(file, row_number, event, data)
        return Deliverable(file, row_number, event, raw=data)

    def _batch_records(self, uri: str, batch: pa.RecordBatch) -> Iterator[Record]:
        """The columnar path for one record batch, deferring to the row path row by row."""
        numbers = batch.column(ROW_NUMBER_COLUMN).to_pylist()
        rows = batch.drop_columns([ROW_NUMBER_COLUMN])
        texts = self.contract.encode_batch(rows)
        deferred_indexes = pa.array([i for i, text in enumerate(texts) if text is None], pa.int64())
        deferred = iter(rows.take(deferred_indexes).to_pylist())
        raw = BatchRows(batch, ROW_NUMBER_COLUMN)
        for number, text in zip(numbers, texts, strict=True):
            if text is None:
                yield self._record(uri, number, next(deferred))
            else:  # positional: the fastest way to build one per row
                yield Deliverable(uri, number, None, "", 1, raw, text)
