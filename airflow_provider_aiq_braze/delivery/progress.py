"""Progress lines in the task log: rows done, rows per second, ETA."""

from __future__ import annotations

import time
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
    """Log progress at most every ``interval`` seconds.

    The ETA comes from the share of input bytes in fully read files; it is shown once one file
    is done (rows per byte are then known).

    :param log: the logger to write to.
    :param total_bytes: the size of all input files (0 when unknown).
    :param interval: seconds between two progress lines.
    """

    def __init__(self, log: TaskLog, *, total_bytes: int = 0, interval: float = 30.0) -> None:
        self._log = log
        self._total_bytes = total_bytes
        self._interval = interval
        self._started = time.monotonic()
        self._last = self._started
        self._bytes_done = 0
        self._rows_at_last_file = 0

    def file_done(self, size: int, rows_so_far: int) -> None:
        """Note that a whole input file was read.

        :param size: the file's size in bytes.
        :param rows_so_far: rows read in total when the file ended.
        """
        self._bytes_done += size
        self._rows_at_last_file = rows_so_far

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
        rate = rows_done / elapsed
        self._log.info(
            "Progress: %d rows read, %d delivered, %.0f rows/s, ETA %s",
            rows_done,
            sent,
            rate,
            self._eta(rows_done, rate),
        )

    def _eta(self, rows_done: int, rate: float) -> str:
        if not self._total_bytes or not self._bytes_done or rate <= 0 or not self._rows_at_last_file:
            return "unknown (known after the first file)"
        rows_per_byte = self._rows_at_last_file / self._bytes_done
        remaining_rows = max(self._total_bytes * rows_per_byte - rows_done, 0)
        return f"{remaining_rows / rate:.0f}s"
