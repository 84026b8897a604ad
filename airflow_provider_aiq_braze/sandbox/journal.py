"""An append-only JSONL journal of accepted requests, flushed line by line."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


class Journal:
    """One JSON line per accepted request: endpoint, time, status, body, dispatch id, fault.

    The API key is never written (headers are not journaled).

    :param path: the file to append to (created with its parent directories).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")

    def write(
        self,
        endpoint: str,
        status: int,
        body: Any,
        *,
        dispatch_id: str | None = None,
        send_id: str | None = None,
        fault: str | None = None,
    ) -> None:
        """Append one line and flush it.

        :param endpoint: the path.
        :param status: the status processed with (also when the answer was then dropped).
        :param body: the decoded request body.
        :param dispatch_id: the campaign send's dispatch id.
        :param send_id: the send id created or used.
        :param fault: the fault applied after processing (``drop``, ``stall``), if any.
        """
        entry = {
            "time": datetime.now(timezone.utc).isoformat(),
            "endpoint": endpoint,
            "status": status,
            "dispatch_id": dispatch_id,
            "send_id": send_id,
            "fault": fault,
            "body": body,
        }
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
