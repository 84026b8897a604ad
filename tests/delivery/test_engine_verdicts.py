"""Every verdict through a real operator, client and server on 127.0.0.1: rows, rejects, ledger, re-run.

A scripted server stands in for Braze where the sandbox has no such behaviour yet (400 per-item
when no object is valid, a body cut short, a refusal of the key after some batches, ...). Each
test checks the accounting invariant, the rejects file (Braze's reason, the staged row), the
ledger, and that a re-run sends nothing and fails on nothing.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowException, AirflowFailException  # type: ignore[no-redef]

from airflow_provider_aiq_braze.operators.campaigns import BrazeCampaignTriggerOperator
from airflow_provider_aiq_braze.operators.events import BrazeEventExportOperator
from tests.hooks.scripted_server import Recorded, Reply, ScriptedServer
from tests.operators.conftest import read_jsonl
from tests.reliability._support import context, write_csv, write_recipients

INVALID = "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields."
REQUIRED = "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required"

pytestmark = pytest.mark.timeout(120)


class FakeBraze:
    """Answers /users/track and /campaigns/trigger/send like live Braze; identifiers starting with
    ``bad`` are refused. ``strict`` refuses a whole request (400 naming its bad objects) as soon as
    it holds one; ``override`` answers instead while it returns a reply."""

    def __init__(self) -> None:
        self.delivered: Counter[str] = Counter()
        self.strict = False
        self.override: Callable[[Recorded, int], Reply | None] = lambda request, n: None
        self.count = 0

    def __call__(self, request: Recorded) -> Reply:
        self.count += 1
        special = self.override(request, self.count)
        if special is not None:
            return special
        body = request.json()
        array = "recipients" if "recipients" in body else "events"
        objects = body[array]
        key = "external_user_id" if array == "recipients" else "external_id"
        bad = [i for i, obj in enumerate(objects) if str(obj.get(key, "")).startswith("bad")]
        errors = [{"type": f"{REQUIRED} ({objects[i][key]})", "input_array": array, "index": i} for i in bad]
        if bad and (self.strict or len(bad) == len(objects)):
            return Reply(400, {"message": INVALID, "errors": errors})
        for i, obj in enumerate(objects):
            if i not in bad:
                self.delivered[obj[key]] += 1
        answer: dict[str, Any] = {"message": "success"}
        if errors:
            answer["errors"] = errors
        if array == "recipients":
            answer["dispatch_id"] = f"dispatch-{self.count}"
        return Reply(201, answer)


@pytest.fixture
def braze(braze_connection: Callable[..., str]) -> Iterator[tuple[FakeBraze, ScriptedServer]]:
    fake = FakeBraze()
    with ScriptedServer() as server:
        server.respond_with(fake)
        braze_connection("braze_default", host=server.url, extra={"timeout": [2, 5]})
        yield fake, server


def ids(n: int, bad: set[int] = frozenset()) -> list[str]:  # type: ignore[assignment]
    return [f"bad{i}" if i in bad else f"u{i}" for i in range(n)]


def events_file(path: Path, users: list[str]) -> str:
    rows = [["viewed", u, f"2026-11-28T10:{i % 60:02d}:00Z", f"p{i % 7}"] for i, u in enumerate(users)]
    return str(write_csv(path, ["event_name", "external_id", "timestamp", "plan"], rows))


def events_op(source: str, state: Path, **kwargs: Any) -> BrazeEventExportOperator:
    kwargs.setdefault("batch_size", 10)
    kwargs.setdefault("max_workers", 1)
    kwargs.setdefault("max_reject_ratio", 0.5)
    return BrazeEventExportOperator(task_id="events", source=source, state_path=str(state), **kwargs)


def check(result: dict[str, Any]) -> None:
    assert (
        result["rows_read"] == result["sent"] + result["rejected"] + result["skipped"] + result["uncertain"]
    )
    assert result["failed"] == 0


def ledger(state: Path) -> dict[str, dict[str, Any]]:
    (path,) = (state / "ledger").rglob("*.jsonl")
    last: dict[str, dict[str, Any]] = {}
    for record in read_jsonl(str(path)):
        if "digest" in record:
            last[record["digest"]] = record
    return last


def rejects_of(result: dict[str, Any]) -> dict[str, str]:
    """external id → reason, from the rejects file."""
    rows = read_jsonl(result["rejects_path"])
    return {r["data"]["external_id"]: r["reason"] for r in rows}


@pytest.mark.parametrize("strict", [False, True], ids=["live-braze", "400-for-any-bad-object"])
def test_400_per_item_rejects_the_named_rows_and_delivers_the_rest(
    braze, tmp_path: Path, strict: bool
) -> None:
    fake, server = braze
    fake.strict = strict
    bad = set(range(20, 30)) | {35, 37}  # batch 2 has no valid object; batch 3 two bad ones
    users = ids(60, bad)
    source, state = events_file(tmp_path / "in" / "e.csv", users), tmp_path / "state"

    result = events_op(source, state).execute(context("events"))
    check(result)
    assert (result["sent"], result["rejected"]) == (48, 12)
    assert set(fake.delivered) == {u for u in users if not u.startswith("bad")}
    assert max(fake.delivered.values()) == 1
    rejected = rejects_of(result)
    assert set(rejected) == {f"bad{i}" for i in bad}
    for user, reason in rejected.items():
        assert reason == f"Braze rejected: {REQUIRED} ({user})"  # Braze's reason, on the staged row
    states = Counter(r["state"] for r in ledger(state).values())
    if strict:  # batch 3 was refused too; its 8 others went again on their own
        assert states == Counter({"accepted": 5, "refused": 2})
        rest = [r for d, r in ledger(state).items() if d.endswith("+rest")]
        assert len(rest) == 1 and rest[0]["state"] == "accepted" and rest[0]["objects"] == 8
    else:
        assert states == Counter({"accepted": 5, "refused": 1})
    refused = next(r for r in ledger(state).values() if r["state"] == "refused" and r["objects"] == 10)
    assert len(refused["rejected"]) == 10 and refused["status"] == 400

    requests_before = len(server.requests)
    again = events_op(source, state).execute(context("events", run_id="manual__2"))
    check(again)
    assert len(server.requests) == requests_before, "a re-run resent a batch"
    assert (again["sent"], again["skipped"], again["rejected"]) == (0, 48, 12)
    assert all("earlier attempt" in reason for reason in rejects_of(again).values())


def test_every_row_refused_still_ends_by_max_reject_ratio(braze, tmp_path: Path) -> None:
    _, server = braze
    source, state = events_file(tmp_path / "in" / "e.csv", ids(20, set(range(20)))), tmp_path / "state"
    with pytest.raises(AirflowFailException, match=r"20 of 20 rows were rejected"):
        events_op(source, state, max_reject_ratio=0.05).execute(context("events"))
    assert len(server.requests) == 2  # every batch once: the run went on
    with pytest.raises(AirflowFailException, match=r"20 of 20 rows were rejected"):
        events_op(source, state, max_reject_ratio=0.05).execute(context("events", try_number=2))
    assert len(server.requests) == 2  # and the retry resent nothing


@pytest.mark.parametrize(
    "reply",
    [
        Reply(413, b"<html>413 Request Entity Too Large</html>"),
        Reply(422, {"message": "Unprocessable Entity"}),
        Reply(400, {"message": "Invalid JSON in the request body"}),
    ],
    ids=["413", "422", "400-without-items"],
)
def test_a_refused_batch_is_rejected_recorded_and_never_resent(braze, tmp_path: Path, reply: Reply) -> None:
    fake, server = braze
    fake.override = lambda request, n: reply if n == 2 else None
    source, state = events_file(tmp_path / "in" / "e.csv", ids(30)), tmp_path / "state"
    result = events_op(source, state, max_reject_ratio=0.5).execute(context("events"))
    check(result)
    assert (result["sent"], result["rejected"]) == (20, 10)
    reasons = set(rejects_of(result).values())
    assert len(reasons) == 1 and f"HTTP {reply.status}" in reasons.pop()
    assert Counter(r["state"] for r in ledger(state).values()) == Counter({"accepted": 2, "refused": 1})
    again = events_op(source, state, max_reject_ratio=0.5).execute(context("events", run_id="manual__2"))
    check(again)
    assert len(server.requests) == 3 and (again["skipped"], again["rejected"]) == (20, 10)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(401, {"message": "Invalid API Key"}), "check the connection's Password"),
        (Reply(403, {"message": "Access Denied"}), "users.track"),
        (Reply(404, b"Not Found"), "Host is not the Braze REST API"),
        (Reply(301, None, {"Location": "https://example.com/"}), "redirect"),
        (Reply(400, {"message": "Max Input Length Exceeded"}), "batch_size"),
    ],
    ids=["401", "403", "404", "301", "object-limit"],
)
def test_a_setup_error_stops_at_once_and_a_retry_after_the_fix_delivers_the_rest_once(
    braze, tmp_path: Path, reply: Reply, expected: str
) -> None:
    fake, server = braze
    fixed = threading.Event()
    fake.override = lambda request, n: reply if n >= 3 and not fixed.is_set() else None
    users = ids(60)
    source, state = events_file(tmp_path / "in" / "e.csv", users), tmp_path / "state"
    with pytest.raises(AirflowFailException) as raised:
        events_op(source, state).execute(context("events"))
    message = str(raised.value)
    assert expected in message and "20 rows delivered" in message and "not sent" in message
    assert len(server.requests) == 3, "nothing was sent after the setup error"
    states = Counter(r["state"] for r in ledger(state).values())
    assert states == Counter({"accepted": 2, "not_sent": 1})

    fixed.set()
    result = events_op(source, state).execute(context("events", try_number=2))
    check(result)
    assert (result["sent"], result["skipped"], result["uncertain"]) == (40, 20, 0)
    assert sorted(fake.delivered) == sorted(users) and max(fake.delivered.values()) == 1


def test_retries_exhausted_fail_the_try_and_the_next_try_sends_the_rest(braze, tmp_path: Path) -> None:
    fake, _ = braze
    healthy = threading.Event()
    fake.override = lambda request, n: (
        Reply(503, {"message": "down"}) if n >= 2 and not healthy.is_set() else None
    )
    users = ids(30)
    source, state = events_file(tmp_path / "in" / "e.csv", users), tmp_path / "state"
    with pytest.raises(AirflowException, match="HTTP 503") as raised:
        events_op(source, state).execute(context("events"))
    assert not isinstance(raised.value, AirflowFailException)  # Airflow retries it
    healthy.set()
    result = events_op(source, state).execute(context("events", try_number=2))
    check(result)
    assert sorted(fake.delivered) == sorted(users) and max(fake.delivered.values()) == 1


def test_a_201_cut_short_is_accepted_and_a_retry_never_calls_it_uncertain(braze, tmp_path: Path) -> None:
    fake, server = braze
    cut = Reply(
        201,
        {"message": "success", "errors": [{"type": "x", "input_array": "events", "index": 0}]},
        truncate=5,
    )
    fake.override = lambda request, n: cut if n == 1 else None
    source, state = events_file(tmp_path / "in" / "e.csv", ids(20)), tmp_path / "state"
    result = events_op(source, state).execute(context("events"))
    check(result)
    assert (result["sent"], result["uncertain"]) == (20, 0)
    first = min(ledger(state).values(), key=lambda r: r["seq"])
    assert first["state"] == "accepted" and first["items_unknown"] is True and "unknown" in first["reason"]
    again = events_op(source, state).execute(context("events", try_number=2))
    check(again)
    assert (again["skipped"], again["uncertain"]) == (20, 0) and len(server.requests) == 2


def test_a_header_extra_with_a_line_break_fails_before_anything_is_sent(
    braze, braze_connection: Callable[..., str], tmp_path: Path
) -> None:
    _, server = braze
    braze_connection("braze_default", host=server.url, extra={"X-Team": "crm\r\nX-Evil: 1"})
    source, state = events_file(tmp_path / "in" / "e.csv", ids(20)), tmp_path / "state"
    with pytest.raises(AirflowFailException, match="X-Team"):
        events_op(source, state).execute(context("events"))
    assert server.requests == []
    braze_connection("braze_default", host=server.url, extra={"X-Team": "crm"})
    result = events_op(source, state).execute(context("events", try_number=2))
    check(result)
    assert result["sent"] == 20 and server.requests[0].headers["X-Team"] == "crm"


def test_a_rejects_path_that_is_a_directory_fails_before_anything_is_sent(braze, tmp_path: Path) -> None:
    fake, server = braze
    bad = {3, 14}
    users = ids(30, bad)
    source, state = events_file(tmp_path / "in" / "e.csv", users), tmp_path / "state"
    (tmp_path / "rejects-dir").mkdir()
    with pytest.raises(AirflowFailException, match="rejects_path") as raised:
        events_op(source, state, rejects_path=str(tmp_path / "rejects-dir")).execute(context("events"))
    assert "is a directory" in str(raised.value) and "Nothing was sent" in str(raised.value)
    assert server.requests == []
    result = events_op(source, state, rejects_path=str(tmp_path / "rejects.jsonl")).execute(
        context("events", try_number=2)
    )
    check(result)
    assert (result["sent"], result["rejected"], result["uncertain"]) == (28, 2, 0)
    assert set(fake.delivered) == {u for u in users if not u.startswith("bad")}


def test_a_ledger_that_cannot_be_read_fails_clearly(braze, tmp_path: Path) -> None:
    _, server = braze
    source, state = events_file(tmp_path / "in" / "e.csv", ids(10)), tmp_path / "state"
    first = events_op(source, tmp_path / "first").execute(context("events"))
    path = Path(first["ledger_path"].removeprefix("file://"))
    ledger_dir = state / path.relative_to(tmp_path / "first").parent
    ledger_dir.mkdir(parents=True)
    (ledger_dir / path.name).mkdir()  # a directory where the ledger file goes
    with pytest.raises(AirflowFailException, match="Cannot read the ledger"):
        events_op(source, state).execute(context("events"))
    assert len(server.requests) == 1  # the first run's only


def test_campaign_recipients_refused_by_braze_are_rejects_and_never_messaged_again(
    braze, tmp_path: Path
) -> None:
    fake, server = braze
    users = ids(25, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13})
    source, state = str(write_recipients(tmp_path / "in" / "r.csv", users)), tmp_path / "state"

    def op() -> BrazeCampaignTriggerOperator:
        return BrazeCampaignTriggerOperator(
            task_id="campaign",
            source=source,
            campaign_id="c1",
            state_path=str(state),
            batch_size=10,
            max_workers=1,
            max_reject_ratio=0.9,
        )

    result = op().execute(context("campaign"))
    check(result)
    assert (result["sent"], result["rejected"]) == (14, 11)
    assert max(fake.delivered.values()) == 1 and len(fake.delivered) == 14
    requests_before = len(server.requests)
    again = op().execute(context("campaign", run_id="manual__2"))
    check(again)
    assert len(server.requests) == requests_before and again["rejected"] == 11


def test_the_sending_intent_is_written_right_before_the_request_goes_out(
    braze, braze_connection: Callable[..., str], tmp_path: Path
) -> None:
    """With requests waiting on the rate limit, only the request on the wire has an open intent."""
    fake, server = braze
    braze_connection("braze_default", host=server.url, extra={"rate_limits": {"users.track": "1/1"}})
    state = tmp_path / "state"
    open_at_arrival: list[set[str]] = []
    received: list[str] = []

    def look(request: Recorded, n: int) -> None:
        import hashlib

        received.append(hashlib.sha256(request.body).hexdigest())
        paths = list((state / "ledger").rglob("*.jsonl"))
        last: dict[str, str] = {}
        for line in paths[0].read_text().splitlines() if paths else []:
            record = json.loads(line)
            last[record["digest"]] = record["state"]
        open_at_arrival.append({d for d, s in last.items() if s == "sending"})
        return None

    fake.override = look  # type: ignore[assignment]
    source = events_file(tmp_path / "in" / "e.csv", ids(40))
    result = events_op(source, state, max_workers=4).execute(context("events"))
    check(result)
    assert len(received) == 4
    assert open_at_arrival[0] == {received[0]}, "intents were written for batches still waiting"
    for arrived, open_intents in enumerate(open_at_arrival):
        assert open_intents <= set(received[: arrived + 1]), "an intent exists for a request not sent"
