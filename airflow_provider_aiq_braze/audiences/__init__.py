"""Audience membership: snapshot state and the delta to send to Braze (Airflow-free but for paths).

See ``docs/audiences.md``.
"""

from __future__ import annotations

from airflow_provider_aiq_braze.audiences.delta import (
    DEFAULT_ATTRIBUTE_TEMPLATE,
    INPUT_KINDS,
    MODES,
    STATE_IDENTIFIER_COLUMNS,
    DeltaCounts,
    DeltaInput,
    DeltaPlan,
    NewStateFile,
    Reject,
    SkippedSplit,
    SplitCounts,
    UserUpdate,
    compute_delta,
)
from airflow_provider_aiq_braze.audiences.state import (
    AppliedSnapshot,
    SnapshotStore,
    StateError,
    compare_snapshot_keys,
    is_older,
    parse_snapshot_key,
)

__all__ = [
    "DEFAULT_ATTRIBUTE_TEMPLATE",
    "INPUT_KINDS",
    "MODES",
    "STATE_IDENTIFIER_COLUMNS",
    "AppliedSnapshot",
    "DeltaCounts",
    "DeltaInput",
    "DeltaPlan",
    "NewStateFile",
    "Reject",
    "SkippedSplit",
    "SnapshotStore",
    "SplitCounts",
    "StateError",
    "UserUpdate",
    "compare_snapshot_keys",
    "compute_delta",
    "is_older",
    "parse_snapshot_key",
]
