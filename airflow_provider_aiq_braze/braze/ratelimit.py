"""Rate limiting and retry timing for Braze calls, free of Airflow and of any HTTP library.

The hook wires these pieces together:

* :func:`parse_rate_limit_headers` reads Braze's ``X-RateLimit-*`` headers into a
  :class:`RateLimitInfo`;
* :func:`reset_wait` turns ``X-RateLimit-Reset`` into a bounded pause after a 429, which a
  :class:`PauseGate` imposes on every thread sending through one hook;
* :class:`TokenBucket` spaces requests to a configured budget and slows down further when
  :func:`adaptive_rate` sees the server-side budget running low;
* :func:`backoff_delay` is the exponential backoff with full jitter used after 5xx and
  connection failures.

Every class takes its clock (and sleep) as arguments, so tests never sleep real time.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.limits import RateLimit

Clock = Callable[[], float]
Sleep = Callable[[float], None]

#: ``/campaigns/trigger/send`` with ``broadcast: true`` has its own budget: 250 requests per minute.
BROADCAST_GROUP = "messaging.broadcast"
BROADCAST_RATE = RateLimit(250, 60.0)

#: Pause after a 429 without a usable ``X-RateLimit-Reset`` header.
RESET_MISSING_WAIT = 1.0
#: Pause after a 429 whose ``X-RateLimit-Reset`` is already in the past (clock skew, window just reset).
RESET_PAST_WAIT = 0.25
#: The furthest ahead a ``X-RateLimit-Reset`` is believed (Braze's longest window is one hour).
RESET_MAX_AHEAD = 3600.0
#: Pause used when ``X-RateLimit-Reset`` is further ahead than :data:`RESET_MAX_AHEAD` (absurd value).
RESET_ABSURD_WAIT = 60.0
#: Added to every reset wait: the header has whole-second precision and clocks differ slightly.
RESET_MARGIN = 0.1

#: Slow down when fewer than this fraction of the server-side budget remains.
LOW_REMAINING_FRACTION = 0.1


@dataclass(frozen=True)
class RateLimitInfo:
    """Braze's view of the request budget, read from one response.

    :param limit: ``X-RateLimit-Limit``: requests allowed in the current window.
    :param remaining: ``X-RateLimit-Remaining``: requests left in the current window.
    :param reset: ``X-RateLimit-Reset``: UTC epoch seconds at which the window resets.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None

    @property
    def empty(self) -> bool:
        """Whether the response carried none of the three headers (in a usable form)."""
        return self.limit is None and self.remaining is None and self.reset is None


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return None if value is None else str(value).strip()
    return None


def _as_int(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return int(value)


def _as_epoch(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value


def parse_rate_limit_headers(headers: Mapping[str, Any]) -> RateLimitInfo:
    """Read ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` from response headers.

    Names are matched case-insensitively; a missing or unparseable header becomes ``None``.

    :param headers: the response headers (any mapping; a plain ``dict`` with lower-case names works).
    """
    return RateLimitInfo(
        limit=_as_int(_header(headers, "X-RateLimit-Limit")),
        remaining=_as_int(_header(headers, "X-RateLimit-Remaining")),
        reset=_as_epoch(_header(headers, "X-RateLimit-Reset")),
    )


def reset_wait(
    reset: float | None,
    now: float,
    *,
    missing: float = RESET_MISSING_WAIT,
    past: float = RESET_PAST_WAIT,
    max_ahead: float = RESET_MAX_AHEAD,
    absurd: float = RESET_ABSURD_WAIT,
    margin: float = RESET_MARGIN,
) -> float:
    """How long to pause every sender after a 429.

    :param reset: ``X-RateLimit-Reset`` (UTC epoch seconds), or ``None`` when absent.
    :param now: the current UTC epoch time.
    :param missing: the pause when the header is absent.
    :param past: the pause when the reset time has already passed.
    :param max_ahead: the furthest ahead a reset time is believed.
    :param absurd: the pause when the reset is further ahead than ``max_ahead``.
    :param margin: added to a believed reset wait (whole-second header, clock differences).
    :return: seconds to wait, always positive and bounded by ``max(max_ahead + margin, missing,
        absurd)``.
    """
    if reset is None:
        return missing
    ahead = reset - now
    if ahead <= 0:
        return past
    if ahead > max_ahead:
        return absurd
    return ahead + margin


def adaptive_rate(
    info: RateLimitInfo, now: float, *, low_fraction: float = LOW_REMAINING_FRACTION
) -> tuple[float, float] | None:
    """A slower rate to use while Braze's budget runs low, spreading what remains until the reset.

    :param info: the rate-limit headers of the latest response.
    :param now: the current UTC epoch time.
    :param low_fraction: slow down when ``remaining < low_fraction * limit``.
    :return: ``(requests per second, seconds until reset)``, or ``None`` when no slowdown applies.
    """
    if info.limit is None or info.remaining is None or info.reset is None or info.limit <= 0:
        return None
    if info.remaining >= info.limit * low_fraction:
        return None
    until = info.reset - now
    if until <= 0 or until > RESET_MAX_AHEAD:
        return None
    return max(info.remaining, 1) / until, until


def backoff_delay(
    attempt: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]``.

    :param attempt: the number of the attempt that just failed (1 for the first).
    :param base: the upper bound after the first failure, in seconds.
    :param cap: the largest upper bound, in seconds.
    :param rng: the random source (seed one in tests).
    """
    return (rng or random).uniform(0.0, backoff_ceiling(attempt, base=base, cap=cap))


def backoff_ceiling(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """The upper bound of :func:`backoff_delay` after ``attempt`` failures.

    :param attempt: the number of the attempt that just failed (1 for the first).
    :param base: the upper bound after the first failure, in seconds.
    :param cap: the largest upper bound, in seconds.
    """
    exponent = min(max(attempt, 1) - 1, 62)
    return min(cap, base * (2.0**exponent))


def backoff_schedule(max_attempts: int, *, base: float = 0.5, cap: float = 30.0) -> list[float]:
    """The upper bounds of the waits between ``max_attempts`` attempts (``max_attempts - 1`` waits).

    :param max_attempts: attempts in total, the first included.
    :param base: the upper bound after the first failure, in seconds.
    :param cap: the largest upper bound, in seconds.
    """
    return [backoff_ceiling(n, base=base, cap=cap) for n in range(1, max(max_attempts, 1))]


_RATE_SPEC = re.compile(
    r"^\s*(?P<requests>\d+(?:\.\d+)?)\s*(?:/\s*(?P<amount>\d+(?:\.\d+)?)?\s*(?P<unit>s|sec|m|min|h|hour)?)?\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hour": 3600.0}


def parse_rate_limit(value: Any, *, name: str = "rate limit") -> RateLimit:
    """Read a rate limit as written in a connection extra.

    Accepted forms: ``"3000/3"`` (3,000 requests per 3 seconds), ``"250/m"``, ``"250000/h"``,
    ``"100/10s"``, a number (requests per second), ``{"requests": 3000, "per_seconds": 3}``, or a
    :class:`~airflow_provider_aiq_braze.braze.limits.RateLimit`.

    :param value: the value to read.
    :param name: what the value is, for the error message.
    :raises BrazeConfigError: when the value is not a positive rate.
    """
    if isinstance(value, RateLimit):
        limit = value
    elif isinstance(value, bool):
        limit = None
    elif isinstance(value, int | float):
        limit = RateLimit(int(value), 1.0) if value >= 1 else RateLimit(1, 1.0 / value) if value > 0 else None
    elif isinstance(value, Mapping):
        try:
            limit = RateLimit(int(value["requests"]), float(value.get("per_seconds", 1.0)))
        except (KeyError, TypeError, ValueError):
            limit = None
    elif isinstance(value, str) and (match := _RATE_SPEC.match(value)):
        requests = float(match["requests"])
        amount = float(match["amount"]) if match["amount"] else 1.0
        unit = _UNIT_SECONDS[(match["unit"] or "s").lower()]
        limit = RateLimit(int(requests), amount * unit)
    else:
        limit = None
    if (
        limit is None
        or limit.requests <= 0
        or not limit.per_seconds > 0
        or not math.isfinite(limit.per_seconds)
    ):
        raise BrazeConfigError(
            f'Invalid {name} {value!r}: write it as requests/seconds, e.g. "3000/3", "250/m" or "250000/h".'
        )
    return limit


class TokenBucket:
    """A thread-safe token bucket that hands out reservations, so waiting threads queue fairly.

    :param rate: tokens added per second.
    :param capacity: the largest burst; the bucket starts full.
    :param clock: a monotonic clock in seconds.
    :param sleep: how to wait (``time.sleep``; a fake in tests).
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = capacity
        self._updated = clock()
        self._slow_rate: float | None = None
        self._slow_until = 0.0

    @classmethod
    def for_limit(
        cls, limit: RateLimit, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> TokenBucket:
        """A bucket for a :class:`RateLimit`: its sustained rate, bursting at most one second's worth.

        :param limit: the budget.
        :param clock: a monotonic clock in seconds.
        :param sleep: how to wait.
        """
        capacity = max(1.0, min(float(limit.requests), limit.per_second))
        return cls(limit.per_second, capacity, clock=clock, sleep=sleep)

    def current_rate(self) -> float:
        """The rate in force now: the configured one, or a lower one set by :meth:`slow_down`."""
        with self._lock:
            return self._rate_at(self._clock())

    def _rate_at(self, now: float) -> float:
        if self._slow_rate is not None and now < self._slow_until:
            return min(self.rate, self._slow_rate)
        return self.rate

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        rate = self._rate_at(now)
        # While slowed down, no bursting: at most one token in hand.
        cap = self.capacity if rate >= self.rate else 1.0
        self._tokens = min(cap, self._tokens + elapsed * rate)
        self._updated = now

    def reserve(self, tokens: float = 1.0) -> float:
        """Take ``tokens`` now (possibly into debt) and return how long to wait before using them.

        :param tokens: how many tokens to take.
        """
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= tokens
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self._rate_at(now)

    def acquire(self, tokens: float = 1.0) -> float:
        """Wait until ``tokens`` may be used; return the time waited.

        :param tokens: how many tokens to take.
        """
        delay = self.reserve(tokens)
        if delay > 0:
            self._sleep(delay)
        return delay

    def slow_down(self, rate: float, duration: float) -> None:
        """Use at most ``rate`` for the next ``duration`` seconds (the server budget is running low).

        :param rate: requests per second to allow meanwhile.
        :param duration: seconds until the slowdown ends.
        """
        if rate <= 0 or duration <= 0:
            return
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._slow_rate = rate
            self._slow_until = now + duration
            # A low budget means no bursting: keep at most one token in hand.
            self._tokens = min(self._tokens, 1.0)


class PauseGate:
    """One pause shared by every thread of a hook: after a 429, nobody sends until the reset.

    :param clock: a monotonic clock in seconds.
    :param sleep: how to wait (``time.sleep``; a fake in tests).
    """

    def __init__(self, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until = 0.0

    @property
    def paused_until(self) -> float:
        """The clock time until which sending is paused (in the past when not paused)."""
        with self._lock:
            return self._until

    def pause(self, seconds: float) -> float:
        """Pause every sender for ``seconds`` from now; a later deadline already set is kept.

        :param seconds: how long to pause.
        :return: the deadline now in force, as a clock time.
        """
        with self._lock:
            self._until = max(self._until, self._clock() + max(0.0, seconds))
            return self._until

    def remaining(self) -> float:
        """Seconds left in the current pause (0 when not paused)."""
        with self._lock:
            return max(0.0, self._until - self._clock())

    def wait(self) -> float:
        """Block until no pause is in force (re-checking, as another thread may extend it).

        :return: the time waited.
        """
        waited = 0.0
        while (left := self.remaining()) > 0:
            self._sleep(left)
            waited += left
        return waited
