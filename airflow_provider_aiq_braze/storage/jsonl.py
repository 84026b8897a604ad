"""JSON Lines files (ledgers, rejects, dry-run bodies) on any storage ``ObjectStoragePath`` reaches.

Local files are appended to and flushed line by line, so a killed process loses nothing it wrote.

Object stores cannot append. There each flush writes the lines written since the last one as a new
*part* object beside the file, ``<name>.parts/<seq>-<writer>.jsonl`` (one PUT of just the new
lines: writing n lines in k flushes uploads n lines in k requests, never the whole file again).
The file's records are the object ``<name>`` itself, if any (written whole by an earlier version
of the provider or another tool), followed by its parts in name order. :func:`read_jsonl` reads
them back in that order.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.storage.paths import is_local

#: Compact JSON for records and request bodies (see :mod:`airflow_provider_aiq_braze.braze.encoding`).
dumps = to_json

#: Suffix of the "directory" holding a file's parts on object stores.
PARTS_SUFFIX = ".parts"

_PART_NAME = re.compile(r"^(\d{8,})-([0-9a-f]+)\.jsonl$")
#: Parts fetched at once when reading (bounds memory; fetched concurrently by async filesystems).
_READ_BATCH = 64


def parts_dir(path: ObjectStoragePath) -> ObjectStoragePath:
    """Where the parts of a JSON Lines file live on an object store (``<name>.parts``).

    :param path: the JSON Lines file.
    """
    return path.parent / f"{path.name}{PARTS_SUFFIX}"


class JsonlWriter:
    """Append JSON objects to a JSON Lines file, created lazily on the first write.

    Thread-safe. On object stores lines are buffered and written as a new part object by
    :meth:`flush`, :meth:`close`, or automatically every ``flush_every`` lines.

    :param path: where to write.
    :param flush_every: on object stores, write a part after this many new lines.
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
        self._writer_id = secrets.token_hex(4)
        self._next_seq: int | None = None
        #: Part objects written by this writer (object stores only).
        self.parts_written = 0

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
                    self._handle = _open_local(self.path.path, append=self._append)
                self._handle.write(line + "\n")
                self._handle.flush()
                return
            self._buffer.append(line)
            if len(self._buffer) >= self._flush_every:
                self._write_part()

    def flush(self) -> None:
        """Make everything written so far durable on the storage."""
        with self._lock:
            if self._local:
                if self._handle is not None:
                    self._handle.flush()
            elif self._buffer:
                self._write_part()

    def close(self) -> None:
        """Flush and release the file."""
        self.flush()
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def _write_part(self) -> None:
        if self._next_seq is None:
            self._next_seq = self._first_seq()
        part = parts_dir(self.path) / f"{self._next_seq:08d}-{self._writer_id}.jsonl"
        part.fs.pipe_file(part.path, "".join(line + "\n" for line in self._buffer).encode("utf-8"))
        self._next_seq += 1
        self.parts_written += 1
        self._buffer.clear()

    def _first_seq(self) -> int:
        """The number of this writer's first part: after every existing part, or 1 for a fresh file."""
        existing = _list_parts(self.path)
        if self._append:
            return 1 + max((seq for seq, _ in existing), default=0)
        fs = self.path.fs
        stale = [name for _, name in existing]
        if fs.exists(self.path.path):
            stale.append(self.path.path)
        if stale:
            fs.rm(stale)
        return 1


def _open_local(file: str, *, append: bool) -> Any:
    """Open a local file for appending lines, after ending a torn last line a killed writer left."""
    os.makedirs(os.path.dirname(file), exist_ok=True)
    if not append:
        return open(file, "w", encoding="utf-8")
    handle = open(file, "a+b")  # noqa: SIM115
    if handle.tell() > 0:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) != b"\n":
            # without this newline the next record would be glued to the torn one and both lost
            handle.write(b"\n")
            handle.flush()
    handle.close()
    return open(file, "a", encoding="utf-8")


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


def _list_parts(path: ObjectStoragePath) -> list[tuple[int, str]]:
    """``(seq, fs path)`` of the file's parts, in reading order (empty when it has none)."""
    directory = parts_dir(path)
    fs = directory.fs
    fs.invalidate_cache(directory.path)  # a cached listing would miss parts written by others
    try:
        names = fs.ls(directory.path, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    parts = []
    for name in names:
        match = _PART_NAME.match(str(name).rstrip("/").rsplit("/", 1)[-1])
        if match:
            parts.append((int(match.group(1)), str(name)))
    return sorted(parts)


def read_jsonl(path: ObjectStoragePath) -> Iterator[dict[str, Any]]:
    """Read the records of a JSON Lines file: the file itself, then its parts in order.

    A line that is not a JSON object (a torn last line of a killed local writer) is ignored.

    :param path: the file to read.
    """
    if path.exists():
        with path.open("r", encoding="utf-8") as handle:
            # readline, not iteration: Airflow 3.1 wraps the handle in an object without __iter__
            yield from _records(iter(handle.readline, ""))
    parts = [name for _, name in _list_parts(path)]
    if not parts:
        return
    fs = path.fs
    for start in range(0, len(parts), _READ_BATCH):
        batch = parts[start : start + _READ_BATCH]
        contents = fs.cat(batch)
        for name in batch:
            yield from _records(contents[name].decode("utf-8").splitlines())


def _records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record
