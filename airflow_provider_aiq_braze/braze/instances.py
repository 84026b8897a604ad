"""Braze instances and REST endpoint resolution.

Users copy the REST endpoint from *Settings > APIs and Identifiers*; a dashboard URL or an SDK
endpoint pasted by mistake is refused with a message naming the REST endpoint to use instead.
Source: braze.com/docs/api/basics and braze-docs ``_includes/data_centers.md``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError


@dataclass(frozen=True)
class BrazeInstance:
    """One Braze data centre.

    :param code: the instance code shown by Braze, e.g. ``US-01``.
    :param rest_host: host name of the REST endpoint.
    :param dashboard_host: host name of the dashboard (a common copy-paste mistake).
    :param sdk_host: host name of the SDK endpoint (another common mistake).
    :param aliases: other REST host names Braze has documented for this instance.
    """

    code: str
    rest_host: str
    dashboard_host: str
    sdk_host: str
    aliases: tuple[str, ...] = ()

    @property
    def rest_url(self) -> str:
        """The REST base URL, e.g. ``https://rest.iad-01.braze.com``."""
        return f"https://{self.rest_host}"


def _build_instances() -> dict[str, BrazeInstance]:
    instances: dict[str, BrazeInstance] = {}
    for n in range(1, 9):
        instances[f"US-0{n}"] = BrazeInstance(
            f"US-0{n}", f"rest.iad-0{n}.braze.com", f"dashboard-0{n}.braze.com", f"sdk.iad-0{n}.braze.com"
        )
    instances["US-10"] = BrazeInstance(
        "US-10",
        "rest.us-10.braze.com",
        "dashboard.us-10.braze.com",
        "sdk.us-10.braze.com",
        aliases=("rest.iad-10.braze.com",),
    )
    for n in (1, 2):
        instances[f"EU-0{n}"] = BrazeInstance(
            f"EU-0{n}", f"rest.fra-0{n}.braze.eu", f"dashboard-0{n}.braze.eu", f"sdk.fra-0{n}.braze.eu"
        )
    for code in ("AU-01", "ID-01", "JP-01", "KR-01"):
        low = code.lower()
        instances[code] = BrazeInstance(
            code, f"rest.{low}.braze.com", f"dashboard.{low}.braze.com", f"sdk.{low}.braze.com"
        )
    return instances


#: Every Braze instance by code, in the order Braze lists them.
INSTANCES: dict[str, BrazeInstance] = _build_instances()

#: The instance codes offered in the connection form.
INSTANCE_CODES: tuple[str, ...] = tuple(INSTANCES)

_BRAZE_DOMAIN = re.compile(r"(^|\.)braze\.(com|eu)$")


def _instance_by_host(host: str) -> tuple[BrazeInstance, str] | None:
    """Return the instance a host belongs to and what kind of host it is (rest, dashboard, sdk)."""
    for instance in INSTANCES.values():
        if host == instance.rest_host or host in instance.aliases:
            return instance, "rest"
        if host == instance.dashboard_host:
            return instance, "dashboard"
        if host == instance.sdk_host:
            return instance, "sdk"
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, 127.0.0.0/8, ``::1``).

    :param host: a host name or IP address, without port.
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_rest_base_url(
    host: str | None,
    *,
    instance: str | None = None,
    port: int | None = None,
    allow_custom_host: bool = False,
    allow_insecure_http: bool = False,
) -> str:
    """Turn what a user put in a Braze connection into the REST base URL, or refuse it.

    :param host: the connection host: a full REST URL, a bare host name, or empty.
    :param instance: an instance code from :data:`INSTANCES`, used when ``host`` is empty.
    :param port: the connection port, if any.
    :param allow_custom_host: accept a host that is neither a Braze REST host nor loopback
        (a corporate proxy in front of Braze).
    :param allow_insecure_http: accept plain ``http://`` to a host that is not loopback and not
        Braze's (a sandbox on a private network, e.g. a docker-compose service); the key then
        travels unencrypted.
    :return: the base URL without a trailing slash, e.g. ``https://rest.iad-01.braze.com``.
    :raises BrazeConfigError: with a message saying what to put in the connection instead.
    """
    code = (instance or "").strip().upper() or None
    if code is not None and code not in INSTANCES:
        raise BrazeConfigError(
            f"Unknown Braze instance {instance!r} in the connection extra 'instance'. "
            f"Use one of: {', '.join(INSTANCE_CODES)}."
        )
    raw = (host or "").strip()
    if not raw:
        if code is None:
            raise BrazeConfigError(
                "The Braze connection has no REST endpoint: set Host to your REST endpoint "
                "(Settings > APIs and Identifiers, e.g. https://rest.iad-01.braze.com) "
                "or set extra 'instance' to your instance code (e.g. US-01)."
            )
        return INSTANCES[code].rest_url

    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    scheme = parts.scheme.lower()
    hostname = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not hostname:
        raise BrazeConfigError(
            f"The Braze connection host {raw!r} is not a URL Braze can be reached at: use the REST "
            "endpoint, e.g. https://rest.iad-01.braze.com."
        )
    known = _instance_by_host(hostname)
    if known is not None and known[1] != "rest":
        found, kind = known
        what = "a dashboard URL" if kind == "dashboard" else "an SDK endpoint"
        raise BrazeConfigError(
            f"The Braze connection host {hostname!r} is {what}, not a REST endpoint. "
            f"Instance {found.code}'s REST endpoint is {found.rest_url}: put that in Host."
        )
    if known is None and _BRAZE_DOMAIN.search(hostname) and not hostname.startswith("rest."):
        raise BrazeConfigError(
            f"The Braze connection host {hostname!r} is not a Braze REST endpoint (those start with "
            "'rest.', e.g. https://rest.iad-01.braze.com). Copy it from Settings > APIs and Identifiers."
        )
    loopback = is_loopback(hostname)
    if scheme == "http" and not loopback and not (allow_insecure_http and known is None):
        raise BrazeConfigError(
            f"The Braze connection uses plain http:// to {hostname!r}; the API key would travel "
            "unencrypted. Use https:// (plain http is allowed only for a local sandbox on loopback, "
            "or on a private network with extra 'allow_insecure_http': true)."
        )
    if known is None and not loopback and not allow_custom_host:
        raise BrazeConfigError(
            f"The Braze connection host {hostname!r} is not a Braze REST endpoint. Use your instance's "
            "REST endpoint (e.g. https://rest.iad-01.braze.com), or set extra "
            "'allow_custom_host': true if this is a proxy in front of Braze."
        )
    if known is not None and code is not None and known[0].code != code:
        raise BrazeConfigError(
            f"The Braze connection host {hostname!r} belongs to instance {known[0].code} but extra "
            f"'instance' says {code}: remove one or make them agree."
        )
    netloc = f"[{hostname}]" if ":" in hostname else hostname
    effective_port = parts.port or port
    if effective_port:
        netloc = f"{netloc}:{effective_port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{netloc}{path}"
