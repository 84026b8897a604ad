"""Small helpers to write JSON Lines files on any storage ``ObjectStoragePath`` reaches.

Local files are appended to and flushed line by line, so a killed process loses nothing it
wrote. Object stores cannot append: there the file is rewritten whole on each flush, which is
atomic per object.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.braze.encoding import to_json


def storage_path(
    location: str | os.PathLike[str] | ObjectStoragePath, conn_id: str | None = None
) -> ObjectStoragePath:
    """Turn a path or URI into an ``ObjectStoragePath``.

    :param location: a local path, a ``file://`` URI or any URI Airflow's object storage supports.
    :param conn_id: the Airflow connection for remote storage.
    """
    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    return ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)


def is_local(path: ObjectStoragePath) -> bool:
    """Whether the path is on the local file system.

    :param path: the path to test.
    """
    return path.protocol in ("file", "local", "")


#: Compact JSON for records and request bodies (see :mod:`airflow_provider_aiq_braze.braze.encoding`).
dumps = to_json


class JsonlWriter:
    """Append JSON objects to a JSON Lines file, created lazily on the first write.

    :param path: where to write.
    :param flush_every: on object stores, rewrite the object after this many new lines.
    :param append: keep what the file already holds (the ledger); otherwise the first write
        starts the file afresh (rejects and dry-run bodies belong to one run).
    """

    def __init__(self, path: ObjectStoragePath, *, flush_every: int = 500, append: bool = False) -> None:
        self.path = path
        self._append = append
        self.lines_written = 0
        self._flush_every = flush_every
        self._lock = threading.Lock()
        self._local = is_local(path)
        self._handle: Any = None
        self._buffer: list[str] = []
        self._unflushed = 0

    def write(self, record: dict[str, Any]) -> None:
        """Write one record.

        :param record: a JSON-able mapping; non-finite floats in it (a rejected row's ``NaN``) are
            written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, and a value nested too
            deeply to serialize as its text cut to 2,000 characters.
        """
        try:
            line = dumps(record)
        except (ValueError, RecursionError):
            line = dumps({key: _printable(value) for key, value in record.items()})
        self.write_line(line)

    def write_line(self, line: str) -> None:
        """Write one already-serialized JSON line.

        :param line: the JSON text, without the newline.
        """
        with self._lock:
            self.lines_written += 1
            if self._local:
                if self._handle is None:
                    os.makedirs(os.path.dirname(self.path.path), exist_ok=True)
                    mode = "a" if self._append else "w"
                    self._handle = open(self.path.path, mode, encoding="utf-8")  # noqa: SIM115
                self._handle.write(line + "\n")
                self._handle.flush()
                return
            self._buffer.append(line)
            self._unflushed += 1
            if self._unflushed >= self._flush_every:
                self._flush_remote()

    def flush(self) -> None:
        """Make everything written so far durable on the storage."""
        with self._lock:
            if self._local:
                if self._handle is not None:
                    self._handle.flush()
            elif self._unflushed:
                self._flush_remote()

    def _flush_remote(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in self._buffer))
        self._unflushed = 0

    def close(self) -> None:
        """Flush and release the file."""
        self.flush()
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _printable(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold (see :meth:`JsonlWriter.write`).

    :param value: a value of a record.
    """
    try:
        clean = _finite(value)
        dumps(clean)
    except (ValueError, RecursionError):
        return repr(value)[:2000]
    return clean


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Decimal) and not value.is_finite():
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def read_jsonl(path: ObjectStoragePath) -> Iterator[dict[str, Any]]:
    """Read the records of a JSON Lines file; a torn last line (a killed writer) is ignored.

    :param path: the file to read.
    """
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as handle:
        # readline, not iteration: Airflow 3.1 wraps the handle in an object without __iter__
        for line in iter(handle.readline, ""):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record
