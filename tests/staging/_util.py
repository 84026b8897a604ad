"""Shortcuts shared by the staging tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_provider_aiq_braze.staging import StagedFile, StagedRow, locate, read_rows


def one(path: Path | str, **kwargs: Any) -> StagedFile:
    """The single staged file ``path`` resolves to."""
    files = locate(str(path), **kwargs)
    assert len(files) == 1, files
    return files[0]


def rows_of(path: Path | str, **kwargs: Any) -> list[StagedRow]:
    """All rows of one file (keyword arguments go to ``read_rows``)."""
    return list(read_rows(one(path), **kwargs))
