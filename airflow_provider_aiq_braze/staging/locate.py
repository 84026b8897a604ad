"""Resolve a ``source`` (path, list, directory, glob, URI) into the staged files to read, in order.

Storage is reached through Airflow's :class:`~airflow.sdk.ObjectStoragePath`, so a file can live
anywhere a filesystem is registered for (local paths, ``file://``, ``s3://``, ``gs://``, ``abfs://``
...) and credentials come from an Airflow connection (``conn_id``). See ``docs/staging.md``.
"""

from __future__ import annotations

import ast
import os
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

from airflow.sdk import ObjectStoragePath

from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.storage import (
    StorageError,
    conn_id_of,
    is_local,
    known_problem,
    protocol,
    storage_path,
)

#: Formats a staged file can have.
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")

#: Values accepted for ``compression``: ``"auto"`` means "from the file name".
COMPRESSIONS: tuple[str | None, ...] = ("auto", "gzip", None)

#: File-name suffix → format.
FORMAT_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: Compression suffixes that are recognised but not supported, with their names.
UNSUPPORTED_COMPRESSION_SUFFIXES: dict[str, str] = {
    ".zip": "zip",
    ".bz2": "bzip2",
    ".zst": "zstd",
    ".zstd": "zstd",
    ".xz": "xz",
    ".lzma": "lzma",
    ".lz4": "lz4",
    ".snappy": "snappy",
    ".br": "brotli",
    ".7z": "7-zip",
    ".tar": "tar",
    ".tgz": "tar+gzip",
    ".z": "compress",
}

#: The names :func:`detect_format` understands, for error messages and docs.
SUPPORTED_NAMES = ".csv, .csv.gz, .jsonl, .json, .ndjson, .jsonl.gz, .json.gz, .ndjson.gz, .parquet, .pq"

_GLOB_CHARS = frozenset("*?[")

#: One entry of ``source``.
SourceItem = Union[str, "os.PathLike[str]", ObjectStoragePath]


@dataclass(frozen=True)
class StagedFile:
    """One staged file to read.

    :param uri: display name with its scheme, e.g. ``file:///data/part-0001.csv.gz`` or
        ``s3://bucket/key``; it never contains credentials. Used in rejects and messages.
    :param path: the file as an :class:`~airflow.sdk.ObjectStoragePath` (carries ``conn_id``).
    :param format: ``"csv"``, ``"jsonl"`` or ``"parquet"``.
    :param compression: ``"gzip"`` or ``None``.
    """

    uri: str
    path: ObjectStoragePath
    format: str
    compression: str | None

    def __str__(self) -> str:
        return self.uri


def detect_format(
    name: str, *, format: str | None = None, compression: str | None = "auto"
) -> tuple[str, str | None]:
    """Tell a file's format and compression from its name, or check the explicit ones.

    :param name: the file name (or full path; only the last component counts).
    :param format: ``"csv"``, ``"jsonl"`` or ``"parquet"`` to skip detection from the name.
    :param compression: ``"gzip"``, ``None`` (not compressed) or ``"auto"`` (from the name).
    :return: ``(format, compression)``.
    :raises StagingError: unknown extension, unsupported compression, compressed Parquet.
    """
    _check_options(format, compression)
    base = posixpath.basename(name.rstrip("/"))
    stem, suffix = _split_suffix(base)
    gzipped = suffix == ".gz"
    if gzipped:
        stem, suffix = _split_suffix(stem)
    if compression == "auto":
        if gzipped:
            compression = "gzip"
        elif suffix in UNSUPPORTED_COMPRESSION_SUFFIXES:
            raise StagingError(
                f"{name}: {UNSUPPORTED_COMPRESSION_SUFFIXES[suffix]} compression ({suffix}) is not "
                "supported; only gzip (.gz) is, for CSV and JSON Lines. Write the file uncompressed or "
                "gzip-compressed, or pass compression='gzip'/None if the name is misleading.",
                uri=name,
            )
        else:
            compression = None
    if format is None:
        detected = FORMAT_SUFFIXES.get(suffix)
        if detected is None:
            shown = f"extension {suffix!r}" if suffix else "no extension"
            raise StagingError(
                f"{name}: cannot tell the file format ({shown}). Supported names end in "
                f"{SUPPORTED_NAMES}; or pass format='csv', 'jsonl' or 'parquet' explicitly.",
                uri=name,
            )
        format = detected
    if format == "parquet" and compression is not None:
        raise StagingError(
            f"{name}: Parquet files carry their own compression; a {compression}-compressed Parquet "
            "file is not supported. Stage the .parquet file as written.",
            uri=name,
        )
    return format, compression


def locate(
    source: SourceItem | Iterable[SourceItem],
    *,
    conn_id: str | None = None,
    format: str | None = None,
    compression: str | None = "auto",
    allow_empty: bool = False,
) -> list[StagedFile]:
    """Resolve ``source`` into the files to read, sorted by URI, without duplicates.

    Each entry of ``source`` is one of:

    * a file (local path, ``file://`` or any URI an Airflow filesystem is registered for) - taken as
      is, even if its name starts with ``_`` or ``.``;
    * a directory - every file directly inside it (not recursive), skipping hidden files
      (``.name``), marker files (``_SUCCESS``, ``_committed_*``, any ``_name``) and ``.crc`` files;
    * a glob (``*``, ``?``, ``[...]``; ``**`` recurses) - matching files, with the same skips.

    A list (or any iterable, e.g. an XCom of a mapped task) combines entries; a string that holds
    a rendered list (``"['s3://a/1.csv', 's3://a/2.csv']"``) is read as that list.

    :param source: the entry or entries described above.
    :param conn_id: Airflow connection used to reach the storage; overrides ``scheme://conn_id@...``.
    :param format: ``"csv"``, ``"jsonl"`` or ``"parquet"`` for every file; detected from each name
        when ``None``.
    :param compression: ``"gzip"``, ``None`` or ``"auto"`` (``.gz`` suffix means gzip).
    :param allow_empty: accept a glob or directory that matches no file (the result may be empty).
        A path without wildcards that does not exist is an error either way.
    :return: the staged files, sorted by URI.
    :raises StagingError: nothing matches, a path does not exist, storage cannot be listed or read,
        a name has an unknown format or unsupported compression.
    """
    _check_options(format, compression)
    entries = list(_flatten(source))
    if not entries:
        raise StagingError(
            "source is empty: give a file, a directory, a glob or a list of them (check the XCom or "
            "template that produced it)."
        )
    found: dict[str, StagedFile] = {}
    for entry in entries:
        base = _storage_path(entry, conn_id)
        for uri, child in _expand(base, str(entry), allow_empty=allow_empty):
            if uri in found:
                continue
            fmt, comp = detect_format(uri, format=format, compression=compression)
            found[uri] = StagedFile(uri=uri, path=child, format=fmt, compression=comp)
    return [found[uri] for uri in sorted(found)]


# --------------------------------------------------------------------------------------------------
# helpers


def _check_options(format: str | None, compression: str | None) -> None:
    if format is not None and format not in FORMATS:
        raise StagingError(f"format must be one of {', '.join(FORMATS)} or None (got {format!r}).")
    if compression not in COMPRESSIONS:
        raise StagingError(f"compression must be 'auto', 'gzip' or None (got {compression!r}).")


def _split_suffix(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext.lower()


def _flatten(source: Any) -> Iterator[SourceItem]:
    if isinstance(source, ObjectStoragePath):
        yield source
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source).strip() if isinstance(source, os.PathLike) else source.strip()
        listed = _rendered_list(text)
        if listed is not None:
            yield from _flatten(listed)
        elif text:
            yield text
    elif isinstance(source, bytes):
        raise StagingError(f"source must be text, not bytes: {source[:200]!r}")
    elif isinstance(source, Iterable) and not isinstance(source, Mapping):
        for item in source:
            yield from _flatten(item)
    elif source is not None:
        raise StagingError(
            f"source must be a path, URI, glob or a list of them, not {type(source).__name__}: "
            f"{str(source)[:200]!r}"
        )


def _rendered_list(text: str) -> list[Any] | None:
    """A list rendered into a string by a Jinja template (``"['a', 'b']"``), or ``None``."""
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, list) else None


def _storage_path(entry: SourceItem, conn_id: str | None) -> ObjectStoragePath:
    """Build the :class:`ObjectStoragePath` for one entry, naming the entry if that fails."""
    try:
        return storage_path(entry, conn_id)
    except StorageError as exc:
        message = known_problem(exc.__cause__ or exc, str(entry), argument="source", conn_id=conn_id)
        raise StagingError(message or str(exc), uri=str(entry)) from exc


def _child(base: ObjectStoragePath, fs_path: str) -> ObjectStoragePath:
    if is_local(base):
        return ObjectStoragePath(fs_path)
    conn_id = conn_id_of(base)
    uri = f"{protocol(base)}://{fs_path}"
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def _access_error(display: str, base: ObjectStoragePath, exc: BaseException) -> StagingError:
    conn_id = conn_id_of(base)
    known = known_problem(exc, display, argument="source", conn_id=conn_id)
    if known is not None:
        return StagingError(known, uri=display)
    who = f"connection {conn_id!r}" if conn_id else "the worker's default credentials"
    return StagingError(
        f"cannot access {display}: {type(exc).__name__}: {exc}. Check that the path (bucket, "
        f"container) exists, that {who} may list and read it, and that the Airflow provider for this "
        "storage is installed.",
        uri=display,
    )


def _is_skipped(fs_path: str, root: str = "") -> bool:
    """Hidden, marker and checksum files - and, below ``root``, anything inside a hidden or marker
    directory (Spark's ``_temporary/``)."""
    name = posixpath.basename(fs_path.rstrip("/"))
    if not name or name[0] in "._" or name.lower().endswith(".crc"):
        return True
    below = fs_path[len(root) :] if root and fs_path.startswith(root) else ""
    return any(part[:1] in ("_", ".") for part in below.split("/")[:-1])


def _glob_root(fs: Any, pattern: str) -> str:
    """The directory part of ``pattern`` before its first wildcard, spelled as the filesystem spells
    the paths it returns (absolute for local files, no leading ``/`` for S3...)."""
    stripped = str(fs._strip_protocol(pattern))
    fixed = stripped[: min(stripped.index(c) for c in _GLOB_CHARS if c in stripped)]
    return fixed[: fixed.rfind("/") + 1]


def _expand(
    base: ObjectStoragePath, display: str, *, allow_empty: bool
) -> Iterator[tuple[str, ObjectStoragePath]]:
    """Yield ``(uri, path)`` for the files an entry stands for."""
    try:
        fs = base.fs
        fs_path = str(base.path)
        if _GLOB_CHARS.intersection(fs_path):
            listing = fs.glob(fs_path, detail=True)
            root = _glob_root(fs, fs_path)
            files = [
                p for p, info in listing.items() if info.get("type") == "file" and not _is_skipped(p, root)
            ]
            what = "glob"
        else:
            try:
                info = fs.info(fs_path)
            except FileNotFoundError:
                raise StagingError(
                    f"{display} does not exist. Check the path, that the upstream task staged its files "
                    "there before this task ran, and the XCom or template that produced the path.",
                    uri=display,
                ) from None
            if info.get("type") != "directory":
                name = str(info.get("name") or fs_path)
                yield fs.unstrip_protocol(name), _child(base, name)
                return
            files = [
                item["name"]
                for item in fs.ls(fs_path, detail=True)
                if item.get("type") == "file" and not _is_skipped(item["name"])
            ]
            what = "directory"
    except StagingError:
        raise
    except Exception as exc:
        raise _access_error(display, base, exc) from exc
    if not files:
        if allow_empty:
            return
        hint = (
            "the glob matches no file"
            if what == "glob"
            else "the directory holds no data file (hidden, _marker and .crc files are skipped)"
        )
        raise StagingError(
            f"{display}: {hint}. Check the pattern, that the upstream task wrote its part files there "
            "before this task ran, and the storage connection.",
            uri=display,
        )
    for p in files:
        yield fs.unstrip_protocol(p), _child(base, p)
