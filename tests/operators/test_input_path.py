"""The three operators read their input one way: the same rows, the same row numbers, progress per file."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aiq_braze.delivery.paths import TaskIdentity, run_paths
from airflow_provider_aiq_braze.delivery.progress import Progress
from airflow_provider_aiq_braze.delivery.records import Deliverable, Rejected
from airflow_provider_aiq_braze.operators.audience import BrazeAudienceMembershipOperator
from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from airflow_provider_aiq_braze.staging import locate

T = "2026-11-28T10:00:00Z"


class RecordingProgress(Progress):
    """A progress that remembers the files it was told about."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("test"))
        self.files: list[int] = []

    def file_done(self, size: int) -> None:
        self.files.append(size)
        super().file_done(size)


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    header = "event_name,external_id,timestamp,audience_id,split_id\n"
    (folder / "a.csv").write_text(
        header + f"viewed,u1,{T},A,1\n" + f"viewed,u2,{T},A\n" + "\n" + f"viewed,u3,{T},A,1\n",
        encoding="utf-8",
    )

    def row(external_id: Any) -> str:
        fields = {"event_name": "viewed", "timestamp": T, "audience_id": "A", "split_id": "1"}
        return json.dumps({"external_id": external_id, **fields}) + "\n"

    (folder / "b.jsonl").write_text(row("u4") + "not json\n" + row(True) + row("u5"), encoding="utf-8")
    return [folder / "a.csv", folder / "b.jsonl"]


def _operators(tmp_path: Path, source: str) -> dict[str, Any]:
    """The three operators, prepared as ``execute`` prepares them (dry run: no hook)."""
    common: dict[str, Any] = {"source": source, "state_path": str(tmp_path / "state"), "dry_run": True}
    ops = {
        "events": BrazeEventExportOperator(task_id="e", **common),
        "campaigns": BrazeCampaignTriggerOperator(task_id="c", campaign_id="camp", **common),
        "audience": BrazeAudienceMembershipOperator(task_id="a", snapshot_key="2026-11-28", **common),
    }
    for op in ops.values():
        identity = TaskIdentity(
            dag_id="dag", task_id=op.task_id, run_id="manual__1", map_index=-1, try_number=1
        )
        paths = run_paths(
            identity, state_path=op.state_path, state_conn_id=None, rejects_path=None, uris=[], kind=op.kind
        )
        op.prepare(None, {}, paths)
    return ops


def test_same_rows_same_numbers_progress_per_file(tmp_path: Path, files: list[Path]) -> None:
    located = locate(str(tmp_path / "in"))
    sizes = [f.stat().st_size for f in files]
    outcomes = {}
    for kind, op in _operators(tmp_path, str(tmp_path / "in")).items():
        progress = RecordingProgress()
        records = list(op.records(located, progress))
        if kind == "audience":
            op._close()  # closes the delta and removes its files (a dry run commits nothing)
        assert progress.files == sizes, kind
        rejected = sorted((Path(r.file).name, r.row, r.reason) for r in records if isinstance(r, Rejected))
        delivered = sorted(
            (Path(r.file).name, r.row) for r in records if isinstance(r, Deliverable) and r.file
        )
        outcomes[kind] = (rejected, delivered)
    expected_rejects = [
        ("a.csv", 2, "expected 5 fields as in the header, found 4 (line 3)"),
        ("b.jsonl", 2, "invalid JSON at column 1: Expecting value (line 2)"),
        (
            "b.jsonl",
            3,
            "column 'external_id' holds a boolean (true), not text: identifiers must be text or whole "
            "numbers",
        ),
    ]
    for kind in ("events", "campaigns", "audience"):
        assert outcomes[kind][0] == expected_rejects, kind
    assert (
        outcomes["events"][1]
        == outcomes["campaigns"][1]
        == [
            ("a.csv", 1),
            ("a.csv", 3),
            ("b.jsonl", 1),
            ("b.jsonl", 4),
        ]
    )
