"""Helpers for the audience tests: real state directories, real DuckDB, batches like staging's."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from airflow_provider_aiq_braze.audiences import DeltaInput, DeltaPlan, SnapshotStore, compute_delta
from tests.audiences._support import batch


@pytest.fixture
def store(tmp_path: Path) -> SnapshotStore:
    """A snapshot store in a real local directory."""
    return SnapshotStore(str(tmp_path / "state"), "tests")


@pytest.fixture
def work_dir(tmp_path: Path) -> str:
    """The local work directory of the delta."""
    path = tmp_path / "work"
    path.mkdir()
    return str(path)


@pytest.fixture
def run(store: SnapshotStore, work_dir: str) -> Iterator[Callable[..., DeltaPlan]]:
    """Compute a delta from rows; plans are closed at the end of the test."""
    plans: list[DeltaPlan] = []

    def compute(
        rows: Sequence[dict[str, Any]] | Sequence[pa.RecordBatch],
        key: str,
        *,
        target: SnapshotStore | None = None,
        input_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> DeltaPlan:
        if rows and isinstance(rows[0], pa.RecordBatch):
            batches = list(rows)
        else:
            batches = [batch(rows)] if rows else []  # type: ignore[arg-type]
        inp = DeltaInput(batches=batches, **(input_options or {}))
        plan = compute_delta(inp, target or store, work_dir=work_dir, snapshot_key=key, **options)
        plans.append(plan)
        return plan

    yield compute
    for plan in plans:
        plan.close()
