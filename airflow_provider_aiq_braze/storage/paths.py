"""Building :class:`~airflow.sdk.ObjectStoragePath` objects, and telling local storage apart.

Every path the provider reads or writes (staged files, ledgers, rejects, audience state) is built
here, so the Airflow 3.1 workaround below applies everywhere.
"""

from __future__ import annotations

import os
from typing import Union
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath

#: Protocols served by the local file system (``""`` is a plain path).
LOCAL_PROTOCOLS = frozenset({"", "file", "local"})

#: A location as callers give it.
Location = Union[str, "os.PathLike[str]", ObjectStoragePath]


class StorageError(ValueError):
    """A location cannot be represented or reached; the message names it and says what to check."""


def storage_path(location: Location, conn_id: str | None = None) -> ObjectStoragePath:
    """Turn a path or URI into an ``ObjectStoragePath``.

    A plain path is made absolute (some ``ObjectStoragePath`` versions root relative paths at
    ``/``) and read as a ``file://`` URI. An ``ObjectStoragePath`` is returned as is unless
    ``conn_id`` names another connection.

    :param location: a local path, a ``file://`` URI or any URI Airflow's object storage supports.
    :param conn_id: the Airflow connection for remote storage (overrides ``scheme://conn_id@…``).
    :raises StorageError: the location cannot be represented (unknown scheme, malformed URI).
    """
    if isinstance(location, ObjectStoragePath):
        if conn_id is None or conn_id_of(location) == conn_id:
            return location
        location = str(location)
    text = os.fspath(location)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    elif conn_id:
        text = _without_userinfo(text)
    try:
        return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)
    except TypeError as exc:
        # Airflow 3.1's ObjectStoragePath under universal-pathlib >= 0.3 rejects every URI with a
        # scheme; a local file URI can still be used as a plain path.
        parts = urlsplit(text)
        if parts.scheme in LOCAL_PROTOCOLS:
            return ObjectStoragePath(parts.path)
        raise StorageError(
            f"{text}: Airflow's ObjectStoragePath cannot represent this URI ({exc}). Check the scheme; "
            "Airflow 3.1 needs universal-pathlib < 0.3 for URIs with a scheme."
        ) from exc
    except ValueError as exc:
        raise StorageError(f"{text}: not a usable path or URI ({exc}).") from exc


def _without_userinfo(uri: str) -> str:
    """``scheme://conn@bucket/key`` → ``scheme://bucket/key``: ObjectStoragePath would prefer the
    connection named in the URI to the one passed explicitly."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def conn_id_of(path: ObjectStoragePath) -> str | None:
    """The Airflow connection a path uses, if any (an attribute since Airflow 3.2, a storage
    option before).

    :param path: the path.
    """
    conn_id = getattr(path, "conn_id", None) or (getattr(path, "storage_options", None) or {}).get("conn_id")
    return str(conn_id) if conn_id else None


def protocol(path: ObjectStoragePath) -> str:
    """The path's protocol (``""`` for a plain local path).

    :param path: the path.
    """
    return str(getattr(path, "protocol", "") or "")


def is_local(path: ObjectStoragePath) -> bool:
    """Whether the path is on the local file system (or a shared one mounted locally, e.g. NFS).

    :param path: the path to test.
    """
    return protocol(path) in LOCAL_PROTOCOLS
