"""Seeded fault injection: latency, 5xx, 429 storms, resets, drop or stall after processing, and
hostile answers (redirects, 413, 422, 504, truncated, empty or non-JSON bodies, string errors, key echoes)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from airflow_provider_aiq_braze.sandbox.config import HOSTILE_ANSWERS, FaultConfig

#: The counters of "next N requests" faults and the action each gives, in the order used up.
_COUNTERS = (
    ("reset_requests", "reset"),
    ("rate_limit_storm_requests", "storm"),
    ("error_requests", "error"),
    ("drop_after_process_requests", "drop"),
    ("stall_after_process_requests", "stall"),
    *((f"{kind}_requests", kind) for kind in HOSTILE_ANSWERS),
)
#: Actions that answer before the request is processed (nothing processed).
BEFORE_PROCESSING = frozenset({"reset", "storm", "error", "redirect", "payload_too_large", "unprocessable"})


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one request.

    :param delay: seconds to wait before handling it.
    :param action: ``None``, ``reset``, ``storm``, ``error``, ``drop``, ``stall`` or one of
        :data:`~airflow_provider_aiq_braze.sandbox.config.HOSTILE_ANSWERS`.
    :param error_status: 500 or 503 for ``error``.
    :param stall_seconds: how long a ``stall`` waits before answering.
    :param redirect_status: the 3xx status of a ``redirect``.
    """

    delay: float = 0.0
    action: str | None = None
    error_status: int = 500
    stall_seconds: float = 0.0
    redirect_status: int = 301


NO_FAULT = FaultDecision()


class FaultInjector:
    """Decides faults per request from one seeded generator.

    Every request in scope draws the same number of random values whatever the settings, so a
    fixed seed and the same sequence of requests give the same fault pattern. Hostile answers draw
    from a second generator seeded from the same seed, so adding them left the patterns of the
    other faults unchanged.

    :param config: the faults in force.
    :param seed: the generator's seed (``None``: unseeded).
    """

    def __init__(self, config: FaultConfig, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._counters: dict[str, int] = {}
        self._rng = random.Random(seed)
        self._answers_rng = _answers_rng(seed)
        self._active = False
        self.configure(config, seed=seed, reseed=True)

    @property
    def config(self) -> FaultConfig:
        """The faults in force, with the counters left to use."""
        with self._lock:
            return self._config.updated(self._counters)

    def configure(self, config: FaultConfig, *, seed: int | None = None, reseed: bool = False) -> None:
        """Replace the faults in force.

        :param config: the new settings.
        :param seed: a new seed, used when ``reseed`` is true.
        :param reseed: restart the generator from ``seed``.
        """
        with self._lock:
            self._config = config
            self._counters = {name: getattr(config, name) for name, _ in _COUNTERS}
            if reseed:
                self._rng = random.Random(seed)
                self._answers_rng = _answers_rng(seed)
            self._active = (
                any(self._counters.values())
                or bool(config.latency_ms or config.jitter_ms)
                or any(getattr(config, name) for name in config.rate_names())
            )

    def update(
        self, changes: dict[str, Any], *, seed: int | None = None, reseed: bool = False
    ) -> FaultConfig:
        """Change some settings, keeping the others.

        :param changes: setting name to value (see :class:`FaultConfig`).
        :param seed: a new seed, used when ``reseed`` is true.
        :param reseed: restart the generator from ``seed``.
        :return: the settings now in force.
        """
        new = self.config.updated(changes)
        self.configure(new, seed=seed, reseed=reseed)
        return new

    def decide(self, endpoint: str) -> FaultDecision:
        """Draw the fault of one request.

        :param endpoint: the request's path.
        """
        if not self._active:
            return NO_FAULT
        with self._lock:
            config = self._config
            if config.endpoints and endpoint not in config.endpoints:
                return NO_FAULT
            u_jitter, u_reset, u_error, u_status, u_drop, u_stall = (self._rng.random() for _ in range(6))
            delay = (config.latency_ms + u_jitter * config.jitter_ms) / 1000.0
            action: str | None = None
            for name, fault in _COUNTERS:
                if self._counters[name] > 0:
                    self._counters[name] -= 1
                    action = fault
                    break
            if action is None:
                if u_reset < config.reset_rate:
                    action = "reset"
                elif u_error < config.error_rate:
                    action = "error"
                elif u_drop < config.drop_after_process_rate:
                    action = "drop"
                elif u_stall < config.stall_after_process_rate:
                    action = "stall"
            draws = [self._answers_rng.random() for _ in HOSTILE_ANSWERS]
            if action is None:
                action = next(
                    (
                        kind
                        for kind, u in zip(HOSTILE_ANSWERS, draws, strict=True)
                        if u < getattr(config, f"{kind}_rate")
                    ),
                    None,
                )
            return FaultDecision(
                delay=delay,
                action=action,
                error_status=config.error_status or (500 if u_status < 0.5 else 503),
                stall_seconds=config.stall_seconds,
                redirect_status=config.redirect_status,
            )


def _answers_rng(seed: int | None) -> random.Random:
    """The generator of hostile answers: seeded from ``seed`` but apart from the first one."""
    return random.Random(None if seed is None else f"{seed}:hostile-answers")
