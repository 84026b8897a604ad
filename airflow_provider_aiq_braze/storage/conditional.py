"""Conditional writes: create-only, and replace or delete only if unchanged since read.

The building blocks of one owner per ledger (:mod:`airflow_provider_aiq_braze.delivery.ownership`)
and of any compare-and-swap on the provider's state. A *version* is an opaque string naming one
content of a file: the ETag on S3, a SHA-256 of the content on local storage. Each call is one
atomic step on the storage:

* :func:`create_exclusive` writes a file only if it does not exist;
* :func:`read_versioned` reads a file and its version;
* :func:`replace_if` replaces a file only if its version is still the given one;
* :func:`delete_if` deletes a file only if its version is still the given one.

Where this holds:

* **local files** (``file://``, plain paths): every change takes an exclusive ``flock`` on
  ``<file>.lock`` (readers a shared one), then checks and writes a temporary file renamed into
  place (``os.link`` for a create, ``os.replace`` for a replace). Correct between processes and
  threads on one host. On NFS it holds when the mount supports locks (NFSv4, or NFSv3 with
  ``lockd``; not ``nolock`` or ``local_lock=all``, where each client only sees its own locks).
* **S3** (``s3://``, through ``s3fs``): ``If-None-Match: *`` for a create, ``If-Match: <ETag>`` for a
  replace or delete, checked atomically by S3 (AWS S3 honours both; other S3-compatible stores
  must too, see :func:`verify_conditional_writes`).
* **any other scheme** (``gs://``, ``abfs://``…): not implemented yet; every call raises
  :class:`ConditionalWritesUnsupported`.

A write retried by the client library after a lost answer may find its own first attempt: the
functions recognise it by its content, so write content unique to each call (a token, a counter).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
from collections.abc import Iterator
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.storage.paths import is_local, protocol

#: Protocols served by ``s3fs``.
S3_PROTOCOLS = frozenset({"s3", "s3a", "s3n"})

#: S3 error codes meaning "the condition did not hold" (or lost a race against another conditional
#: write), so the write did not happen.
_S3_CONDITION_FAILED = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})
_S3_MISSING = frozenset({"NoSuchKey", "404"})


class ConditionalWritesUnsupported(RuntimeError):
    """The storage cannot write conditionally, so exclusivity cannot be guaranteed on it."""


def supports_conditional_writes(path: ObjectStoragePath) -> bool:
    """Whether this module implements conditional writes for the path's storage.

    :param path: a file on the storage.
    """
    return is_local(path) or protocol(path) in S3_PROTOCOLS


def create_exclusive(path: ObjectStoragePath, data: bytes) -> str | None:
    """Create a file holding ``data`` only if no file exists at ``path``.

    :param path: the file.
    :param data: its content.
    :return: the new version, or ``None`` when the file already existed (nothing written).
    :raises ConditionalWritesUnsupported: on a scheme without conditional writes.
    """
    if is_local(path):
        return _local_create(path.path, data)
    _require(path)
    try:
        answer = path.fs.pipe_file(path.path, data, mode="create")
    except OSError as exc:
        if not isinstance(exc, FileExistsError) and _s3_code(exc) not in _S3_CONDITION_FAILED:
            raise
        return _own_write(path, data)
    return _etag(answer) or _own_write(path, data)


def read_versioned(path: ObjectStoragePath) -> tuple[bytes, str] | None:
    """Read a file and its version in one step.

    :param path: the file.
    :return: ``(content, version)``, or ``None`` when the file does not exist.
    :raises ConditionalWritesUnsupported: on a scheme without conditional writes.
    """
    if is_local(path):
        return _local_read(path.path)
    _require(path)
    from fsspec.asyn import sync

    fs = path.fs
    bucket, key, _ = fs.split_path(path.path)
    try:
        data, etag = sync(fs.loop, _s3_get, fs, bucket, key)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if _s3_code(exc) in _S3_MISSING:
            return None
        raise
    return data, etag


def replace_if(path: ObjectStoragePath, data: bytes, version: str) -> str | None:
    """Replace a file's content only if its version is still ``version``.

    :param path: the file.
    :param data: the new content.
    :param version: the version read last (from :func:`read_versioned` or an earlier write).
    :return: the new version, or ``None`` when the file changed or disappeared (nothing written).
    :raises ConditionalWritesUnsupported: on a scheme without conditional writes.
    """
    if is_local(path):
        return _local_replace(path.path, data, version)
    _require(path)
    try:
        answer = path.fs.pipe_file(path.path, data, IfMatch=version)
    except OSError as exc:
        if _s3_code(exc) not in _S3_CONDITION_FAILED | _S3_MISSING:
            raise
        return _own_write(path, data)
    return _etag(answer) or _own_write(path, data)


def delete_if(path: ObjectStoragePath, version: str) -> bool:
    """Delete a file only if its version is still ``version``.

    :param path: the file.
    :param version: the version read last.
    :return: whether the file was deleted (``False``: it changed or was already gone).
    :raises ConditionalWritesUnsupported: on a scheme without conditional writes.
    """
    if is_local(path):
        return _local_delete(path.path, version)
    _require(path)
    fs = path.fs
    bucket, key, _ = fs.split_path(path.path)
    try:
        fs.call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=version)
    except OSError as exc:
        code = _s3_code(exc)
        if code in _S3_CONDITION_FAILED | _S3_MISSING:
            return False
        if code != "NotImplemented":
            raise
        # a store without conditional deletes: compare, then delete (a short race window)
        current = read_versioned(path)
        if current is None or current[1] != version:
            return False
        fs.rm_file(path.path)
    fs.invalidate_cache(path.path)
    return True


def verify_conditional_writes(directory: ObjectStoragePath) -> None:
    """Check once that the storage really refuses a second create of one file.

    An S3-compatible store that ignores ``If-None-Match`` would let two owners in silently; this
    writes and deletes a small probe file ``.conditional-write-probe-<random>`` in ``directory``.

    :param directory: a directory on the storage, writable by this process.
    :raises ConditionalWritesUnsupported: the storage accepted both creates, or has no conditional
        writes in this module.
    """
    probe = directory / f".conditional-write-probe-{secrets.token_hex(8)}"
    first = create_exclusive(probe, b"first")
    second = create_exclusive(probe, b"second")
    current = read_versioned(probe)
    if current is not None:
        delete_if(probe, current[1])
    if first is None or second is not None:
        raise ConditionalWritesUnsupported(
            f"exclusivity not guaranteed on {directory}: the storage accepted a second create-only write "
            "of the same object (or refused the first), so it ignores conditional writes (If-None-Match). "
            "Use AWS S3 or a store that implements conditional writes"
        )


# --------------------------------------------------------------------------------------------------
# S3 (s3fs)


def _require(path: ObjectStoragePath) -> None:
    scheme = protocol(path)
    if scheme not in S3_PROTOCOLS or not hasattr(path.fs, "call_s3"):
        raise ConditionalWritesUnsupported(
            f"exclusivity not guaranteed on {scheme}://: conditional writes are implemented for local "
            f"files (and NFS with locks) and S3 only, not for {path}."
        )


async def _s3_get(fs: Any, bucket: str, key: str) -> tuple[bytes, str]:
    answer = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    body = answer["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    return bytes(data), str(answer["ETag"])


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code (or HTTP status) behind an exception s3fs translated, if any."""
    for error in (exc, exc.__cause__):
        response = getattr(error, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return str(code or status)
    return None


def _etag(answer: Any) -> str | None:
    return str(answer["ETag"]) if isinstance(answer, dict) and answer.get("ETag") else None


def _own_write(path: ObjectStoragePath, data: bytes) -> str | None:
    """After a refused (or unanswered) write: its version if the file holds exactly ``data``.

    A write whose answer was lost is retried by the client library; the retry is refused because
    the first attempt changed the file. The content tells whether that change was ours.
    """
    current = read_versioned(path)
    if current is not None and current[0] == data:
        return current[1]
    return None


# --------------------------------------------------------------------------------------------------
# local files


def _version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _locked(file: str, *, exclusive: bool) -> Iterator[None]:
    """Hold ``flock`` on ``<file>.lock`` (created if needed; never removed, so every process locks
    the same inode)."""
    os.makedirs(os.path.dirname(file) or ".", exist_ok=True)
    fd = os.open(file + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_temp(file: str, data: bytes) -> str:
    temp = f"{file}.tmp-{secrets.token_hex(6)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return temp


def _read_file(file: str) -> bytes | None:
    try:
        with open(file, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _local_create(file: str, data: bytes) -> str | None:
    with _locked(file, exclusive=True):
        temp = _write_temp(file, data)
        try:
            os.link(temp, file)  # atomic and exclusive, and the content is complete when it appears
        except FileExistsError:
            return None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # no hard links on this file system: the lock alone keeps the create exclusive
            if os.path.exists(file):
                return None
            os.replace(temp, file)
            return _version(data)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return _version(data)


def _local_read(file: str) -> tuple[bytes, str] | None:
    with _locked(file, exclusive=False):
        data = _read_file(file)
    return None if data is None else (data, _version(data))


def _local_replace(file: str, data: bytes, version: str) -> str | None:
    with _locked(file, exclusive=True):
        current = _read_file(file)
        if current is None or _version(current) != version:
            return None
        os.replace(_write_temp(file, data), file)
    return _version(data)


def _local_delete(file: str, version: str) -> bool:
    with _locked(file, exclusive=True):
        current = _read_file(file)
        if current is None or _version(current) != version:
            return False
        os.unlink(file)
    return True
