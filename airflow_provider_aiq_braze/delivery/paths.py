"""Where a run keeps its ledger, rejects and dry-run bodies.

``<state_path>/ledger/<dag_id>/<task_id>[/map-<i>]/<input key>.jsonl`` — keyed by the task and
its input files, not by the run, so a retry, a re-run or a backfill of the same input finds the
same ledger. Rejects and dry-run bodies are per run and try.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import storage_path

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def default_state_root() -> str:
    """``$AIRFLOW_HOME/aiq_braze_state`` (``~/airflow`` when ``AIRFLOW_HOME`` is unset)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "aiq_braze_state")


def safe_name(text: str) -> str:
    """Make a run id or task id safe as a path segment.

    :param text: any text.
    """
    return _UNSAFE.sub("_", text).strip("_") or "_"


@dataclass(frozen=True)
class TaskIdentity:
    """Which task instance a run belongs to.

    :param dag_id: the DAG.
    :param task_id: the task.
    :param run_id: the DAG run.
    :param map_index: the mapped index, -1 when not mapped.
    :param try_number: the try.
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    @property
    def task_dir(self) -> str:
        """``<dag_id>/<task_id>[/map-<i>]``."""
        parts = [safe_name(self.dag_id), safe_name(self.task_id)]
        if self.map_index >= 0:
            parts.append(f"map-{self.map_index}")
        return "/".join(parts)

    @property
    def run_dir(self) -> str:
        """``<task_dir>/<run_id>``."""
        return f"{self.task_dir}/{safe_name(self.run_id)}"


def input_key(uris: Sequence[str], salt: str = "") -> str:
    """A short stable key for a set of input files.

    :param uris: the input files.
    :param salt: anything else that makes the input distinct (e.g. the operator's kind).
    """
    digest = hashlib.sha256("\n".join([salt, *sorted(uris)]).encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True)
class RunPaths:
    """The files of one run.

    :param root: the state root (``state_path``), for state kept beside the ledgers.
    :param ledger: the ledger of this task and input.
    :param rejects: the rejects file of this run and try.
    :param dry_run_bodies: the request bodies of a dry run.
    """

    root: ObjectStoragePath
    ledger: ObjectStoragePath
    rejects: ObjectStoragePath
    dry_run_bodies: ObjectStoragePath


def run_paths(
    identity: TaskIdentity,
    *,
    state_path: str | None,
    state_conn_id: str | None,
    rejects_path: str | None,
    uris: Sequence[str],
    kind: str,
) -> RunPaths:
    """Work out the ledger, rejects and dry-run paths of a run.

    :param identity: the task instance.
    :param state_path: the state root (``None``: :func:`default_state_root`).
    :param state_conn_id: the connection for a remote state root.
    :param rejects_path: an explicit rejects file, if given.
    :param uris: the input files.
    :param kind: the operator's kind (events, audience, campaigns), part of the ledger key.
    """
    root = storage_path(state_path or default_state_root(), state_conn_id)
    stem = f"try-{identity.try_number}"
    rejects = (
        storage_path(rejects_path, state_conn_id)
        if rejects_path
        else root / "rejects" / identity.run_dir / f"{stem}.rejects.jsonl"
    )
    return RunPaths(
        root=root,
        ledger=root / "ledger" / identity.task_dir / f"{kind}-{input_key(uris, kind)}.jsonl",
        rejects=rejects,
        dry_run_bodies=root / "dry_run" / identity.run_dir / f"{stem}.bodies.jsonl",
    )
