"""Snapshot state: the last audience membership applied to Braze, one split at a time.

Layout under ``<root>/<namespace>/<audience_id>/<split_id>/`` (ids percent-encoded)::

    manifest.json               which snapshot is applied, and the data file holding it
    members-<token>.parquet     identifier_kind, identifier[, attribute columns…]

A commit writes the data file under a fresh name first, then replaces the manifest in one step
(``os.replace`` on local storage, a single PUT on object stores), so a crash at any point leaves
either the old manifest with its old data file or the new manifest with its complete new data
file. Data files the manifest no longer names are removed after the manifest is written; a file
left over by a crash is never read and is cleaned up by the next commit.

The state of a split is committed only after its delta was delivered: that is what lets a re-run
after a crash recompute the same delta, and a re-run after a commit send nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import is_local, storage_path

#: Version of the manifest and data file layout.
FORMAT_VERSION = 1
#: The manifest's file name inside a split's directory.
MANIFEST_NAME = "manifest.json"
#: Prefix of the data files (``members-<token>.parquet``).
DATA_PREFIX = "members-"
#: Prefix of a manifest being written on local storage (renamed over the manifest when complete).
MANIFEST_TEMP_PREFIX = ".manifest.json.tmp-"

_COPY_CHUNK = 8 * 1024 * 1024


def parse_snapshot_key(key: str) -> datetime | None:
    """Read a snapshot key as an aware datetime, or ``None`` when it is not ISO 8601.

    Dates (``2026-11-03``) are midnight UTC; datetimes without an offset are read as UTC.

    :param key: the snapshot key.
    """
    text = key.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed: datetime = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return None
        parsed = datetime(day.year, day.month, day.day)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def compare_snapshot_keys(a: str, b: str) -> int:
    """Order two snapshot keys: ``-1`` when ``a`` is older, ``0`` when equal, ``1`` when newer.

    Keys are compared as points in time when both parse as ISO 8601 dates or datetimes (so
    ``2026-11-03`` equals ``2026-11-03T00:00:00+00:00`` and offsets are honoured); otherwise they
    are compared as plain strings, which orders zero-padded timestamps and counters correctly.

    :param a: a snapshot key.
    :param b: another snapshot key.
    """
    pa_, pb = parse_snapshot_key(a), parse_snapshot_key(b)
    left: Any = pa_ if pa_ is not None and pb is not None else a
    right: Any = pb if pa_ is not None and pb is not None else b
    return (left > right) - (left < right)


def is_older(new_key: str, applied_key: str) -> bool:
    """Whether a snapshot is older than the one already applied (and so must not overwrite it).

    :param new_key: the key of the snapshot about to be applied.
    :param applied_key: the key of the snapshot applied last.
    """
    return compare_snapshot_keys(new_key, applied_key) < 0


def encode_component(value: str) -> str:
    """Encode an audience or split id as one path component (reversible with ``unquote``).

    :param value: the id.
    """
    if not value:
        raise ValueError("audience and split ids must not be empty")
    encoded = quote(value, safe="")
    if set(encoded) == {"."}:
        encoded = encoded.replace(".", "%2E")
    return encoded


@dataclass(frozen=True)
class AppliedSnapshot:
    """The snapshot applied last to one split.

    :param audience_id: the ActionIQ audience id.
    :param split_id: the split id.
    :param snapshot_key: the key of the applied snapshot (an ISO 8601 date or timestamp).
    :param attribute: the Braze custom attribute the split is written to.
    :param members: the number of members in the applied snapshot.
    :param committed_at: when the state was committed (ISO 8601, UTC).
    :param attribute_columns: the extra attribute columns stored with the members.
    :param data_file: the data file's name in the split's directory.
    :param local_path: a local copy (or the file itself, on local storage) of the members Parquet.
    """

    audience_id: str
    split_id: str
    snapshot_key: str
    attribute: str
    members: int
    committed_at: str
    attribute_columns: tuple[str, ...]
    data_file: str
    local_path: str


class StateError(RuntimeError):
    """The stored state cannot be read (unknown format, or a manifest naming a missing file)."""


class SnapshotStore:
    """The applied snapshot of every split of one namespace, on any ``ObjectStoragePath``.

    :param root: the state directory (``ObjectStoragePath``, a local path or a URL).
    :param namespace: separates independent deliveries sharing a root, e.g. one per Braze
        workspace or DAG.
    :param local_dir: where copies of remote data files are downloaded for DuckDB; a temporary
        directory when omitted.
    """

    def __init__(
        self, root: ObjectStoragePath | str, namespace: str, *, local_dir: str | None = None
    ) -> None:
        self.root: ObjectStoragePath = storage_path(root)
        self.namespace = namespace
        self.local_dir = local_dir
        self._base = self.root / encode_component(namespace)

    @property
    def is_local(self) -> bool:
        """Whether the state lives on the local filesystem (read in place, renamed atomically)."""
        return is_local(self.root)

    def split_dir(self, audience_id: str, split_id: str) -> ObjectStoragePath:
        """The directory holding one split's state.

        :param audience_id: the audience id.
        :param split_id: the split id.
        """
        return self._base / encode_component(audience_id) / encode_component(split_id)

    def load(
        self, audience_id: str, split_id: str, *, local_dir: str | None = None
    ) -> AppliedSnapshot | None:
        """The applied snapshot of a split, or ``None`` when the split was never committed.

        :param audience_id: the audience id.
        :param split_id: the split id.
        :param local_dir: where to download a remote data file (overrides the store's).
        """
        directory = self.split_dir(audience_id, split_id)
        manifest_path = directory / MANIFEST_NAME
        if not manifest_path.exists():
            return None
        manifest = json.loads(manifest_path.read_bytes())
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise StateError(f"{manifest_path}: unsupported state format_version {version!r}")
        data_path = directory / manifest["data_file"]
        if not data_path.exists():
            raise StateError(f"{manifest_path} names {manifest['data_file']}, which does not exist")
        if self.is_local:
            local_path = data_path.path
        else:
            target_dir = local_dir or self.local_dir or tempfile.mkdtemp(prefix="aiq-braze-state-")
            os.makedirs(target_dir, exist_ok=True)
            local_path = os.path.join(
                target_dir,
                f"{encode_component(audience_id)}__{encode_component(split_id)}__{manifest['data_file']}",
            )
            with data_path.open("rb") as src, open(local_path, "wb") as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)
        return AppliedSnapshot(
            audience_id=audience_id,
            split_id=split_id,
            snapshot_key=manifest["snapshot_key"],
            attribute=manifest["attribute"],
            members=int(manifest["members"]),
            committed_at=manifest["committed_at"],
            attribute_columns=tuple(manifest.get("attribute_columns", ())),
            data_file=manifest["data_file"],
            local_path=local_path,
        )

    def applied_key(self, audience_id: str, split_id: str) -> str | None:
        """The key of the applied snapshot of a split, without downloading its data.

        :param audience_id: the audience id.
        :param split_id: the split id.
        """
        manifest_path = self.split_dir(audience_id, split_id) / MANIFEST_NAME
        if not manifest_path.exists():
            return None
        return str(json.loads(manifest_path.read_bytes())["snapshot_key"])

    def commit(
        self,
        audience_id: str,
        split_id: str,
        members_parquet_local_path: str,
        *,
        snapshot_key: str,
        attribute: str,
        members: int,
        attribute_columns: Sequence[str] = (),
        force: bool = False,
    ) -> bool:
        """Record a split's new state: the members Parquet and a manifest pointing to it.

        Returns ``False`` (and writes nothing) when a newer snapshot was committed in the
        meantime, unless ``force``.

        :param audience_id: the audience id.
        :param split_id: the split id.
        :param members_parquet_local_path: a local Parquet file with ``identifier_kind``,
            ``identifier`` and the attribute columns.
        :param snapshot_key: the key of the snapshot (ISO 8601 date or timestamp).
        :param attribute: the Braze custom attribute of the split.
        :param members: the number of members in the file.
        :param attribute_columns: the attribute columns stored in the file.
        :param force: write even over a newer applied snapshot.
        """
        directory = self.split_dir(audience_id, split_id)
        applied = self.applied_key(audience_id, split_id)
        if applied is not None and not force and is_older(snapshot_key, applied):
            return False
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:16]
        data_name = f"{DATA_PREFIX}{token}.parquet"
        with open(members_parquet_local_path, "rb") as src, (directory / data_name).open("wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
        manifest = {
            "format_version": FORMAT_VERSION,
            "namespace": self.namespace,
            "audience_id": audience_id,
            "split_id": split_id,
            "snapshot_key": snapshot_key,
            "attribute": attribute,
            "members": members,
            "attribute_columns": list(attribute_columns),
            "data_file": data_name,
            "committed_at": datetime.now(timezone.utc).isoformat(),
        }
        payload = json.dumps(manifest, indent=2).encode()
        if self.is_local:
            temp = os.path.join(directory.path, f"{MANIFEST_TEMP_PREFIX}{token}")
            with open(temp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, os.path.join(directory.path, MANIFEST_NAME))
        else:
            # One PUT: object stores make a whole object visible at once, never a partial one.
            (directory / MANIFEST_NAME).write_bytes(payload)
        self._clean(directory, keep=data_name)
        return True

    def _clean(self, directory: ObjectStoragePath, *, keep: str) -> None:
        """Remove data files the manifest no longer names and abandoned manifest temp files."""
        for child in directory.iterdir():
            name = child.name
            stale = (name.startswith(DATA_PREFIX) and name != keep) or name.startswith(MANIFEST_TEMP_PREFIX)
            if stale:
                with contextlib.suppress(OSError):  # best effort: a later commit tries again
                    child.unlink()

    def splits(self) -> list[tuple[str, str]]:
        """Every ``(audience_id, split_id)`` with committed state in this namespace, sorted."""
        found: list[tuple[str, str]] = []
        if not self._base.exists():
            return found
        for audience_dir in self._base.iterdir():
            if not audience_dir.is_dir():
                continue
            for split_dir in audience_dir.iterdir():
                if split_dir.is_dir() and (split_dir / MANIFEST_NAME).exists():
                    found.append((unquote(audience_dir.name), unquote(split_dir.name)))
        return sorted(found)
