"""The settings of a Braze client, and how connection extras become them (Airflow-free).

Extras keep the meaning the http provider's ``HttpHook`` gives them (``timeout``, ``proxies``,
``verify``, ``cert``, ``trust_env``, ``max_redirects``, ``allow_redirects``); any other extra that
is a string or a number becomes an HTTP header, except Braze's own extras and the headers the
client sets itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.limits import GROUP_RATES, RateLimit
from airflow_provider_aiq_braze.braze.ratelimit import BROADCAST_GROUP, BROADCAST_RATE, parse_rate_limit

#: Connection extras that configure the Braze client itself and must never become HTTP headers.
BRAZE_EXTRAS = frozenset({"instance", "allow_custom_host", "allow_insecure_http", "rate_limits"})
#: Extras ``HttpHook`` turns into session or request settings rather than headers.
HTTP_EXTRAS = frozenset(
    {
        "stream",
        "cert",
        "proxies",
        "proxy",
        "timeout",
        "verify",
        "verify_ssl",
        "allow_redirects",
        "max_redirects",
        "trust_env",
        "check_response",
        "srv_lookup",
        "auth_type",
    }
)
#: Headers the client sets itself; an extra of the same name is ignored.
RESERVED_HEADERS = frozenset({"authorization", "content-type", "content-length", "host"})

#: Default (connect, read) timeout in seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)

Timeout = float | tuple[float, float]

# RFC 9110 token characters for a header name
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class ClientSettings:
    """Everything a :class:`~airflow_provider_aiq_braze.braze.client.BrazeClient` needs.

    :param base_url: the REST base URL, e.g. ``https://rest.iad-01.braze.com``.
    :param api_key: the REST API key (sent as ``Authorization: Bearer``).
    :param secrets: texts to scrub from everything Braze says (the key, the raw password).
    :param timeout: ``(connect, read)`` seconds, or one number for both.
    :param headers: extra HTTP headers (from connection extras).
    :param proxies: requests-style proxies.
    :param verify: ``True``, ``False`` or the path of a CA bundle.
    :param cert: a client certificate path, or ``(cert, key)``.
    :param trust_env: read proxies and the CA bundle from the environment (once).
    :param max_redirects: the most redirects followed when ``allow_redirects``.
    :param allow_redirects: follow redirects (otherwise a redirect is a setup error).
    :param rate_limits: the client-side budget of each rate group.
    :param max_connections: size of the connection pool.
    :param max_attempts: attempts per call for 5xx answers and failures before sending.
    :param max_rate_limit_waits: 429 answers one call waits out before giving up.
    :param backoff_base: upper bound in seconds of the first backoff wait (doubles each attempt).
    :param backoff_max: the largest backoff wait in seconds.
    :param user_agent: the ``User-Agent`` header.
    """

    base_url: str
    api_key: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    timeout: Timeout = DEFAULT_TIMEOUT
    headers: Mapping[str, str] = field(default_factory=dict)
    proxies: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    cert: str | tuple[str, str] | None = None
    trust_env: bool = True
    max_redirects: int | None = None
    allow_redirects: bool = False
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    max_connections: int = 16
    max_attempts: int = 5
    max_rate_limit_waits: int = 30
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    user_agent: str = "airflow-provider-aiq-braze"

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name, value in self.headers.items():
            check_header(name, value)

    def rate_limit(self, group: str) -> RateLimit:
        """The budget of a rate group (``default`` for an unknown group).

        :param group: ``users.track``, ``messaging``, ``messaging.broadcast`` or ``default``.
        """
        limits = {**GROUP_RATES, BROADCAST_GROUP: BROADCAST_RATE, **self.rate_limits}
        return limits.get(group, limits["default"])


def check_header(name: str, value: str) -> None:
    """Refuse a header HTTP cannot carry (before anything is sent), naming the extra, never its value.

    :param name: the extra's name, sent as the header name.
    :param value: its value.
    :raises BrazeConfigError: on a name that is not an HTTP token, or a value with a line break,
        a control character or a character outside Latin-1.
    """
    if not _HEADER_NAME.match(name):
        raise BrazeConfigError(
            f"The Braze connection extra {name!r} would be sent as an HTTP header, but it is not a valid "
            "header name (letters, digits and -_. only): rename or remove the extra."
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        latin1 = False
    else:
        latin1 = True
    if not latin1 or any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value):
        raise BrazeConfigError(
            f"The Braze connection extra {name!r} is sent as an HTTP header, but its value contains a "
            "line break (CR/LF), a control character or a character outside Latin-1: fix or remove "
            "the extra."
        )


def truthy(value: Any) -> bool:
    """``True`` for ``true``/``1``/``yes``/``on`` (any case) and truthy non-strings.

    :param value: an extra's value.
    """
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def parse_timeout(value: Any) -> Timeout:
    """Read a timeout the way ``requests`` takes it: seconds, or ``[connect, read]``.

    :param value: a number, a two-item list, or their text.
    :raises BrazeConfigError: for anything else.
    """
    try:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else float(value)
        if isinstance(value, list | tuple) and len(value) == 2:
            connect, read = float(value[0]), float(value[1])
            if connect > 0 and read > 0:
                return (connect, read)
        elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    except (TypeError, ValueError):
        pass
    raise BrazeConfigError(
        f"Invalid Braze connection timeout {value!r}: give seconds (e.g. 30) or [connect, read] "
        "(e.g. [10, 60])."
    )


def parse_rate_limits(configured: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, RateLimit]:
    """The ``rate_limits`` extra (an object, or its JSON text) and the caller's overrides.

    :param configured: the extra's value, or ``None``.
    :param overrides: budgets given in code; they win over the extra.
    :raises BrazeConfigError: when the extra is not an object or a budget is unreadable.
    """
    configured = configured or {}
    if isinstance(configured, str):
        try:
            configured = json.loads(configured)
        except ValueError:
            configured = None
    if not isinstance(configured, Mapping):
        raise BrazeConfigError(
            'The Braze connection extra "rate_limits" must be an object, e.g. {"users.track": "3000/3"}.'
        )
    limits: dict[str, RateLimit] = {}
    for group, value in {**configured, **(overrides or {})}.items():
        limits[str(group)] = parse_rate_limit(value, name=f"rate_limits[{group!r}]")
    return limits


def transport_from_extras(extra: Mapping[str, Any], *, timeout: Any = None) -> dict[str, Any]:
    """The transport settings and headers the extras ask for, as :class:`ClientSettings` arguments.

    :param extra: the connection extras (custom-field prefixes already removed).
    :param timeout: the caller's timeout, which wins over the extra.
    :raises BrazeConfigError: for unusable ``proxies``, ``timeout`` or header values.
    """
    settings: dict[str, Any] = {}
    proxies = extra.get("proxies", extra.get("proxy"))
    if proxies:
        if not isinstance(proxies, Mapping):
            raise BrazeConfigError(
                'The Braze connection extra "proxies" must be an object, e.g. '
                '{"https": "http://proxy.example.com:3128"}.'
            )
        settings["proxies"] = dict(proxies)
    verify = extra.get("verify", extra.get("verify_ssl", True))
    if isinstance(verify, str) and verify.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        verify = truthy(verify)
    settings["verify"] = verify
    if extra.get("cert"):
        cert = extra["cert"]
        settings["cert"] = tuple(cert) if isinstance(cert, list) else cert
    if "trust_env" in extra:
        settings["trust_env"] = truthy(extra["trust_env"])
    if extra.get("max_redirects") is not None:
        settings["max_redirects"] = int(extra["max_redirects"])
    settings["allow_redirects"] = truthy(extra.get("allow_redirects", False))
    chosen = timeout if timeout is not None else extra.get("timeout")
    settings["timeout"] = parse_timeout(chosen) if chosen is not None else DEFAULT_TIMEOUT
    headers: dict[str, str] = {}
    for name, value in extra.items():
        if name in BRAZE_EXTRAS or name in HTTP_EXTRAS or name.lower() in RESERVED_HEADERS:
            continue
        if name.startswith("extra__") or value is None or isinstance(value, Mapping | list):
            continue
        headers[name] = value if isinstance(value, str) else to_json(value)
    settings["headers"] = headers
    return settings
