"""Byte streams over staged files: open through ObjectStoragePath, gunzip, watch for bad bytes."""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import zlib
from collections.abc import Iterator
from typing import Any

from airflow_provider_aiq_braze.staging.errors import StagingError
from airflow_provider_aiq_braze.staging.locate import StagedFile

#: Bytes read from storage per call; also the text decoding chunk.
READ_SIZE = 1 << 16

_GZIP_MAGIC = b"\x1f\x8b"

#: Exceptions that mean "the gzip data is damaged" (bad header, bad deflate data, truncated).
GZIP_ERRORS: tuple[type[BaseException], ...] = (gzip.BadGzipFile, zlib.error, EOFError)

#: Exceptions that mean "reading the bytes failed" (storage or gzip).
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, *GZIP_ERRORS)


class ScanningReader(io.RawIOBase):
    """A raw stream over any file object with ``read(n)`` that notices NUL bytes and invalid UTF-8.

    ``dirty`` turns true as soon as a chunk holds a NUL byte or a byte sequence that is not UTF-8.
    Readers look at it once per row: while it is false, every row decoded so far is clean text and
    needs no check of its own (text is decoded ahead of parsing, so the flag is never late).

    :param fileobj: the underlying file object (storage file, or a ``GzipFile`` over it).
    :param check_text: whether to watch for NUL bytes and invalid UTF-8 at all.
    """

    def __init__(self, fileobj: Any, *, check_text: bool = True) -> None:
        super().__init__()
        self._f = fileobj
        self._check = check_text
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.dirty = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        n = len(data)
        if self._check and not self.dirty:
            try:
                if n:
                    if b"\0" in data:
                        self.dirty = True
                    self._decoder.decode(data)
                else:
                    self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.dirty = True
        buffer[:n] = data
        return n


@contextlib.contextmanager
def open_binary(
    file: StagedFile, *, check_text: bool = False
) -> Iterator[tuple[io.BufferedReader[Any], ScanningReader]]:
    """Open a staged CSV or JSON Lines file as a buffered, decompressed byte stream.

    :param file: the staged file.
    :param check_text: make the returned :class:`ScanningReader` watch for NUL and invalid UTF-8.
    :return: (context manager of) the buffered stream and the scanner beneath it.
    :raises StagingError: the file cannot be opened, or looks gzip-compressed without saying so.
    """
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open_storage(file))
        inner: Any = raw
        if file.compression == "gzip":
            inner = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        scanner = ScanningReader(inner, check_text=check_text)
        stream = io.BufferedReader(scanner, buffer_size=READ_SIZE)
        if file.compression is None:
            try:
                head = stream.peek(2)[:2]
            except OSError as exc:
                raise read_error(file, 0, exc) from exc
            if head == _GZIP_MAGIC:
                raise StagingError(
                    f"{file.uri} looks gzip-compressed but its name does not end in .gz: rename it to "
                    "end in .gz or pass compression='gzip'.",
                    uri=file.uri,
                )
        yield stream, scanner


@contextlib.contextmanager
def open_storage(file: StagedFile) -> Iterator[Any]:
    """Open the staged file for binary reading through its ObjectStoragePath.

    :param file: the staged file.
    :raises StagingError: the file vanished or cannot be read (permissions, credentials).
    """
    try:
        handle = file.path.open("rb", block_size=READ_SIZE)
    except FileNotFoundError as exc:
        raise StagingError(
            f"{file.uri} no longer exists (it was listed, then removed before it was read). Check "
            "for another task or a retention rule deleting staged files.",
            uri=file.uri,
        ) from exc
    except Exception as exc:
        raise StagingError(
            f"cannot open {file.uri}: {type(exc).__name__}: {exc}. Check read permission and the "
            "storage connection.",
            uri=file.uri,
        ) from exc
    try:
        yield _CountingReader(handle)
    finally:
        with contextlib.suppress(Exception):
            handle.close()


#: Bytes read from storage by this process (before decompression), for progress estimates.
_bytes_read = [0]


def bytes_read() -> int:
    """Bytes this process has read from staged CSV and JSON Lines files so far (as stored)."""
    return _bytes_read[0]


class _CountingReader:
    """A file object that adds what it reads to :func:`bytes_read`.

    :param handle: the storage file object.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._handle.read(size)
        _bytes_read[0] += len(data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def read_error(file: StagedFile, last_row: int, exc: BaseException) -> StagingError:
    """Turn a failure while reading into a :class:`StagingError` naming the file and progress.

    :param file: the staged file.
    :param last_row: the last row number successfully read (0 before the first).
    :param exc: the failure.
    """
    where = f"after row {last_row}" if last_row else "before the first row"
    if isinstance(exc, GZIP_ERRORS):
        return StagingError(
            f"{file.uri}: corrupt or truncated gzip data {where} ({type(exc).__name__}: {exc}). "
            f"Rows up to {last_row} were read; re-stage the file (check that the upstream upload "
            "completed).",
            uri=file.uri,
        )
    return StagingError(
        f"{file.uri}: reading failed {where} ({type(exc).__name__}: {exc}). Check the storage "
        "connection and that the file is not being rewritten while it is read.",
        uri=file.uri,
    )
