"""ActionIQ output staged by upstream tasks: find the files (:func:`locate`) and read them.

Formats: CSV with a header row, JSON Lines, Parquet; gzip for CSV and JSON Lines. Storage: anything
Airflow's ``ObjectStoragePath`` reaches. The file contract is described in ``docs/staging.md``.

Rooms: ``locate`` (source → files), ``_streams`` (bytes), ``rows`` (the staged row), ``csv_rows``
(CSV with Python's ``csv``), ``csv_arrow`` (CSV with Arrow's parser), ``text_batches``,
``jsonl``, ``parquet``, ``batch`` (the staged batch operators read), ``read`` (the entry points).
"""

from __future__ import annotations

from airflow_provider_aiq_braze.staging._streams import bytes_read
from airflow_provider_aiq_braze.staging.batch import (
    ROW_NUMBER_COLUMN,
    STAGED_BATCH_ROWS,
    StagedBatch,
    json_cells_column,
)
from airflow_provider_aiq_braze.staging.csv_rows import CSV_FIELD_LIMIT
from airflow_provider_aiq_braze.staging.errors import AiqBrazeInputError, StagingError
from airflow_provider_aiq_braze.staging.jsonl import JSONL_LINE_LIMIT
from airflow_provider_aiq_braze.staging.locate import (
    COMPRESSIONS,
    FORMATS,
    SUPPORTED_NAMES,
    StagedFile,
    detect_format,
    locate,
)
from airflow_provider_aiq_braze.staging.read import read_record_batches, read_rows, read_staged_batches
from airflow_provider_aiq_braze.staging.rows import RAW_LIMIT, RejectHandler, StagedRow, check_columns

__all__ = [
    "COMPRESSIONS",
    "CSV_FIELD_LIMIT",
    "FORMATS",
    "JSONL_LINE_LIMIT",
    "RAW_LIMIT",
    "ROW_NUMBER_COLUMN",
    "STAGED_BATCH_ROWS",
    "SUPPORTED_NAMES",
    "AiqBrazeInputError",
    "RejectHandler",
    "StagedBatch",
    "StagedFile",
    "StagedRow",
    "StagingError",
    "bytes_read",
    "check_columns",
    "detect_format",
    "json_cells_column",
    "locate",
    "read_record_batches",
    "read_rows",
    "read_staged_batches",
]
