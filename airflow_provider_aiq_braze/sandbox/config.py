"""Configuration of the Braze sandbox: keys, limits, rate budgets, refusals and faults."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_aiq_braze.sandbox import facts
from airflow_provider_aiq_braze.sandbox.facts import ObjectCountRule, Rate

#: Every permission a REST API key can carry for the endpoints the sandbox serves.
ALL_PERMISSIONS: frozenset[str] = frozenset(facts.ENDPOINT_PERMISSIONS.values())

#: Hostile answers, in the order their ``*_requests`` counters are used up (see ``docs/sandbox.md``).
#: ``redirect``, ``payload_too_large`` and ``unprocessable`` answer before processing; the others
#: answer after the request was processed.
HOSTILE_ANSWERS = (
    "redirect",
    "payload_too_large",
    "unprocessable",
    "gateway_timeout",
    "truncated_body",
    "empty_body",
    "non_json_body",
    "string_errors",
    "echo_key",
)
#: The counters of "next N requests" faults, in the order they are used up.
COUNTED_FAULTS = ("reset", "rate_limit_storm", "error", "drop_after_process", "stall_after_process")
_RATES = ("error_rate", "reset_rate", "drop_after_process_rate", "stall_after_process_rate")


@dataclass
class FaultConfig:
    """Faults the sandbox injects; all off by default.

    Ratios are drawn from seeded random generators, so a fixed seed and the same sequence of
    requests give the same pattern. Counters (``*_requests``) hit the next N requests in scope.

    :param latency_ms: fixed delay before a request is handled.
    :param jitter_ms: extra random delay, uniform in ``[0, jitter_ms]``.
    :param error_rate: ratio of requests answered 500 or 503 with nothing processed.
    :param error_requests: the next N requests are answered 500 or 503.
    :param error_status: answer ``error`` faults with this 5xx status instead of 500 or 503 at random.
    :param reset_rate: ratio of connections reset before processing (no response).
    :param reset_requests: the next N requests get their connection reset.
    :param drop_after_process_rate: ratio of requests processed in full, then dropped unanswered.
    :param drop_after_process_requests: the next N requests are processed, then dropped.
    :param stall_after_process_rate: ratio of requests processed, then answered after ``stall_seconds``.
    :param stall_after_process_requests: the next N requests are processed, then stalled.
    :param stall_seconds: how long a stalled answer waits (longer than the client's read timeout).
    :param rate_limit_storm_requests: the next N requests get ``429`` with a reset 1-2 s ahead.
    :param redirect_requests: the next N requests get a redirect (``redirect_status``), unprocessed.
    :param redirect_rate: ratio of requests redirected.
    :param redirect_status: the 3xx status of ``redirect`` answers (301, 302, 303, 307 or 308).
    :param payload_too_large_requests: the next N requests get ``413``, unprocessed.
    :param payload_too_large_rate: ratio of requests answered ``413``.
    :param unprocessable_requests: the next N requests get ``422``, unprocessed.
    :param unprocessable_rate: ratio of requests answered ``422``.
    :param gateway_timeout_requests: the next N requests are processed, then answered ``504``.
    :param gateway_timeout_rate: ratio of requests processed, then answered ``504``.
    :param truncated_body_requests: the next N 2xx answers stop before their ``Content-Length``.
    :param truncated_body_rate: ratio of 2xx answers truncated.
    :param empty_body_requests: the next N 2xx answers have an empty body.
    :param empty_body_rate: ratio of 2xx answers with an empty body.
    :param non_json_body_requests: the next N 2xx answers have a body that is not JSON.
    :param non_json_body_rate: ratio of 2xx answers that are not JSON.
    :param string_errors_requests: the next N answers give ``errors`` as plain strings.
    :param string_errors_rate: ratio of answers with plain-string ``errors``.
    :param echo_key_requests: the next N answers repeat the request's API key in every minor error
        ``type`` and in ``dispatch_id`` (to test that clients scrub what Braze says).
    :param echo_key_rate: ratio of answers that echo the key.
    :param endpoints: limit faults to these REST paths (empty: every Braze endpoint).
    """

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_requests: int = 0
    error_status: int | None = None
    reset_rate: float = 0.0
    reset_requests: int = 0
    drop_after_process_rate: float = 0.0
    drop_after_process_requests: int = 0
    stall_after_process_rate: float = 0.0
    stall_after_process_requests: int = 0
    stall_seconds: float = 5.0
    rate_limit_storm_requests: int = 0
    redirect_requests: int = 0
    redirect_rate: float = 0.0
    redirect_status: int = 301
    payload_too_large_requests: int = 0
    payload_too_large_rate: float = 0.0
    unprocessable_requests: int = 0
    unprocessable_rate: float = 0.0
    gateway_timeout_requests: int = 0
    gateway_timeout_rate: float = 0.0
    truncated_body_requests: int = 0
    truncated_body_rate: float = 0.0
    empty_body_requests: int = 0
    empty_body_rate: float = 0.0
    non_json_body_requests: int = 0
    non_json_body_rate: float = 0.0
    string_errors_requests: int = 0
    string_errors_rate: float = 0.0
    echo_key_requests: int = 0
    echo_key_rate: float = 0.0
    endpoints: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.endpoints = tuple(self.endpoints)
        for name in self.rate_names():
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
            setattr(self, name, value)
        for name in self.counter_names():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("latency_ms", "jitter_ms", "stall_seconds"):
            value = float(getattr(self, name))
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
            setattr(self, name, value)
        status = self.error_status
        if status is not None and (type(status) is not int or status not in range(500, 600) or status == 504):
            raise ValueError(f"error_status must be a 5xx status other than 504, got {status!r}")
        if self.redirect_status not in (301, 302, 303, 307, 308):
            raise ValueError(
                f"redirect_status must be 301, 302, 303, 307 or 308, got {self.redirect_status!r}"
            )

    @staticmethod
    def counter_names() -> tuple[str, ...]:
        """Every ``*_requests`` setting, in the order the counters are used up."""
        return tuple(f"{name}_requests" for name in (*COUNTED_FAULTS, *HOSTILE_ANSWERS))

    @staticmethod
    def rate_names() -> tuple[str, ...]:
        """Every ratio setting."""
        return (*_RATES, *(f"{name}_rate" for name in HOSTILE_ANSWERS))

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


@dataclass(frozen=True)
class Refusals:
    """Identifiers the sandbox refuses, as live Braze refuses identifiers it does not accept.

    An object or recipient whose identifier (``external_id``/``external_user_id``, ``braze_id``,
    ``email``, ``phone``, or the ``alias_name`` of a ``user_alias``) is listed, or starts with a
    listed prefix, gets the minor error ``provided <kind> is blacklisted and disallowed``; a request
    with no other valid object gets ``400`` (see ``docs/sandbox.md``).

    :param ids: identifiers refused exactly.
    :param prefixes: identifier prefixes refused.
    """

    ids: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        ids, prefixes = _strings(self.ids, "refused ids"), _strings(self.prefixes, "refused prefixes")
        if "" in prefixes:
            raise ValueError("an empty refused prefix would refuse every identifier")
        object.__setattr__(self, "ids", frozenset(ids))
        object.__setattr__(self, "prefixes", tuple(dict.fromkeys(prefixes)))

    @property
    def active(self) -> bool:
        """Whether anything is refused."""
        return bool(self.ids or self.prefixes)

    def refuses(self, value: str) -> bool:
        """Whether an identifier value is refused.

        :param value: the identifier (the alias name for a ``user_alias``).
        """
        return value in self.ids or (bool(self.prefixes) and value.startswith(self.prefixes))

    def merged(
        self, ids: Iterable[str] = (), prefixes: Iterable[str] = (), *, clear: bool = False
    ) -> Refusals:
        """These refusals plus more (or only the new ones with ``clear``).

        :param ids: identifiers to refuse.
        :param prefixes: prefixes to refuse.
        :param clear: forget the current refusals first.
        """
        base = Refusals() if clear else self
        return Refusals(
            base.ids | frozenset(_strings(ids, "refused ids")),
            (*base.prefixes, *_strings(prefixes, "refused prefixes")),
        )

    def as_dict(self) -> dict[str, list[str]]:
        """The refusals as a JSON-able dict."""
        return {"ids": sorted(self.ids), "prefixes": list(self.prefixes)}


def _strings(values: Iterable[Any], what: str) -> list[str]:
    if isinstance(values, str):
        raise ValueError(f"{what} must be a list of strings, not one string")
    out = list(values)
    if any(type(v) is not str for v in out):
        raise ValueError(f"{what} must be strings")
    return out


@dataclass
class SandboxConfig:
    """Everything the sandbox can be configured with.

    :param host: address to listen on.
    :param port: port to listen on; ``0`` picks a free one.
    :param api_keys: accepted REST API keys, each with its permissions (``None``: all permissions).
    :param object_count_rule: how ``/users/track`` objects are counted against the limit.
    :param properties_max_bytes: largest event/purchase/trigger properties object holding arrays or
        objects, serialized.
    :param users_track_rate: request budget of ``/users/track``.
    :param messaging_rate: request budget of the messaging group (``/campaigns/trigger/send``).
    :param export_rate: request budget of ``/users/export/ids``.
    :param default_rate: request budget of every other endpoint.
    :param send_ids_per_day: how many send ids ``/sends/id/create`` creates per UTC day.
    :param campaigns: the workspace's API campaign ids; when given, other ids get
        ``400 Invalid Campaign ID`` and ``/campaigns/list`` lists them (empty: every id is accepted).
    :param refusals: identifiers Braze "does not accept".
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
    properties_max_bytes: int = facts.PROPERTIES_MAX_BYTES
    users_track_rate: Rate = facts.USERS_TRACK_RATE
    messaging_rate: Rate = facts.MESSAGING_RATE
    export_rate: Rate = facts.EXPORT_RATE
    default_rate: Rate = facts.DEFAULT_RATE
    send_ids_per_day: int = facts.SEND_IDS_PER_DAY
    campaigns: tuple[str, ...] = ()
    refusals: Refusals = field(default_factory=Refusals)
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
        self.campaigns = tuple(_strings(self.campaigns, "campaigns"))
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

    def rate_for_group(self, group: str) -> Rate:
        """The request budget of a rate-limit group.

        :param group: ``users.track``, ``messaging``, ``users.export.ids`` or ``default``.
        """
        if group == "users.track":
            return self.users_track_rate
        if group == "messaging":
            return self.messaging_rate
        if group == "users.export.ids":
            return self.export_rate
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


def parse_rate(spec: str) -> Rate:
    """Parse ``N/SECONDS`` (e.g. ``3000/3``) as given to the rate flags.

    :param spec: the flag value.
    """
    requests, sep, seconds = spec.partition("/")
    try:
        rate = Rate(int(requests), float(seconds) if sep else 1.0)
    except ValueError as exc:
        raise ValueError(f"rate {spec!r} is not N/SECONDS, e.g. 3000/3") from exc
    if rate.requests <= 0 or rate.seconds <= 0:
        raise ValueError(f"rate {spec!r} must have a positive count and window")
    return rate


def build_config(base: SandboxConfig | None = None, **overrides: Any) -> SandboxConfig:
    """A :class:`SandboxConfig` from a base and keyword overrides.

    :param base: the configuration to start from (default: all defaults).
    :param overrides: :class:`SandboxConfig` fields; :class:`FaultConfig` fields (merged into
        ``faults``); rates as :class:`~airflow_provider_aiq_braze.sandbox.facts.Rate` or
        ``"N/SECONDS"``; ``api_key`` (the only accepted key) and ``permissions`` (of ``api_key``, or
        of every configured key); ``refuse_ids`` and ``refuse_id_prefixes`` (added to ``refusals``).
    """
    config = base if base is not None else SandboxConfig()
    api_key = overrides.pop("api_key", None)
    has_permissions = "permissions" in overrides
    permissions = overrides.pop("permissions", None)
    refuse_ids = overrides.pop("refuse_ids", ())
    refuse_prefixes = overrides.pop("refuse_id_prefixes", ())
    fault_fields = FaultConfig.field_names()
    fault_changes = {name: overrides.pop(name) for name in list(overrides) if name in fault_fields}
    for name in ("users_track_rate", "messaging_rate", "export_rate", "default_rate"):
        if isinstance(overrides.get(name), str):
            overrides[name] = parse_rate(overrides[name])
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(SandboxConfig)})
    if unknown:
        raise TypeError(f"unknown sandbox setting(s): {', '.join(unknown)}")
    if fault_changes:
        overrides["faults"] = overrides.get("faults", config.faults).updated(fault_changes)
    if refuse_ids or refuse_prefixes:
        overrides["refusals"] = overrides.get("refusals", config.refusals).merged(refuse_ids, refuse_prefixes)
    if api_key is not None:
        overrides["api_keys"] = {api_key: permissions}
    elif has_permissions:
        keys = overrides.get("api_keys", config.api_keys)
        overrides["api_keys"] = dict.fromkeys(keys, permissions)
    return dataclasses.replace(config, **overrides) if overrides else config
