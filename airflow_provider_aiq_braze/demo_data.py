"""Realistic sample ActionIQ output for the demo: audience snapshots with churn, events, a segment.

Everything is generated from one seed, so the same call writes the same files. The layout is the
one the example DAGs in ``dags/`` read (``docs/scheduling.md``)::

    <staging>/audiences/<day>/part-0000{0,1}.csv + _SUCCESS     daily membership snapshots
    <staging>/events/<day>/<HH>/part-00000.csv + _SUCCESS       one hour of events
    <staging>/events_bulk/<day>/part-0000N.csv.gz + _SUCCESS    a large export in part files
    <staging>/campaigns/winback/<day>/segment.csv + _SUCCESS    a journey's campaign segment
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

#: The audiences and their splits: (audience id, split id) → (name, share of the users).
SPLITS: dict[tuple[str, str], tuple[str, float]] = {
    ("1042", "1"): ("High-value customers, treatment", 0.12),
    ("1042", "2"): ("High-value customers, control", 0.04),
    ("2077", "1"): ("Lapsing subscribers", 0.20),
    ("3310", "1"): ("Spring sale, 10% off", 0.10),
    ("3310", "2"): ("Spring sale, 20% off", 0.10),
    ("3310", "3"): ("Spring sale, holdout", 0.05),
}
#: Share of a split's members replaced from one day to the next.
DAILY_CHURN = 0.08
EVENT_NAMES = ("product_viewed", "added_to_cart", "order_completed", "app_opened", "email_clicked")
CHANNELS = ("web", "ios", "android", "email")


@dataclass
class DemoData:
    """What :func:`generate` wrote, and the facts the demo checks Braze against.

    :param users: every external id (all exist in Braze before the first sync).
    :param days: the snapshot days, oldest first.
    :param membership: per day, per attribute name (``AIQ_<audience>_<split>``), the member ids.
    :param event_hour: the staged hour of events (day, hour).
    :param events: how many valid events were staged for that hour.
    :param bad_events: how many invalid event rows were staged with them (to be rejected).
    :param bulk_events: how many events the large export holds.
    :param bulk_parts: how many part files the large export has.
    :param segment: the campaign segment's recipients.
    """

    users: list[str]
    days: list[date]
    membership: dict[date, dict[str, set[str]]] = field(default_factory=dict)
    event_hour: tuple[date, int] = (date(2025, 6, 3), 10)
    events: int = 0
    bad_events: int = 0
    bulk_events: int = 0
    bulk_parts: int = 0
    segment: list[str] = field(default_factory=list)

    def final_membership(self) -> dict[str, set[str]]:
        """Per attribute name, the members of the last day."""
        return self.membership[self.days[-1]]


def attribute_name(audience_id: str, split_id: str) -> str:
    """The Braze attribute of a split (the operator's default template).

    :param audience_id: the audience.
    :param split_id: the split.
    """
    return f"AIQ_{audience_id}_{split_id}"


def generate(
    staging: Path,
    *,
    users: int = 2000,
    days: Sequence[date] = (date(2025, 6, 1), date(2025, 6, 2), date(2025, 6, 3)),
    events: int = 300,
    bulk_events: int = 2000,
    bulk_parts: int = 4,
    segment_size: int = 120,
    seed: int = 7,
) -> DemoData:
    """Write the demo's staged ActionIQ output under ``staging``.

    :param staging: the staging root (created if needed).
    :param users: how many users the workspace has.
    :param days: the days of the audience snapshots (consecutive, oldest first).
    :param events: valid events in the staged hour (the last day, 10:00 UTC).
    :param bulk_events: events in the large export (the last day).
    :param bulk_parts: part files of the large export.
    :param segment_size: recipients of the campaign segment.
    :param seed: the random seed.
    """
    rng = random.Random(seed)
    ids = [f"u-{n:05d}" for n in range(1, users + 1)]
    data = DemoData(users=ids, days=list(days))
    members = {key: set(rng.sample(ids, int(users * share))) for key, (_, share) in SPLITS.items()}
    for day in days:
        if day != days[0]:
            members = {key: _churn(rng, current, ids) for key, current in members.items()}
        data.membership[day] = {attribute_name(*key): set(m) for key, m in members.items()}
        _write_snapshot(staging / "audiences" / day.isoformat(), members, rng)

    last = days[-1]
    data.event_hour = (last, 10)
    hour_start = datetime(last.year, last.month, last.day, 10, tzinfo=timezone.utc)
    rows = [_event(rng, ids, hour_start, timedelta(hours=1)) for _ in range(events)]
    bad = [
        {"event_name": "order_completed", "external_id": "", "timestamp": hour_start.isoformat()},
        {"event_name": "$reserved_name", "external_id": ids[0], "timestamp": hour_start.isoformat()},
    ]
    folder = staging / "events" / last.isoformat() / "10"
    _write_csv(folder / "part-00000.csv", _event_columns(), [*rows[: events // 2], *bad])
    _write_csv(folder / "part-00001.csv", _event_columns(), rows[events // 2 :])
    _mark_done(folder)
    data.events, data.bad_events = events, len(bad)

    day_start = datetime(last.year, last.month, last.day, tzinfo=timezone.utc)
    bulk = [_event(rng, ids, day_start, timedelta(days=1)) for _ in range(bulk_events)]
    folder = staging / "events_bulk" / last.isoformat()
    for part in range(bulk_parts):
        _write_csv(folder / f"part-{part:05d}.csv.gz", _event_columns(), bulk[part::bulk_parts])
    _mark_done(folder)
    data.bulk_events, data.bulk_parts = bulk_events, bulk_parts

    lapsing = sorted(data.final_membership()[attribute_name("2077", "1")])
    data.segment = sorted(rng.sample(lapsing, min(segment_size, len(lapsing))))
    folder = staging / "campaigns" / "winback" / last.isoformat()
    _write_csv(
        folder / "segment.csv",
        ["external_id", "braze_id", "offer_code", "favourite_category"],
        [
            {
                "external_id": uid,
                "braze_id": "",
                "offer_code": f"WB-{rng.randrange(10_000, 99_999)}",
                "favourite_category": rng.choice(("shoes", "outdoor", "kitchen", "books")),
            }
            for uid in data.segment
        ],
    )
    _mark_done(folder)
    return data


def _churn(rng: random.Random, current: set[str], ids: list[str]) -> set[str]:
    leaving = set(rng.sample(sorted(current), int(len(current) * DAILY_CHURN)))
    outside = [uid for uid in ids if uid not in current]
    joining = set(rng.sample(outside, min(len(outside), max(0, len(leaving) + rng.randrange(-3, 8)))))
    return (current - leaving) | joining


def _write_snapshot(folder: Path, members: dict[tuple[str, str], set[str]], rng: random.Random) -> None:
    rows = [
        {"audience_id": aud, "split_id": split, "external_id": uid, "braze_id": ""}
        for (aud, split), ids in sorted(members.items())
        for uid in sorted(ids)
    ]
    rng.shuffle(rows)  # exports are not sorted
    half = len(rows) // 2
    columns = ["audience_id", "split_id", "external_id", "braze_id"]
    _write_csv(folder / "part-00000.csv", columns, rows[:half])
    _write_csv(folder / "part-00001.csv", columns, rows[half:])
    _mark_done(folder)


def _event_columns() -> list[str]:
    return ["event_name", "external_id", "braze_id", "timestamp", "properties"]


def _event(rng: random.Random, ids: list[str], start: datetime, span: timedelta) -> dict[str, Any]:
    name = rng.choice(EVENT_NAMES)
    props: dict[str, Any] = {"channel": rng.choice(CHANNELS)}
    if name in ("order_completed", "added_to_cart"):
        props.update(sku=f"SKU-{rng.randrange(1000, 9999)}", value=round(rng.uniform(5, 250), 2))
    when = start + timedelta(seconds=rng.randrange(int(span.total_seconds())))
    return {
        "event_name": name,
        "external_id": rng.choice(ids),
        "braze_id": "",
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": json.dumps(props),
    }


def _write_csv(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    stream: IO[str]
    with (
        gzip.open(path, "wt", newline="", encoding="utf-8")
        if path.suffix == ".gz"
        else path.open("w", newline="", encoding="utf-8")
    ) as stream:
        writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _mark_done(folder: Path) -> None:
    (folder / "_SUCCESS").write_text("")
