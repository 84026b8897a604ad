"""The accounting of a delivery run, and the invariant every run must satisfy."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: How many uncertain batches the result lists in full (all are in the ledger).
MAX_LISTED_BATCHES = 100


class AccountingError(RuntimeError):
    """The counts of a run do not add up: a bug, reported rather than hidden."""


@dataclass
class DeliveryCounts:
    """Counts of input rows by what became of them, plus request statistics."""

    rows_read: int = 0
    sent: int = 0
    rejected: int = 0
    skipped: int = 0
    uncertain: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    objects_sent: int = 0
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    uncertain_batches: list[dict[str, Any]] = field(default_factory=list)

    def unaccounted(self) -> int:
        """Rows read but in none of the outcome counts (0 when the run adds up)."""
        return self.rows_read - (self.sent + self.rejected + self.skipped + self.uncertain + self.failed)

    def check(self) -> None:
        """Raise :class:`AccountingError` if rows read ≠ sent + rejected + skipped + uncertain (+ failed)."""
        if self.unaccounted() != 0:
            raise AccountingError(
                f"Accounting does not add up: rows_read={self.rows_read} but sent={self.sent} + "
                f"rejected={self.rejected} + skipped={self.skipped} + uncertain={self.uncertain} + "
                f"failed={self.failed} = {self.rows_read - self.unaccounted()}"
            )

    def as_dict(self) -> dict[str, Any]:
        """The counts in the shape of the task's XCom result."""
        return {
            "rows_read": self.rows_read,
            "sent": self.sent,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "uncertain": self.uncertain,
            "failed": self.failed,
            "requests": self.requests,
            "retries": self.retries,
            "objects_sent": self.objects_sent,
            "skipped_reasons": dict(sorted(self.skipped_reasons.items())),
            "uncertain_batches": self.uncertain_batches[:MAX_LISTED_BATCHES],
        }

    def invariant_line(self) -> str:
        """The invariant as one log line."""
        return (
            f"rows_read {self.rows_read} == sent {self.sent} + rejected {self.rejected} + "
            f"skipped {self.skipped} + uncertain {self.uncertain}"
            + (f" + failed {self.failed}" if self.failed else "")
        )
