"""Fixed-window rate limiting per endpoint group, with Braze's ``X-RateLimit-*`` headers."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from airflow_provider_aiq_braze.sandbox.facts import Rate


@dataclass(frozen=True, slots=True)
class RateState:
    """What the ``X-RateLimit-*`` headers say after a request.

    :param limit: requests allowed per window.
    :param remaining: requests left in the current window.
    :param reset: UTC epoch second at which the window resets.
    :param allowed: whether the request that consumed this state is within the budget.
    """

    limit: int
    remaining: int
    reset: int
    allowed: bool = True


class FixedWindowLimiter:
    """Counts requests per group in fixed windows aligned on the epoch.

    :param rate_of: the budget of a group (read on every call, so it may change at runtime).
    """

    def __init__(self, rate_of: Callable[[str], Rate]) -> None:
        self._rate_of = rate_of
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}

    def _window(self, rate: Rate, now: float) -> tuple[int, int]:
        index = int(now // rate.seconds)
        reset = math.ceil((index + 1) * rate.seconds)
        return index, reset

    def consume(self, group: str, now: float) -> RateState:
        """Count one request against a group's budget.

        :param group: the rate-limit group.
        :param now: the current epoch time.
        """
        rate = self._rate_of(group)
        index, reset = self._window(rate, now)
        with self._lock:
            current, used = self._windows.get(group, (index, 0))
            if current != index:
                used = 0
            used += 1
            self._windows[group] = (index, used)
        return RateState(rate.requests, max(rate.requests - used, 0), reset, used <= rate.requests)

    def peek(self, group: str, now: float) -> RateState:
        """The budget of a group without counting a request.

        :param group: the rate-limit group.
        :param now: the current epoch time.
        """
        rate = self._rate_of(group)
        index, reset = self._window(rate, now)
        with self._lock:
            current, used = self._windows.get(group, (index, 0))
        if current != index:
            used = 0
        return RateState(rate.requests, max(rate.requests - used, 0), reset)

    def reset(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()
