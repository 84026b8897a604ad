"""No exception escapes the engine unaccounted: sender-thread failures and file failures.

A sender that raises stands in for what real code cannot be made to do on demand (a bug in a
sender thread); the files and the ledger are real.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict
from airflow_provider_aiq_braze.delivery.batching import BodyTemplate
from airflow_provider_aiq_braze.delivery.engine import DeliveryEngine, DeliveryFailed, RequestSpec
from airflow_provider_aiq_braze.delivery.ledger import Ledger
from airflow_provider_aiq_braze.delivery.records import Deliverable, Rejected
from airflow_provider_aiq_braze.delivery.storage import JsonlWriter, read_jsonl, storage_path

LOG = logging.getLogger("test")
SPEC = RequestSpec(
    endpoint="/users/track",
    array="events",
    max_objects=5,
    max_bytes=100_000,
    template_for=lambda group: BodyTemplate('{"events":[', "]}"),
)


class Sender:
    """Accepts every batch, except the ``fail_at``-th, where it raises ``error`` (after putting
    the request on the wire when ``on_wire``)."""

    retries = 0

    def __init__(self, error: BaseException, fail_at: int = 2, *, on_wire: bool = False) -> None:
        self.error, self.fail_at, self.on_wire = error, fail_at, on_wire
        self.calls = 0

    def send(
        self,
        endpoint: str,
        body: bytes,
        *,
        safe_to_retry: bool = False,
        before_send: Callable[[], None] | None = None,
    ) -> BrazeResponse:
        self.calls += 1
        if self.calls == self.fail_at:
            if self.on_wire and before_send is not None:
                before_send()
            raise self.error
        if before_send is not None:
            before_send()
        return BrazeResponse(endpoint, Verdict.ACCEPTED, 201, {"message": "success"})


def records(n: int) -> list[Any]:
    return [Deliverable("f.csv", i, {"external_id": f"u{i}", "name": "e"}, raw={"id": i}) for i in range(n)]


def engine(tmp_path: Path, sender: Any, **kwargs: Any) -> tuple[DeliveryEngine, Ledger]:
    ledger = Ledger(storage_path(tmp_path / "ledger.jsonl"), run_id="r1")
    kwargs.setdefault("rejects", JsonlWriter(storage_path(tmp_path / "rejects.jsonl")))
    return DeliveryEngine(SPEC, sender=sender, ledger=ledger, log=LOG, max_workers=1, **kwargs), ledger


def states(tmp_path: Path) -> list[str]:
    return [r["state"] for r in read_jsonl(storage_path(tmp_path / "ledger.jsonl"))]


def adds_up(counts: Any) -> None:
    assert counts.unaccounted() == 0
    assert (
        counts.rows_read == counts.sent + counts.rejected + counts.skipped + counts.uncertain + counts.failed
    )


def test_an_error_before_the_request_left_is_not_sent_never_uncertain(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path, Sender(RuntimeError("pool exploded")))
    with pytest.raises(DeliveryFailed, match="pool exploded") as raised:
        eng.run(records(20))
    counts = raised.value.counts
    adds_up(counts)
    assert counts.uncertain == 0 and counts.sent == 5 and counts.failed == counts.rows_read - 5 > 0
    assert states(tmp_path) == ["sending", "accepted", "not_sent"]  # no intent for the failed one
    assert not raised.value.setup


def test_an_error_after_the_request_left_is_uncertain(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path, Sender(RuntimeError("reader died"), on_wire=True))
    counts = eng.run(records(20))
    adds_up(counts)
    assert (counts.sent, counts.uncertain) == (15, 5)
    assert states(tmp_path).count("uncertain") == 1


def test_a_config_error_in_a_sender_thread_is_a_setup_error(tmp_path: Path) -> None:
    eng, _ = engine(tmp_path, Sender(BrazeConfigError("bad connection"), fail_at=1))
    with pytest.raises(DeliveryFailed, match="bad connection") as raised:
        eng.run(records(12))
    assert raised.value.setup and raised.value.counts.sent == 0
    adds_up(raised.value.counts)


class BrokenWriter(JsonlWriter):
    """A rejects file whose storage fails after ``good`` lines (a full disk)."""

    def __init__(self, path: Any, good: int) -> None:
        super().__init__(path)
        self.good = good

    def write_line(self, line: str) -> None:
        if self.lines_written >= self.good:
            raise OSError(28, "No space left on device")
        super().write_line(line)


def test_a_rejects_file_that_fails_mid_run_stops_the_run_with_the_cause(tmp_path: Path) -> None:
    rejects = BrokenWriter(storage_path(tmp_path / "rejects.jsonl"), good=1)
    eng, _ = engine(tmp_path, Sender(RuntimeError("unused"), fail_at=99), rejects=rejects)
    rows = records(10) + [Rejected("f.csv", 100 + i, "bad row", {"id": i}) for i in range(3)] + records(10)
    with pytest.raises(DeliveryFailed, match=r"Cannot write the rejects file .*No space left") as raised:
        eng.run(rows)
    adds_up(raised.value.counts)
    assert raised.value.setup and "rejects_path" in str(raised.value)
