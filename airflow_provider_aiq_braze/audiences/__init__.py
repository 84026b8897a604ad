"""Audience membership: snapshot state and the delta to send to Braze (Airflow-free but for paths).

See ``docs/audiences.md``.
"""

from __future__ import annotations

from airflow_provider_aiq_braze.audiences.counts import DeltaCounts, MembershipCounts, SplitCounts
from airflow_provider_aiq_braze.audiences.delta import DeltaPlan, compute_delta
from airflow_provider_aiq_braze.audiences.keys import (
    SnapshotKeyError,
    checked_snapshot_key,
    compare_snapshot_keys,
    is_older,
    parse_snapshot_key,
)
from airflow_provider_aiq_braze.audiences.model import (
    DEFAULT_ATTRIBUTE_TEMPLATE,
    INPUT_KINDS,
    MODES,
    STATE_IDENTIFIER_COLUMNS,
    DeltaInput,
    NewStateFile,
    Reject,
    SkippedSplit,
    UserUpdate,
)
from airflow_provider_aiq_braze.audiences.state import (
    AppliedSnapshot,
    Manifest,
    PendingMarker,
    SnapshotStore,
    StateConflict,
    StateError,
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
    "Manifest",
    "MembershipCounts",
    "NewStateFile",
    "PendingMarker",
    "Reject",
    "SkippedSplit",
    "SnapshotKeyError",
    "SnapshotStore",
    "SplitCounts",
    "StateConflict",
    "StateError",
    "UserUpdate",
    "checked_snapshot_key",
    "compare_snapshot_keys",
    "compute_delta",
    "is_older",
    "parse_snapshot_key",
]
