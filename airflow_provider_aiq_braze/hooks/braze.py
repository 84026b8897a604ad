"""BrazeHook: an Airflow connection of type ``braze`` turned into a :class:`BrazeClient`.

The hook is the Airflow-facing part only: it reads the connection (REST endpoint, key, extras),
turns it into :class:`~airflow_provider_aiq_braze.braze.settings.ClientSettings`, declares the
connection form and tests the connection. Sending — the pooled session, the rate limits and the
retry/429 policy — is :class:`~airflow_provider_aiq_braze.braze.client.BrazeClient`'s, in
``braze/``; the hook's calls (:meth:`BrazeHook.post`, :meth:`BrazeHook.track_users`, …) delegate
to it.

It builds on the http provider's :class:`~airflow.providers.http.hooks.http.HttpHook`, so the
extras Airflow users know (``timeout``, ``proxies``, ``verify``, ``cert``, ``trust_env``,
``max_redirects``, ``allow_redirects``, any other as a header) mean what they mean there; the base
URL comes from :func:`~airflow_provider_aiq_braze.braze.instances.resolve_rest_base_url` and the
key is sent as ``Authorization: Bearer`` (``login`` is unused).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.http.hooks.http import HttpHook

from airflow_provider_aiq_braze import arguments
from airflow_provider_aiq_braze.braze.client import BrazeClient, ClientStats
from airflow_provider_aiq_braze.braze.encoding import to_json_bytes
from airflow_provider_aiq_braze.braze.errors import BrazeApiError, BrazeConfigError
from airflow_provider_aiq_braze.braze.instances import resolve_rest_base_url
from airflow_provider_aiq_braze.braze.limits import ENDPOINT_PERMISSIONS, RateLimit
from airflow_provider_aiq_braze.braze.responses import BrazeResponse
from airflow_provider_aiq_braze.braze.settings import (
    ClientSettings,
    Timeout,
    parse_rate_limits,
    transport_from_extras,
    truthy,
)
from airflow_provider_aiq_braze.connection_form import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    connection_form_widgets,
    python_ui_field_behaviour,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

#: The external id ``test_connection`` looks up: reading it creates nothing in the workspace.
CONNECTION_TEST_EXTERNAL_ID = "aiq-braze-connection-test"

#: What :attr:`BrazeHook.stats` returns (the client's counters).
BrazeHookStats = ClientStats


class BrazeHook(HttpHook):
    """Talk to the Braze REST API through an Airflow connection of type ``braze``.

    Creating the hook does no work and no network call; the connection is read on first use.
    One hook is meant to be shared by all the sender threads of a task: they share its client
    (connection pool, client-side rate limit, 429 pause).

    :param braze_conn_id: the Airflow connection: host = REST endpoint (or empty with extra
        ``instance``), password = REST API key.
    :param max_connections: size of the HTTP connection pool; set it to the number of sender threads.
    :param max_attempts: attempts per call for 5xx answers and connection failures (first one included).
    :param timeout: ``(connect, read)`` seconds, or one number for both; overrides the connection
        extra ``timeout``. Default ``(10, 60)``.
    :param rate_limits: client-side request budgets per rate group (``users.track``, ``messaging``,
        ``messaging.broadcast``, ``default``); override the connection extra ``rate_limits`` and the
        defaults in :data:`~airflow_provider_aiq_braze.braze.limits.GROUP_RATES`.
    :param max_rate_limit_waits: how many 429 answers one call waits out before giving up.
    :param backoff_base: upper bound in seconds of the first backoff wait (doubles each attempt).
    :param backoff_max: the largest backoff wait in seconds.
    """

    conn_name_attr = "braze_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(
        self,
        braze_conn_id: str = DEFAULT_CONN_ID,
        *,
        max_connections: int = 16,
        max_attempts: int = 5,
        timeout: float | tuple[float, float] | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        max_rate_limit_waits: int = 30,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        braze_conn_id = str(arguments.text("braze_conn_id", braze_conn_id, what="a connection id"))
        self._policy: dict[str, Any] = {
            "max_connections": arguments.whole_number("max_connections", max_connections, minimum=1),
            "max_attempts": arguments.whole_number("max_attempts", max_attempts, minimum=1),
            "max_rate_limit_waits": arguments.whole_number(
                "max_rate_limit_waits", max_rate_limit_waits, minimum=0
            ),
            "backoff_base": arguments.number("backoff_base", backoff_base, minimum=0),
            "backoff_max": arguments.number("backoff_max", backoff_max, minimum=0),
        }
        self._timeout_arg = _checked_timeout(timeout)
        self._rate_limits_arg = _checked_rate_limits(rate_limits)
        self._lock = threading.RLock()
        self._resolved_base_url: str | None = None
        super().__init__(method="POST", http_conn_id=braze_conn_id)
        self.braze_conn_id = braze_conn_id
        self._connection: Connection | None = None
        self._settings: ClientSettings | None = None
        self._client: BrazeClient | None = None

    # -- the connection form (Airflow 3.1; 3.2+ reads the provider info) -------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's field behaviour, the same as ``ui-field-behaviour`` in provider info."""
        return python_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's custom fields, built from ``conn-fields`` in provider info."""
        return connection_form_widgets()

    # -- connection → settings -------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The Airflow connection, fetched once."""
        with self._lock:
            if self._connection is None:
                self._connection = self.get_connection(self.braze_conn_id)
            return self._connection

    def _extra(self) -> dict[str, Any]:
        extra = self.connection.extra_dejson
        if not isinstance(extra, dict):
            return {}
        found: dict[str, Any] = {}
        for key, value in extra.items():
            # Forms of old stored custom fields as ``extra__braze__<name>``; the bare name wins.
            bare = key.removeprefix(f"extra__{CONN_TYPE}__")
            if bare == key or bare not in extra:
                found[bare] = value
        return found

    @property  # type: ignore[override]
    def base_url(self) -> str:
        """The REST base URL, resolved from the connection on first use (no network).

        :raises BrazeConfigError: when the connection does not name a usable Braze REST endpoint.
        """
        with self._lock:
            if self._resolved_base_url is None:
                extra = self._extra()
                instance = extra.get("instance")
                self._resolved_base_url = resolve_rest_base_url(
                    self.connection.host,
                    instance=str(instance) if instance else None,
                    port=self.connection.port,
                    allow_custom_host=truthy(extra.get("allow_custom_host", False)),
                    allow_insecure_http=truthy(extra.get("allow_insecure_http", False)),
                )
            return self._resolved_base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        # HttpHook.__init__ assigns ""; an empty value means "resolve from the connection".
        self._resolved_base_url = value or None

    @property
    def host(self) -> str:
        """The host name of the REST endpoint (for messages)."""
        return self.client.host

    def _api_key(self) -> str:
        """The REST API key from the connection password, registered with the secret masker."""
        raw = self.connection.password
        key = (raw or "").strip()
        if key:
            _mask(key)
            if raw and raw != key:
                _mask(raw)
        if not key:
            raise BrazeConfigError(
                f"The Braze connection {self.braze_conn_id!r} has no REST API key: put the key "
                "(Settings > APIs and Identifiers > API Keys) in the connection's Password field."
            )
        if key[0] in "'\"" or key[-1] in "'\"":
            raise BrazeConfigError(
                f"The REST API key in connection {self.braze_conn_id!r} is wrapped in quotes: "
                "store the key without quotes."
            )
        if any(ord(c) < 33 or ord(c) > 126 for c in key):
            raise BrazeConfigError(
                f"The REST API key in connection {self.braze_conn_id!r} contains spaces, line "
                "breaks or non-ASCII characters: paste the key alone."
            )
        return key

    @property
    def settings(self) -> ClientSettings:
        """The client's settings, from the connection and the hook's arguments (no network).

        :raises BrazeConfigError: when the endpoint, the key or an extra is unusable.
        """
        with self._lock:
            if self._settings is None:
                self._settings = self._read_settings()
            return self._settings

    def _read_settings(self) -> ClientSettings:
        base_url = self.base_url
        key = self._api_key()
        extra = self._extra()
        return ClientSettings(
            base_url=base_url,
            api_key=key,
            secrets=tuple(s for s in (self.connection.password,) if s),
            rate_limits=parse_rate_limits(extra.get("rate_limits"), self._rate_limits_arg),
            user_agent=f"airflow-provider-aiq-braze/{_version()}",
            **transport_from_extras(extra, timeout=self._timeout_arg),
            **self._policy,
        )

    @property
    def client(self) -> BrazeClient:
        """The Braze client every call goes through, built on first use (shared by every thread).

        :raises BrazeConfigError: when the connection is unusable.
        """
        with self._lock:
            if self._client is None:
                self._client = BrazeClient(self.settings, log=self.log)
            return self._client

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The client's one pooled session, created on first use and reused by every call.

        :param headers: not supported (the session is shared; headers come from the extras).
        :param extra_options: not supported (use the connection extras).
        :raises BrazeConfigError: when the connection has no usable endpoint or key.
        """
        if headers or extra_options:
            raise TypeError("BrazeHook shares one session between calls: headers/extra_options are not taken")
        return self.client.session

    @property
    def timeout(self) -> Timeout:
        """The ``(connect, read)`` timeout in force."""
        return self.settings.timeout

    def rate_limit(self, group: str) -> RateLimit:
        """The client-side budget in force for a rate group.

        :param group: ``users.track``, ``messaging``, ``messaging.broadcast`` or ``default``.
        """
        return self.settings.rate_limit(group)

    @property
    def stats(self) -> ClientStats:
        """Counters of everything sent through this hook so far (a snapshot)."""
        if self._client is None:  # nothing was sent, and nothing needs reading
            return ClientStats()
        return self.client.stats

    # -- calls (the client's) --------------------------------------------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> BrazeResponse:
        """``HttpHook.run`` for Braze: one call of the hook's ``method`` under the client's policy.

        :param endpoint: the REST path.
        :param data: the JSON body (an object, its text or bytes), or the query of a ``GET``.
        :param headers: not supported: headers come from the connection extras.
        :param extra_options: ``{"check_response": False}`` returns refusals instead of raising.
        :param request_kwargs: not supported.
        """
        if headers or request_kwargs:
            raise TypeError("BrazeHook.run takes endpoint and data; headers come from the connection extras")
        path = endpoint or "/"
        if self.method == "GET":
            params = data if isinstance(data, Mapping) else None
            options: dict[str, Any] = {"params": params, "safe_to_retry": True}
        else:
            body = to_json_bytes(data) if isinstance(data, Mapping) else data
            options = {"data": body.encode() if isinstance(body, str) else body}
        if (extra_options or {}).get("check_response", True):
            return self.client.request(self.method, path, **options)
        return self.client.send(self.method, path, **options)

    def post(
        self, endpoint: str, body: Mapping[str, Any] | bytes, *, safe_to_retry: bool = False
    ) -> BrazeResponse:
        """Delegates to ``BrazeClient.post`` (:mod:`airflow_provider_aiq_braze.braze.client`)."""
        return self.client.post(endpoint, body, safe_to_retry=safe_to_retry)

    def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> BrazeResponse:
        """Delegates to ``BrazeClient.get`` (:mod:`airflow_provider_aiq_braze.braze.client`)."""
        return self.client.get(endpoint, params)

    def track_users(
        self,
        attributes: Sequence[Mapping[str, Any]] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
        purchases: Sequence[Mapping[str, Any]] | None = None,
        *,
        safe_to_retry: bool = False,
    ) -> BrazeResponse:
        """Delegates to ``BrazeClient.track_users`` (:mod:`airflow_provider_aiq_braze.braze.client`)."""
        return self.client.track_users(attributes, events, purchases, safe_to_retry=safe_to_retry)

    def trigger_campaign(
        self,
        campaign_id: str,
        recipients: Sequence[Mapping[str, Any]] | None = None,
        trigger_properties: Mapping[str, Any] | None = None,
        send_id: str | None = None,
        *,
        broadcast: bool = False,
    ) -> BrazeResponse:
        """Delegates to ``BrazeClient.trigger_campaign`` (:mod:`airflow_provider_aiq_braze.braze.client`)."""
        return self.client.trigger_campaign(
            campaign_id, recipients, trigger_properties, send_id, broadcast=broadcast
        )

    def create_send_id(self, campaign_id: str, send_id: str | None = None) -> BrazeResponse:
        """Delegates to ``BrazeClient.create_send_id`` (:mod:`airflow_provider_aiq_braze.braze.client`)."""
        return self.client.create_send_id(campaign_id, send_id)

    # -- connection test -------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Prove the endpoint and the key work, without writing to any user profile.

        Reads one made-up external id with ``POST /users/export/ids`` (permission
        ``users.export.ids``); on 403 falls back to ``GET /campaigns/list`` (``campaigns.list``).
        Each request is sent once (no retries, no 429 waits).

        :return: ``(True, message)`` or ``(False, reason)`` with what to fix.
        """
        try:
            client = self.client
            client.session  # noqa: B018 - builds the session: refuses bad settings before any request
        except BrazeConfigError as exc:
            return False, str(exc)
        once = {"safe_to_retry": True, "max_attempts": 1, "max_rate_limit_waits": 0}
        first = "/users/export/ids"
        probe = {"external_ids": [CONNECTION_TEST_EXTERNAL_ID], "fields_to_export": ["external_id"]}
        try:
            response = client.request("POST", first, data=to_json_bytes(probe), **once)
        except (BrazeApiError, BrazeConfigError) as exc:
            if not isinstance(exc, BrazeApiError) or exc.status != 403:
                return False, _explain(exc, client.host)
        else:
            if not response.accepted:
                return False, _explain_uncertain(response, client.host)
            return (
                True,
                f"Connected to Braze at {self.base_url}: the key works ({ENDPOINT_PERMISSIONS[first]}).",
            )
        try:
            response = client.request("GET", "/campaigns/list", params={"page": 0}, **once)
        except BrazeApiError as exc:
            if exc.status == 403:
                return False, (
                    f"Braze at {client.host} accepted the key but it lacks permissions: it needs "
                    "users.export.ids or campaigns.list for this test, and users.track (audiences, events), "
                    "campaigns.trigger.send (campaigns), sends.id.create (send ids) for the operators. "
                    "Edit the key under Settings > APIs and Identifiers (403 also happens when the "
                    f"account is inactive). Braze said: {exc.message}"
                )
            return False, _explain(exc, client.host)
        if not response.accepted:
            return False, _explain_uncertain(response, client.host)
        return True, (
            f"Connected to Braze at {self.base_url}: the key works (campaigns.list). It lacks "
            "users.export.ids, which only this test uses."
        )


def _checked_timeout(value: Any) -> float | tuple[float, float] | None:
    """The hook's ``timeout`` argument: seconds, ``(connect, read)`` seconds, or ``None``."""
    accepted = "seconds (e.g. 30), a pair (connect, read) of seconds (e.g. (10, 60)), or None"
    if value is None:
        return None
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise arguments.ArgumentError("timeout", value, accepted)
        connect, read = (arguments.number("timeout", v, minimum=0.001) for v in value)
        return (connect, read)
    try:
        return arguments.number("timeout", value, minimum=0.001)
    except arguments.ArgumentError:
        raise arguments.ArgumentError("timeout", value, accepted) from None


def _checked_rate_limits(value: Any) -> dict[str, RateLimit]:
    """The hook's ``rate_limits`` argument: rate group → :class:`RateLimit`."""
    if not value:
        return {}
    accepted = 'a dict of rate group → RateLimit, e.g. {"users.track": RateLimit(3000, 3)}'
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, RateLimit) for k, v in value.items()
    ):
        raise arguments.ArgumentError("rate_limits", value, accepted)
    return dict(value)


def _explain_uncertain(response: BrazeResponse, host: str) -> str:
    return (
        f"No usable answer from {host} for {response.endpoint}: {response.uncertain_reason}. "
        "Check the REST endpoint, proxies and the 'timeout' extra."
    )


def _explain(exc: BrazeApiError | BrazeConfigError, host: str) -> str:
    if isinstance(exc, BrazeConfigError):
        return str(exc)
    if exc.status == 401:
        return (
            f"Braze at {host} refused the key (HTTP 401): check the key; 401 also happens with a "
            "key from another instance (the REST endpoint must be your instance's) or a key in quotes. "
            f"Braze said: {exc.message}"
        )
    if exc.status == 429:
        return f"Braze at {host} is rate limiting this workspace (HTTP 429): try again after a minute."
    if exc.status is None:
        return (
            f"Could not reach Braze at {host}: {exc.message}. Check the REST endpoint, DNS, "
            "proxies and firewall."
        )
    if exc.status == 404:
        return (
            f"{host} answered HTTP 404 for {exc.endpoint}: is Host your REST endpoint "
            "(https://rest.<instance>.braze.com) and not a path on another service?"
        )
    return f"Braze at {host} answered HTTP {exc.status} for {exc.endpoint}: {exc.message}"


def _mask(secret: str) -> None:
    """Register a secret with Airflow's secret masker (task process and supervisor)."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def _version() -> str:
    from airflow_provider_aiq_braze import __version__

    return __version__
