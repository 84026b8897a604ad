"""Progress lines: rows, rate and an ETA from the bytes read so far."""

from __future__ import annotations

import logging

from airflow_provider_aiq_braze.delivery.progress import Progress


class _Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: str, *args: object) -> None:
        self.lines.append(msg % args)

    warning = error = info


def test_eta_comes_from_the_share_of_bytes_read(monkeypatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("airflow_provider_aiq_braze.delivery.progress.time.monotonic", lambda: clock[0])
    read = [5000]  # bytes read before this run started do not count
    log = _Log()
    progress = Progress(log, total_bytes=1000, interval=0, bytes_read=lambda: read[0])
    progress.log_now(0, 0)
    assert log.lines[-1].endswith("ETA unknown")
    clock[0], read[0] = 110.0, 5250  # a quarter of the single (streaming) file in 10 s
    progress.log_now(100, 75)
    assert log.lines[-1] == "Progress: 100 rows read, 75 delivered, 10 rows/s, ETA 30s"


def test_whole_files_count_when_bytes_are_not_streamed() -> None:
    log = _Log()
    progress = Progress(log, total_bytes=400, interval=0)
    progress.file_done(100)
    progress.log_now(10, 10)
    assert "ETA unknown" not in log.lines[-1]


def test_lines_are_rate_limited_by_the_interval() -> None:
    log = _Log()
    progress = Progress(log, interval=3600)
    for rows in range(5):
        progress.maybe_log(rows, rows)
    assert log.lines == []
    logging.getLogger(__name__).debug("no line within the interval")
