"""The pure rate-limit and backoff pieces, with injected clocks: no real sleeping."""

from __future__ import annotations

import random
import threading

import pytest

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.limits import RateLimit
from airflow_provider_aiq_braze.braze.ratelimit import (
    PauseGate,
    RateLimitInfo,
    TokenBucket,
    adaptive_rate,
    backoff_ceiling,
    backoff_delay,
    backoff_schedule,
    parse_rate_limit,
    parse_rate_limit_headers,
    reset_wait,
)


class FakeClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --- headers
def test_headers_parsed_case_insensitively() -> None:
    info = parse_rate_limit_headers(
        {"x-ratelimit-limit": "3000", "X-RATELIMIT-REMAINING": "42", "X-RateLimit-Reset": "1767225600"}
    )
    assert info == RateLimitInfo(limit=3000, remaining=42, reset=1767225600.0)
    assert not info.empty


def test_missing_headers_are_none() -> None:
    info = parse_rate_limit_headers({"Content-Type": "application/json"})
    assert info == RateLimitInfo(None, None, None)
    assert info.empty


@pytest.mark.parametrize("garbage", ["", "soon", "-5", "nan", "inf", "1e400", "12abc"])
def test_garbage_headers_are_none(garbage: str) -> None:
    info = parse_rate_limit_headers(
        {"X-RateLimit-Limit": garbage, "X-RateLimit-Remaining": garbage, "X-RateLimit-Reset": garbage}
    )
    assert info == RateLimitInfo(None, None, None)


def test_fractional_values_accepted() -> None:
    info = parse_rate_limit_headers({"X-RateLimit-Remaining": "10.0", "X-RateLimit-Reset": "1767225600.5"})
    assert info.remaining == 10
    assert info.reset == 1767225600.5


# --- reset wait
def test_reset_wait_honours_the_header() -> None:
    assert reset_wait(1012.0, 1000.0) == pytest.approx(12.1)
    assert reset_wait(1000.0 + 3600, 1000.0) == pytest.approx(3600.1)


def test_reset_wait_fallbacks() -> None:
    assert reset_wait(None, 1000.0) == 1.0
    assert reset_wait(990.0, 1000.0) == 0.25
    assert reset_wait(1000.0, 1000.0) == 0.25
    assert reset_wait(1000.0 + 3601, 1000.0) == 60.0
    assert reset_wait(None, 1000.0, missing=2.0) == 2.0


def test_adaptive_rate_spreads_the_remaining_budget() -> None:
    assert adaptive_rate(RateLimitInfo(3000, 100, 1004.0), 1000.0) == (25.0, 4.0)
    assert adaptive_rate(RateLimitInfo(3000, 0, 1004.0), 1000.0) == (0.25, 4.0)
    assert adaptive_rate(RateLimitInfo(3000, 300, 1004.0), 1000.0) is None  # 10 %: not low
    assert adaptive_rate(RateLimitInfo(3000, 100, 999.0), 1000.0) is None  # already reset
    assert adaptive_rate(RateLimitInfo(None, 100, 1004.0), 1000.0) is None


# --- backoff
def test_backoff_schedule_grows_and_is_bounded() -> None:
    assert backoff_schedule(5, base=0.5, cap=30.0) == [0.5, 1.0, 2.0, 4.0]
    assert backoff_schedule(10, base=1.0, cap=8.0) == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert backoff_schedule(1) == []
    assert backoff_ceiling(500, base=1.0, cap=30.0) == 30.0


def test_backoff_full_jitter_within_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(1, 8):
        ceiling = backoff_ceiling(attempt, base=0.5, cap=5.0)
        delays = [backoff_delay(attempt, base=0.5, cap=5.0, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2


def test_backoff_is_reproducible_with_a_seed() -> None:
    first = [backoff_delay(n, rng=random.Random(1)) for n in range(1, 5)]
    second = [backoff_delay(n, rng=random.Random(1)) for n in range(1, 5)]
    assert first == second


# --- parse_rate_limit
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3000/3", RateLimit(3000, 3.0)),
        ("250/m", RateLimit(250, 60.0)),
        ("250000/h", RateLimit(250000, 3600.0)),
        ("100/10s", RateLimit(100, 10.0)),
        ("50", RateLimit(50, 1.0)),
        (" 20 / 2 ", RateLimit(20, 2.0)),
        (10, RateLimit(10, 1.0)),
        (0.5, RateLimit(1, 2.0)),
        ({"requests": 3000, "per_seconds": 3}, RateLimit(3000, 3.0)),
        (RateLimit(7, 1.0), RateLimit(7, 1.0)),
    ],
)
def test_parse_rate_limit(value: object, expected: RateLimit) -> None:
    assert parse_rate_limit(value) == expected


@pytest.mark.parametrize("value", ["fast", "0/1", "10/0", "", -1, 0, True, None, {"per_seconds": 1}, [1, 2]])
def test_parse_rate_limit_refuses_nonsense(value: object) -> None:
    with pytest.raises(BrazeConfigError, match="requests/seconds"):
        parse_rate_limit(value)


# --- token bucket
def test_bucket_allows_a_burst_then_spaces_requests() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, capacity=5.0, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(1000.3)


def test_bucket_reservations_queue_concurrent_callers() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, capacity=1.0, clock=clock, sleep=clock.sleep)
    # Three callers at the same instant: the first goes, the others are told to wait in turn.
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.5, 1.0])


def test_bucket_refills_up_to_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=2.0, clock=clock, sleep=clock.sleep)
    bucket.reserve(2)
    clock.now += 100
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])


def test_bucket_for_limit() -> None:
    bucket = TokenBucket.for_limit(RateLimit(3000, 3.0))
    assert (bucket.rate, bucket.capacity) == (1000.0, 1000.0)
    slow = TokenBucket.for_limit(RateLimit(250, 60.0))
    assert slow.rate == pytest.approx(250 / 60)
    assert slow.capacity == pytest.approx(250 / 60)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_bucket_slow_down_and_recovery() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, capacity=100.0, clock=clock, sleep=clock.sleep)
    bucket.slow_down(2.0, 5.0)
    assert bucket.current_rate() == 2.0
    waits = [bucket.acquire() for _ in range(3)]
    assert waits == pytest.approx([0.0, 0.5, 0.5])
    clock.now += 10
    assert bucket.current_rate() == 100.0
    bucket.slow_down(500.0, 5.0)  # never faster than configured
    assert bucket.current_rate() == 100.0


def test_bucket_is_thread_safe() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, capacity=1000.0, clock=clock, sleep=lambda s: None)
    threads = [threading.Thread(target=lambda: [bucket.reserve() for _ in range(150)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 1,200 reservations against 1,000 tokens at a frozen clock: the next one waits behind 200 + 1.
    assert bucket.reserve() == pytest.approx(201.0)


# --- pause gate
def test_gate_pauses_until_deadline() -> None:
    clock = FakeClock()
    gate = PauseGate(clock=clock, sleep=clock.sleep)
    assert gate.wait() == 0.0
    gate.pause(2.0)
    assert gate.remaining() == 2.0
    assert gate.wait() == pytest.approx(2.0)
    assert clock.now == pytest.approx(1002.0)
    assert gate.remaining() == 0.0


def test_gate_keeps_the_later_deadline() -> None:
    clock = FakeClock()
    gate = PauseGate(clock=clock, sleep=clock.sleep)
    gate.pause(5.0)
    gate.pause(1.0)
    assert gate.paused_until == 1005.0


def test_gate_rechecks_when_extended_meanwhile() -> None:
    clock = FakeClock()
    gate = PauseGate(clock=clock, sleep=clock.sleep)
    extended = False

    def sleep(seconds: float) -> None:
        nonlocal extended
        clock.sleep(seconds)
        if not extended:  # another thread saw a second 429 while we slept
            extended = True
            gate.pause(3.0)

    gate._sleep = sleep
    gate.pause(1.0)
    assert gate.wait() == pytest.approx(4.0)
    assert clock.now == pytest.approx(1004.0)
