"""Seeded fault injection: latency, 5xx, 429 storms, resets, drop or stall after processing."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any

from airflow_provider_aiq_braze.sandbox.config import FaultConfig

#: The counters of "next N requests" faults, in the order they are used up.
_COUNTERS = (
    ("reset_requests", "reset"),
    ("rate_limit_storm_requests", "storm"),
    ("error_requests", "error"),
    ("drop_after_process_requests", "drop"),
    ("stall_after_process_requests", "stall"),
)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What happens to one request.

    :param delay: seconds to wait before handling it.
    :param action: ``None``, ``reset``, ``storm``, ``error``, ``drop`` or ``stall``.
    :param error_status: 500 or 503 for ``error``.
    :param stall_seconds: how long a ``stall`` waits before answering.
    """

    delay: float = 0.0
    action: str | None = None
    error_status: int = 500
    stall_seconds: float = 0.0


NO_FAULT = FaultDecision()


class FaultInjector:
    """Decides faults per request from one seeded generator.

    Every request in scope draws the same number of random values whatever the settings, so a
    fixed seed and the same sequence of requests give the same fault pattern.

    :param config: the faults in force.
    :param seed: the generator's seed (``None``: unseeded).
    """

    def __init__(self, config: FaultConfig, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._counters: dict[str, int] = {}
        self._rng = random.Random(seed)
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
            self._active = any(self._counters.values()) or any(
                (
                    config.latency_ms,
                    config.jitter_ms,
                    config.error_rate,
                    config.reset_rate,
                    config.drop_after_process_rate,
                    config.stall_after_process_rate,
                )
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
            return FaultDecision(
                delay=delay,
                action=action,
                error_status=500 if u_status < 0.5 else 503,
                stall_seconds=config.stall_seconds,
            )
