"""ActionIQ output staged by upstream tasks: find the files (:func:`locate`) and read them.

Formats: CSV with a header row, JSON Lines, Parquet; gzip for CSV and JSON Lines. Storage: anything
Airflow's ``ObjectStoragePath`` reaches. The file contract is described in ``docs/staging.md``.
"""

from __future__ import annotations

from airflow_provider_aiq_braze.staging._streams import bytes_read
from airflow_provider_aiq_braze.staging.errors import AiqBrazeInputError, StagingError
from airflow_provider_aiq_braze.staging.locate import (
    FORMATS,
    SUPPORTED_NAMES,
    StagedFile,
    detect_format,
    locate,
)
from airflow_provider_aiq_braze.staging.read import (
    CSV_FIELD_LIMIT,
    JSONL_LINE_LIMIT,
    RAW_LIMIT,
    RejectHandler,
    StagedRow,
    check_columns,
    read_record_batches,
    read_rows,
)

__all__ = [
    "CSV_FIELD_LIMIT",
    "FORMATS",
    "JSONL_LINE_LIMIT",
    "RAW_LIMIT",
    "SUPPORTED_NAMES",
    "AiqBrazeInputError",
    "RejectHandler",
    "StagedFile",
    "StagedRow",
    "StagingError",
    "bytes_read",
    "check_columns",
    "detect_format",
    "locate",
    "read_record_batches",
    "read_rows",
]
