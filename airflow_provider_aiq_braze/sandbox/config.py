"""Configuration of the Braze sandbox: keys, limits, rate budgets and faults."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_aiq_braze.braze.limits import (
    DEFAULT_RATE,
    ENDPOINT_PERMISSIONS,
    EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE,
    MESSAGING_RATE,
    SEND_IDS_PER_DAY,
    USERS_TRACK_RATE,
    ObjectCountRule,
    RateLimit,
)

#: Every permission a REST API key can carry for the endpoints the sandbox serves.
ALL_PERMISSIONS: frozenset[str] = frozenset(ENDPOINT_PERMISSIONS.values())


@dataclass
class FaultConfig:
    """Faults the sandbox injects; all off by default.

    Ratios are drawn from one seeded random generator, so a fixed seed and the same sequence of
    requests give the same pattern. Counters (``*_requests``) hit the next N requests in scope.

    :param latency_ms: fixed delay before a request is handled.
    :param jitter_ms: extra random delay, uniform in ``[0, jitter_ms]``.
    :param error_rate: ratio of requests answered 500 or 503 with nothing processed.
    :param error_requests: the next N requests are answered 500 or 503.
    :param reset_rate: ratio of connections reset before processing (no response).
    :param reset_requests: the next N requests get their connection reset.
    :param drop_after_process_rate: ratio of requests processed in full, then dropped unanswered.
    :param drop_after_process_requests: the next N requests are processed, then dropped.
    :param stall_after_process_rate: ratio of requests processed, then answered after ``stall_seconds``.
    :param stall_after_process_requests: the next N requests are processed, then stalled.
    :param stall_seconds: how long a stalled answer waits (longer than the client's read timeout).
    :param rate_limit_storm_requests: the next N requests get ``429`` with a reset 1-2 s ahead.
    :param endpoints: limit faults to these REST paths (empty: every Braze endpoint).
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_requests: int = 0
    reset_rate: float = 0.0
    reset_requests: int = 0
    drop_after_process_rate: float = 0.0
    drop_after_process_requests: int = 0
    stall_after_process_rate: float = 0.0
    stall_after_process_requests: int = 0
    stall_seconds: float = 5.0
    rate_limit_storm_requests: int = 0
    endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.endpoints = tuple(self.endpoints)
        for name in ("error_rate", "reset_rate", "drop_after_process_rate", "stall_after_process_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self, name, value)
        for name in (
            "error_requests",
            "reset_requests",
            "drop_after_process_requests",
            "stall_after_process_requests",
            "rate_limit_storm_requests",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("latency_ms", "jitter_ms", "stall_seconds"):
            value = float(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
            setattr(self, name, value)

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The names of every fault setting."""
        return frozenset(f.name for f in dataclasses.fields(cls))

    def updated(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with some settings changed.

        :param changes: setting name to new value; unknown names raise ``ValueError``.
        """
        unknown = sorted(set(changes) - self.field_names())
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        values = dataclasses.asdict(self)
        values.update(changes)
        if values.get("endpoints") is None:
            values["endpoints"] = ()
        return FaultConfig(**values)

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict."""
        values = dataclasses.asdict(self)
        values["endpoints"] = list(self.endpoints)
        return values


@dataclass
class SandboxConfig:
    """Everything the sandbox can be configured with.

    :param host: address to listen on.
    :param port: port to listen on; ``0`` picks a free one.
    :param api_keys: accepted REST API keys, each with its permissions (``None``: all permissions).
    :param object_count_rule: how ``/users/track`` objects are counted against the limit.
    :param properties_max_bytes: largest event/trigger properties object, serialized.
    :param users_track_rate: request budget of the ``/users/track`` group.
    :param messaging_rate: request budget of the messaging group (``/campaigns/trigger/send``).
    :param default_rate: request budget of every other endpoint.
    :param send_ids_per_day: how many send ids ``/sends/id/create`` creates per UTC day.
    :param faults: faults in force at start-up.
    :param seed: seed of the fault generator (``None``: unseeded).
    :param journal: path of a JSONL journal of accepted requests (``None``: no journal).
    :param client_timeout: socket timeout in seconds for a client that stalls mid-request.
    :param log_limit: how many events, purchases and dispatches are kept for inspection.
    :param admin_loopback_only: refuse ``/_sandbox/`` calls from other hosts.
    :param verbose: log one line per request to stderr (never the Authorization header).
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_keys: dict[str, frozenset[str] | None] = field(default_factory=dict)
    object_count_rule: ObjectCountRule = ObjectCountRule.COMBINED_75
    properties_max_bytes: int = EVENT_PROPERTIES_MAX_BYTES_CONSERVATIVE
    users_track_rate: RateLimit = USERS_TRACK_RATE
    messaging_rate: RateLimit = MESSAGING_RATE
    default_rate: RateLimit = DEFAULT_RATE
    send_ids_per_day: int = SEND_IDS_PER_DAY
    faults: FaultConfig = field(default_factory=FaultConfig)
    seed: int | None = None
    journal: Path | None = None
    client_timeout: float = 10.0
    log_limit: int = 100_000
    admin_loopback_only: bool = True
    verbose: bool = False

    def __post_init__(self) -> None:
        self.object_count_rule = ObjectCountRule(self.object_count_rule)
        if self.journal is not None:
            self.journal = Path(self.journal)
        self.api_keys = {key: _permissions(perms) for key, perms in dict(self.api_keys).items()}
        if self.properties_max_bytes <= 0:
            raise ValueError("properties_max_bytes must be positive")
        if self.log_limit <= 0:
            raise ValueError("log_limit must be positive")

    def permissions_of(self, api_key: str) -> frozenset[str] | None:
        """The permissions of a key, or ``None`` when the key is unknown.

        :param api_key: the key taken from the Authorization header.
        """
        if api_key not in self.api_keys:
            return None
        perms = self.api_keys[api_key]
        return ALL_PERMISSIONS if perms is None else perms

    def rate_for_group(self, group: str) -> RateLimit:
        """The request budget of a rate-limit group.

        :param group: ``users.track``, ``messaging`` or ``default``.
        """
        if group == "users.track":
            return self.users_track_rate
        if group == "messaging":
            return self.messaging_rate
        return self.default_rate


def _permissions(perms: Iterable[str] | None) -> frozenset[str] | None:
    if perms is None:
        return None
    values = frozenset(perms)
    unknown = sorted(values - ALL_PERMISSIONS)
    if unknown:
        raise ValueError(
            f"unknown permission(s) {', '.join(unknown)}; known: {', '.join(sorted(ALL_PERMISSIONS))}"
        )
    return values


def parse_api_key(spec: str) -> tuple[str, frozenset[str] | None]:
    """Parse ``KEY`` or ``KEY:perm1,perm2`` as given to ``--api-key``.

    :param spec: the flag value.
    :return: the key and its permissions (``None``: all).
    """
    key, sep, perms = spec.partition(":")
    if not key:
        raise ValueError("an API key must not be empty")
    if not sep:
        return key, None
    return key, _permissions(p.strip() for p in perms.split(",") if p.strip())


def parse_rate(spec: str) -> RateLimit:
    """Parse ``N/SECONDS`` (e.g. ``3000/3``) as given to the rate flags.

    :param spec: the flag value.
    """
    requests, sep, seconds = spec.partition("/")
    try:
        rate = RateLimit(int(requests), float(seconds) if sep else 1.0)
    except ValueError as exc:
        raise ValueError(f"rate {spec!r} is not N/SECONDS, e.g. 3000/3") from exc
    if rate.requests <= 0 or rate.per_seconds <= 0:
        raise ValueError(f"rate {spec!r} must have a positive count and window")
    return rate


def build_config(base: SandboxConfig | None = None, **overrides: Any) -> SandboxConfig:
    """A :class:`SandboxConfig` from a base and keyword overrides.

    :param base: the configuration to start from (default: all defaults).
    :param overrides: :class:`SandboxConfig` fields; :class:`FaultConfig` fields (merged into
        ``faults``); rates as :class:`RateLimit` or ``"N/SECONDS"``; ``api_key`` (the only
        accepted key) and ``permissions`` (of ``api_key``, or of every configured key).
    """
    config = base if base is not None else SandboxConfig()
    api_key = overrides.pop("api_key", None)
    has_permissions = "permissions" in overrides
    permissions = overrides.pop("permissions", None)
    fault_fields = FaultConfig.field_names()
    fault_changes = {name: overrides.pop(name) for name in list(overrides) if name in fault_fields}
    for name in ("users_track_rate", "messaging_rate", "default_rate"):
        if isinstance(overrides.get(name), str):
            overrides[name] = parse_rate(overrides[name])
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SandboxConfig)})
    if unknown:
        raise TypeError(f"unknown sandbox setting(s): {', '.join(unknown)}")
    if fault_changes:
        overrides["faults"] = overrides.get("faults", config.faults).updated(fault_changes)
    if api_key is not None:
        overrides["api_keys"] = {api_key: permissions}
    elif has_permissions:
        keys = overrides.get("api_keys", config.api_keys)
        overrides["api_keys"] = dict.fromkeys(keys, permissions)
    return dataclasses.replace(config, **overrides) if overrides else config
