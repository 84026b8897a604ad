"""Snapshot state: the last audience membership applied to Braze, one split at a time.

Layout under ``<root>/<namespace>/`` (ids percent-encoded, so no id ever contains ``+``)::

    <audience_id>/<split_id>/manifest.json      which snapshot is applied, and the data file holding it
    <audience_id>/<split_id>/members-<t>.parquet  identifier_kind, identifier[, attribute columns…]
    +lease.json                                  the lease of the run writing to this namespace
    +pending/<time>-<writer>-<token>.parquet     profiles a run is writing (or may have written)
    +last-writer.json                            the ledger of the last run that wrote to Braze

A commit writes the data file under a fresh name first, then swaps the manifest in one
compare-and-swap step (:func:`~airflow_provider_aiq_braze.storage.replace_if` on the version read
when the delta was computed; :func:`~airflow_provider_aiq_braze.storage.create_exclusive` for a
split's first commit): a crash leaves either the old manifest with its old data file or the new
one with its complete new file, and a run whose base changed meanwhile cannot overwrite the newer
state (:class:`StateConflict`). Data files no manifest names are removed after a commit.

*Pending markers* make interrupted runs repairable: before sending, a run records the profiles it
is about to write; it removes the marker once the state matching those writes is committed. A
marker left behind (a killed run, a run that lost its lease) names profiles whose Braze value may
differ from the applied state: the next run rewrites them (see ``docs/audiences.md``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote, unquote

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import (
    create_exclusive,
    is_local,
    read_versioned,
    replace_if,
    storage_path,
    supports_conditional_writes,
)

#: Version of the manifest and data file layout.
FORMAT_VERSION = 1
#: The manifest's file name inside a split's directory.
MANIFEST_NAME = "manifest.json"
#: Prefix of the data files (``members-<token>.parquet``).
DATA_PREFIX = "members-"
#: Prefixes of a manifest being written (by earlier versions, and by the conditional writes).
MANIFEST_TEMP_PREFIXES = (".manifest.json.tmp-", "manifest.json.tmp-")
#: The namespace's lease (``+`` is percent-encoded in ids, so no audience can have this name).
LEASE_NAME = "+lease.json"
#: The folder of pending markers in a namespace.
PENDING_DIR = "+pending"
#: The record of the last run that wrote to Braze for a namespace.
LAST_WRITER_NAME = "+last-writer.json"
#: Columns of a pending marker.
PENDING_COLUMNS = ("audience_id", "split_id", "identifier_kind", "identifier")

_COPY_CHUNK = 8 * 1024 * 1024


def writer_digest(ledger: str) -> str:
    """A short digest of a run's ledger path, naming its pending markers.

    :param ledger: the ledger path.
    """
    return hashlib.sha256(ledger.encode()).hexdigest()[:12]


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
class Manifest:
    """What a split's manifest says: the snapshot applied last.

    :param audience_id: the ActionIQ audience id.
    :param split_id: the split id.
    :param snapshot_key: the key of the applied snapshot.
    :param attribute: the Braze custom attribute the split is written to.
    :param members: the number of members in the applied snapshot.
    :param committed_at: when the state was committed (ISO 8601, UTC).
    :param attribute_columns: the extra attribute columns stored with the members.
    :param data_file: the data file's name in the split's directory.
    :param version: the manifest's version for a compare-and-swap commit (``None`` on a storage
        without conditional writes).
    """

    audience_id: str
    split_id: str
    snapshot_key: str
    attribute: str
    members: int
    committed_at: str
    attribute_columns: tuple[str, ...]
    data_file: str
    version: str | None


@dataclass(frozen=True)
class AppliedSnapshot(Manifest):
    """A split's manifest with its members at hand.

    :param local_path: a local copy (or the file itself, on local storage) of the members Parquet.
    """

    local_path: str = ""


@dataclass(frozen=True)
class PendingMarker:
    """Profiles a run is writing (or may have written) without a matching committed state.

    :param name: the marker's file name in the namespace's ``+pending`` folder.
    :param local_path: a local copy (or the file itself) of its Parquet (:data:`PENDING_COLUMNS`).
    """

    name: str
    local_path: str


class StateError(RuntimeError):
    """The stored state cannot be read (unknown format, or a manifest naming a missing file)."""


class StateConflict(RuntimeError):
    """The applied state changed after the delta was computed: the commit did not happen."""


class SnapshotStore:
    """The applied snapshot of every split of one namespace, on any ``ObjectStoragePath``.

    :param root: the state directory (``ObjectStoragePath``, a local path or a URL).
    :param namespace: separates independent deliveries sharing a root, e.g. one per Braze
        workspace or DAG.
    :param local_dir: where copies of remote files are downloaded for DuckDB; a temporary
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

    @property
    def conditional(self) -> bool:
        """Whether commits are compare-and-swap on this storage (local files and S3)."""
        return supports_conditional_writes(self._base / MANIFEST_NAME)

    @property
    def lease_path(self) -> ObjectStoragePath:
        """The lease a run holds on this namespace from reading the state to its commit."""
        return self._base / LEASE_NAME

    def split_dir(self, audience_id: str, split_id: str) -> ObjectStoragePath:
        """The directory holding one split's state.

        :param audience_id: the audience id.
        :param split_id: the split id.
        """
        return self._base / encode_component(audience_id) / encode_component(split_id)

    # -- reading -------------------------------------------------------------------------------

    def manifest(self, audience_id: str, split_id: str) -> Manifest | None:
        """A split's manifest and its version, or ``None`` when the split was never committed.

        :param audience_id: the audience id.
        :param split_id: the split id.
        :raises StateError: the manifest is of an unknown format.
        """
        path = self.split_dir(audience_id, split_id) / MANIFEST_NAME
        if self.is_local and not os.path.exists(path.path):  # reading takes no lock, creates no folder
            return None
        if self.conditional:
            found = read_versioned(path)
            if found is None:
                return None
            data, version = found
        else:
            if not path.exists():
                return None
            data, version = path.read_bytes(), None
        raw = json.loads(data)
        if raw.get("format_version") != FORMAT_VERSION:
            raise StateError(f"{path}: unsupported state format_version {raw.get('format_version')!r}")
        return Manifest(
            audience_id=audience_id,
            split_id=split_id,
            snapshot_key=str(raw["snapshot_key"]),
            attribute=str(raw["attribute"]),
            members=int(raw["members"]),
            committed_at=str(raw["committed_at"]),
            attribute_columns=tuple(raw.get("attribute_columns", ())),
            data_file=str(raw["data_file"]),
            version=version,
        )

    def download(self, manifest: Manifest, *, local_dir: str | None = None) -> AppliedSnapshot:
        """The members of a manifest as a local Parquet file (the file itself on local storage).

        :param manifest: the manifest (from :meth:`manifest`).
        :param local_dir: where to download a remote data file (overrides the store's).
        :raises StateError: the manifest names a data file that does not exist.
        """
        directory = self.split_dir(manifest.audience_id, manifest.split_id)
        data_path = directory / manifest.data_file
        if not data_path.exists():
            raise StateError(f"{directory / MANIFEST_NAME} names {manifest.data_file}, which does not exist")
        if self.is_local:
            local_path = data_path.path
        else:
            name = "__".join(
                (
                    encode_component(manifest.audience_id),
                    encode_component(manifest.split_id),
                    manifest.data_file,
                )
            )
            local_path = self._download(data_path, name, local_dir)
        fields = {k: getattr(manifest, k) for k in Manifest.__dataclass_fields__}
        return AppliedSnapshot(**fields, local_path=local_path)

    def load(
        self, audience_id: str, split_id: str, *, local_dir: str | None = None
    ) -> AppliedSnapshot | None:
        """The applied snapshot of a split, or ``None`` when the split was never committed.

        :param audience_id: the audience id.
        :param split_id: the split id.
        :param local_dir: where to download a remote data file (overrides the store's).
        """
        manifest = self.manifest(audience_id, split_id)
        return None if manifest is None else self.download(manifest, local_dir=local_dir)

    def applied_key(self, audience_id: str, split_id: str) -> str | None:
        """The key of the applied snapshot of a split, without downloading its data.

        :param audience_id: the audience id.
        :param split_id: the split id.
        """
        manifest = self.manifest(audience_id, split_id)
        return None if manifest is None else manifest.snapshot_key

    def splits(self) -> list[tuple[str, str]]:
        """Every ``(audience_id, split_id)`` with committed state in this namespace, sorted."""
        found: list[tuple[str, str]] = []
        if not self._base.exists():
            return found
        for audience_dir in self._base.iterdir():
            if audience_dir.name.startswith("+") or not audience_dir.is_dir():
                continue
            for split_dir in audience_dir.iterdir():
                if split_dir.is_dir() and (split_dir / MANIFEST_NAME).exists():
                    found.append((unquote(audience_dir.name), unquote(split_dir.name)))
        return sorted(found)

    def attribute_owners(self) -> dict[str, tuple[str, str]]:
        """Which ``(audience_id, split_id)`` each attribute of this namespace's applied state belongs to."""
        owners: dict[str, tuple[str, str]] = {}
        for audience_id, split_id in self.splits():
            manifest = self.manifest(audience_id, split_id)
            if manifest is not None:
                owners.setdefault(manifest.attribute, (audience_id, split_id))
        return owners

    # -- committing ------------------------------------------------------------------------------

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
        base: Manifest | None,
    ) -> Manifest:
        """Record a split's new state, only if its manifest is still ``base``.

        :param audience_id: the audience id.
        :param split_id: the split id.
        :param members_parquet_local_path: a local Parquet file with ``identifier_kind``,
            ``identifier`` and the attribute columns.
        :param snapshot_key: the key of the snapshot.
        :param attribute: the Braze custom attribute of the split.
        :param members: the number of members in the file.
        :param attribute_columns: the attribute columns stored in the file.
        :param base: the manifest the new state was computed against (``None``: the split had none).
        :return: the new manifest.
        :raises StateConflict: the manifest changed since ``base`` was read; nothing was committed.
        """
        directory = self.split_dir(audience_id, split_id)
        directory.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:16]
        data_name = f"{DATA_PREFIX}{token}.parquet"
        with open(members_parquet_local_path, "rb") as src, (directory / data_name).open("wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
        new = Manifest(
            audience_id=audience_id,
            split_id=split_id,
            snapshot_key=snapshot_key,
            attribute=attribute,
            members=members,
            committed_at=datetime.now(timezone.utc).isoformat(),
            attribute_columns=tuple(attribute_columns),
            data_file=data_name,
            version=None,
        )
        swapped, version = self._swap_manifest(directory, new, base)
        if not swapped:
            with contextlib.suppress(OSError):
                (directory / data_name).unlink()
            current = self.manifest(audience_id, split_id)
            was = f"snapshot {base.snapshot_key}" if base is not None else "no state"
            now = f"snapshot {current.snapshot_key}" if current is not None else "no state"
            raise StateConflict(
                f"the applied state of audience {audience_id!r} split {split_id!r} changed while this run "
                f"delivered its delta (computed against {was}, now {now}): another run committed meanwhile. "
                "This run's state was not committed"
            )
        self._clean(directory, keep=data_name)
        return Manifest(**{**new.__dict__, "version": version})

    def _swap_manifest(
        self, directory: ObjectStoragePath, new: Manifest, base: Manifest | None
    ) -> tuple[bool, str | None]:
        """Write the manifest if it is still ``base``: ``(written, new version)``."""
        payload = json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "namespace": self.namespace,
                "audience_id": new.audience_id,
                "split_id": new.split_id,
                "snapshot_key": new.snapshot_key,
                "attribute": new.attribute,
                "members": new.members,
                "attribute_columns": list(new.attribute_columns),
                "data_file": new.data_file,
                "committed_at": new.committed_at,
            },
            indent=2,
        ).encode()
        path = directory / MANIFEST_NAME
        if self.conditional:
            if base is None:
                version = create_exclusive(path, payload)
            else:
                assert base.version is not None, "a manifest read from this storage carries its version"
                version = replace_if(path, payload, base.version)
            return version is not None, version
        # no conditional writes here (the operator refuses this unless require_exclusive=False):
        # compare, then write, with a race window
        current = self.manifest(new.audience_id, new.split_id)
        if (current and current.committed_at) != (base and base.committed_at):
            return False, None
        path.write_bytes(payload)
        return True, None

    def _clean(self, directory: ObjectStoragePath, *, keep: str) -> None:
        """Remove data files the manifest no longer names and abandoned manifest temp files."""
        for child in directory.iterdir():
            name = child.name
            stale = (name.startswith(DATA_PREFIX) and name != keep) or name.startswith(MANIFEST_TEMP_PREFIXES)
            if stale:
                with contextlib.suppress(OSError):  # best effort: a later commit tries again
                    child.unlink()

    # -- pending markers and the last writer -----------------------------------------------------

    def publish_pending(self, local_parquet: str, writer: str) -> str:
        """Store a pending marker (a Parquet file of :data:`PENDING_COLUMNS`); return its name.

        :param local_parquet: the marker's local file.
        :param writer: the ledger of the run writing those profiles (its digest is in the name).
        """
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
        name = f"{stamp}-{writer_digest(writer)}-{uuid.uuid4().hex[:12]}.parquet"
        folder = self._base / PENDING_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with open(local_parquet, "rb") as src, (folder / name).open("wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
        return name

    def pending(self, *, local_dir: str | None = None) -> list[PendingMarker]:
        """Every pending marker of the namespace, oldest first, with a local copy of each.

        :param local_dir: where to download remote markers (overrides the store's).
        """
        folder = self._base / PENDING_DIR
        if not folder.exists():
            return []
        found = sorted(
            (child for child in folder.iterdir() if child.name.endswith(".parquet")), key=lambda p: p.name
        )
        if self.is_local:
            return [PendingMarker(child.name, child.path) for child in found]
        return [
            PendingMarker(child.name, self._download(child, f"pending__{child.name}", local_dir))
            for child in found
        ]

    def pending_writers(self) -> set[str]:
        """The :func:`writer_digest` of the runs whose pending markers are stored (without reading them)."""
        folder = self._base / PENDING_DIR
        if not folder.exists():
            return set()
        return {child.name.split("-")[1] for child in folder.iterdir() if child.name.count("-") >= 2}

    def remove_pending(self, name: str) -> None:
        """Remove a pending marker (once the profiles it names match a committed state).

        :param name: the marker's name.
        """
        with contextlib.suppress(FileNotFoundError):
            (self._base / PENDING_DIR / name).unlink()

    def last_writer(self) -> str | None:
        """The ledger of the last run that wrote to Braze for this namespace, if recorded."""
        path = self._base / LAST_WRITER_NAME
        if not path.exists():
            return None
        try:
            return str(json.loads(path.read_bytes())["ledger"])
        except (ValueError, KeyError, TypeError):
            return None

    def set_last_writer(self, ledger: str, owner: str) -> None:
        """Record the run about to write to Braze (call it holding the namespace's lease).

        :param ledger: the run's ledger path.
        :param owner: who the run is, for people reading the file.
        """
        record = {"ledger": ledger, "owner": owner, "at": datetime.now(timezone.utc).isoformat()}
        self._base.mkdir(parents=True, exist_ok=True)
        (self._base / LAST_WRITER_NAME).write_bytes(json.dumps(record).encode())

    def _download(self, path: ObjectStoragePath, name: str, local_dir: str | None) -> str:
        target_dir = local_dir or self.local_dir or tempfile.mkdtemp(prefix="aiq-braze-state-")
        os.makedirs(target_dir, exist_ok=True)
        local_path = os.path.join(target_dir, name)
        with path.open("rb") as src, open(local_path, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
        return local_path
