"""Helpers for the audience tests: batches shaped like the staging reader's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from airflow_provider_aiq_braze.audiences import DeltaPlan


def batch(rows: Sequence[dict[str, Any]], file: str = "members.csv", first_row: int = 1) -> pa.RecordBatch:
    """A record batch of string columns plus ``_file``/``_row``, as the staging reader yields.

    :param rows: the rows (every row has the same keys).
    :param file: the ``_file`` value.
    :param first_row: the ``_row`` of the first row.
    """
    keys = list(rows[0]) if rows else []
    data: dict[str, Any] = {
        "_file": pa.array([file] * len(rows), pa.string()),
        "_row": pa.array(range(first_row, first_row + len(rows)), pa.int64()),
    }
    for key in keys:
        data[key] = pa.array([row.get(key) for row in rows], pa.string())
    return pa.RecordBatch.from_pydict(data)


def members(audience: str, split: str, *ids: str, **extra: str) -> list[dict[str, Any]]:
    """Snapshot rows for external ids in one split."""
    return [
        {"audience_id": audience, "split_id": split, "external_id": i, "braze_id": None, **extra} for i in ids
    ]


def updates(plan: DeltaPlan) -> dict[tuple[str, str], dict[str, Any]]:
    """The plan's updates keyed by (identifier kind, identifier)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for update in plan.iter_updates(batch_rows=3):
        key = (update.identifier_kind, update.identifier)
        assert key not in out, f"{key} appears in two updates"
        out[key] = update.attributes
    return out
