"""One builder of ObjectStoragePath and one local check for the whole package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage import StorageError, conn_id_of, is_local, storage_path


def test_a_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = storage_path("state/ledger.jsonl")
    assert is_local(path)
    assert path.path == os.path.join(str(tmp_path), "state", "ledger.jsonl")


def test_file_uris_and_plain_paths_are_local(tmp_path: Path) -> None:
    assert is_local(storage_path(f"file://{tmp_path}/x"))
    assert is_local(storage_path(tmp_path / "x"))
    assert is_local(ObjectStoragePath(str(tmp_path / "x")))


def test_an_object_storage_path_is_kept_unless_another_connection_is_named(s3_bucket) -> None:
    path = s3_bucket.path("a/b.jsonl")
    assert storage_path(path) is path
    assert storage_path(path, s3_bucket.conn_id) is path
    assert not is_local(path)
    rebuilt = storage_path(f"{s3_bucket.root}/a/b.jsonl", s3_bucket.conn_id)
    assert conn_id_of(rebuilt) == s3_bucket.conn_id and rebuilt.path == path.path
    other = storage_path(path, "another_conn")
    assert conn_id_of(other) == "another_conn" and other.path == path.path


def test_an_unusable_uri_is_a_clear_error() -> None:
    try:
        path = storage_path("nosuchscheme://x/y")
    except StorageError as exc:
        assert "nosuchscheme://x/y" in str(exc)
    else:  # Airflow 3.1 builds the path and fails when the storage is first reached
        with pytest.raises(ValueError, match="nosuchscheme"):
            path.fs  # noqa: B018
