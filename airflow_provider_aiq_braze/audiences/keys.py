"""Snapshot keys: the point in time of each snapshot, so an older one never overwrites a newer one.

A key is an ISO 8601 date or date-time, in one of these forms (``T`` or a space between date and
time; seconds and fractions optional; with or without a zone, ``Z`` or ``±HH:MM``; no zone is UTC)::

    2026-11-03                      midnight UTC
    2026-11-03T03:00                2026-11-03T03:00:00     2026-11-03 03:00:00.123456
    2026-11-03T03:00:00Z            2026-11-03T03:00:00+00:00      2026-11-03T04:00:00+01:00

Keys are compared as instants: ``2026-11-03`` equals ``2026-11-03T00:00:00Z``. Anything else
(``None`` from an unset template parameter, ``run-7``, ``20261103``) is refused before a run sends
anything, because it cannot be ordered.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

#: The accepted forms, for messages.
KEY_FORMS = "2026-11-03, 2026-11-03T03:00:00, 2026-11-03T03:00:00Z or 2026-11-03T03:00:00+01:00"

_KEY = re.compile(
    r"\d{4}-\d{2}-\d{2}"  # date
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"  # time: minutes, seconds and fractions optional
    r"(?:[Zz]|[+-]\d{2}:?\d{2})?)?"  # zone, optional
)


class SnapshotKeyError(ValueError):
    """A snapshot key is not a date or date-time (the message names the value and its origin)."""


def parse_snapshot_key(key: str) -> datetime | None:
    """Read a snapshot key as an aware datetime (UTC when it has no zone), or ``None`` when it is
    not one of the accepted forms.

    :param key: the snapshot key.
    """
    text = key.strip()
    if not _KEY.fullmatch(text):
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text) if len(text) > 10 else _midnight(date.fromisoformat(text))
    except ValueError:  # a well-formed text that is no real date or time (2026-02-30, 25:00)
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def checked_snapshot_key(key: object, origin: str) -> datetime:
    """The instant of a snapshot key this run is about to apply; refuse anything else.

    :param key: the key (a string from the argument or the run's data interval).
    :param origin: where it came from, for the message (``the snapshot_key argument``, …).
    :raises SnapshotKeyError: the key is not a date or date-time.
    """
    parsed = parse_snapshot_key(key) if isinstance(key, str) else None
    if parsed is None:
        raise SnapshotKeyError(
            f"snapshot key {key!r} (from {origin}) is not a date or date-time: snapshots are ordered by "
            f"their key, so it must be ISO 8601, e.g. {KEY_FORMS}. Nothing was sent."
        )
    return parsed


def compare_snapshot_keys(a: str, b: str) -> int:
    """Order two snapshot keys: ``-1`` when ``a`` is older, ``0`` when the same instant, ``1`` when newer.

    :param a: a snapshot key.
    :param b: another snapshot key.
    :raises SnapshotKeyError: either key is not a date or date-time.
    """
    left, right = parse_snapshot_key(a), parse_snapshot_key(b)
    if left is None or right is None:
        bad = a if left is None else b
        raise SnapshotKeyError(f"snapshot key {bad!r} is not a date or date-time ({KEY_FORMS})")
    return (left > right) - (left < right)


def is_older(new_key: str, applied_key: str) -> bool:
    """Whether a snapshot is older than the one already applied (and so must not overwrite it).

    :param new_key: the key of the snapshot about to be applied.
    :param applied_key: the key of the snapshot applied last.
    :raises SnapshotKeyError: either key is not a date or date-time.
    """
    return compare_snapshot_keys(new_key, applied_key) < 0


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)
