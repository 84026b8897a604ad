"""Progress lines in the task log: rows done, rows per second, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class TaskLog(Protocol):
    """The logging methods the engine uses (a ``logging.Logger`` or Airflow's task logger)."""

    def info(self, msg: Any, /, *args: Any) -> Any:
        """Log at INFO."""

    def warning(self, msg: Any, /, *args: Any) -> Any:
        """Log at WARNING."""

    def error(self, msg: Any, /, *args: Any) -> Any:
        """Log at ERROR."""


class Progress:
    """Log progress at most every ``interval`` seconds: rows read and delivered, rows/s, ETA.

    The ETA comes from the share of the input's bytes read so far: ``bytes_read`` reports bytes
    consumed inside files as they stream (CSV, JSON Lines), and :meth:`file_done` counts whole
    files (Parquet).

    :param log: the logger to write to.
    :param total_bytes: the size of all input files (0 when unknown).
    :param interval: seconds between two progress lines.
    :param bytes_read: a counter of bytes read so far (any origin: only its growth is used).
    """

    def __init__(
        self,
        log: TaskLog,
        *,
        total_bytes: int = 0,
        interval: float = 30.0,
        bytes_read: Callable[[], int] | None = None,
    ) -> None:
        self._log = log
        self._total_bytes = total_bytes
        self._interval = interval
        self._started = time.monotonic()
        self._last = self._started
        self._bytes_read = bytes_read
        self._bytes_origin = bytes_read() if bytes_read else 0
        self._files_bytes = 0
        self._streamed_at_file_end = 0

    def file_done(self, size: int) -> None:
        """Note that a whole input file was read.

        :param size: the file's size in bytes.
        """
        self._files_bytes += size
        self._streamed_at_file_end = self._streamed()

    def maybe_log(self, rows_done: int, sent: int) -> None:
        """Log a progress line if ``interval`` seconds have passed since the last one.

        :param rows_done: rows read so far.
        :param sent: rows delivered so far.
        """
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self.log_now(rows_done, sent)

    def log_now(self, rows_done: int, sent: int) -> None:
        """Log a progress line.

        :param rows_done: rows read so far.
        :param sent: rows delivered so far.
        """
        elapsed = max(time.monotonic() - self._started, 1e-9)
        self._log.info(
            "Progress: %d rows read, %d delivered, %.0f rows/s, ETA %s",
            rows_done,
            sent,
            rows_done / elapsed,
            self._eta(elapsed),
        )

    def _streamed(self) -> int:
        return self._bytes_read() - self._bytes_origin if self._bytes_read else 0

    def _eta(self, elapsed: float) -> str:
        # bytes of finished files, plus what has streamed from the file being read now
        done = self._files_bytes + (self._streamed() - self._streamed_at_file_end)
        if not self._total_bytes or done <= 0:
            return "unknown"
        remaining = max(self._total_bytes - done, 0)
        return f"{remaining * elapsed / done:.0f}s"
