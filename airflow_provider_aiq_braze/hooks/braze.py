"""BrazeHook: a Braze connection turned into a pooled, authenticated, rate-limited REST client.

The hook builds on the http provider's :class:`~airflow.providers.http.hooks.http.HttpHook` so that
the connection extras Airflow users know (``timeout``, ``proxies``, ``verify``, ``cert``,
``trust_env``, ``max_redirects``, ``allow_redirects``) behave as they do there, and replaces what
does not fit Braze:

* the base URL comes from :func:`~airflow_provider_aiq_braze.braze.instances.resolve_rest_base_url`
  (full URL, bare host, or the ``instance`` extra; dashboard and SDK hosts refused);
* authentication is ``Authorization: Bearer <connection password>``; ``login`` is unused;
* Braze's own extras (``instance``, ``allow_custom_host``, ``allow_insecure_http``, ``rate_limits``)
  never become headers;
* one pooled :class:`requests.Session` serves every call (``HttpHook.run`` builds a session per call
  and is not used);
* every call goes through one retry and rate-limit policy (see ``docs/connection.md``).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from airflow.providers.http.hooks.http import HttpHook
from requests.structures import CaseInsensitiveDict
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from airflow_provider_aiq_braze.braze.errors import BrazeApiError, BrazeConfigError
from airflow_provider_aiq_braze.braze.instances import resolve_rest_base_url
from airflow_provider_aiq_braze.braze.limits import (
    ENDPOINT_PERMISSIONS,
    GROUP_RATES,
    SEND_ID_MAX_LENGTH,
    TRIGGER_MAX_RECIPIENTS,
    RateLimit,
    rate_group,
)
from airflow_provider_aiq_braze.braze.ratelimit import (
    BROADCAST_GROUP,
    BROADCAST_RATE,
    PauseGate,
    TokenBucket,
    adaptive_rate,
    backoff_delay,
    parse_rate_limit,
    parse_rate_limit_headers,
    reset_wait,
)
from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Outcome, parse_minor_errors
from airflow_provider_aiq_braze.connection_form import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    HOOK_NAME,
    python_ui_field_behaviour,
)

if TYPE_CHECKING:
    from airflow.sdk import Connection

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
#: Headers the hook sets itself; an extra of the same name is ignored.
RESERVED_HEADERS = frozenset({"authorization", "content-type", "content-length", "host"})

#: Default (connect, read) timeout in seconds.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)

#: The external id ``test_connection`` looks up: reading it creates nothing in the workspace.
CONNECTION_TEST_EXTERNAL_ID = "aiq-braze-connection-test"

_USER_AGENT = "airflow-provider-aiq-braze"

_Timeout = float | tuple[float, float]


@dataclass(frozen=True)
class BrazeHookStats:
    """A snapshot of what a hook has sent so far (all threads together).

    :param requests_sent: HTTP requests put on the wire (or attempted), retries included.
    :param retries: requests re-sent after a 5xx, a connection failure before sending, or (for
        ``safe_to_retry`` calls) an uncertain outcome. Re-sends after a 429 are not counted here.
    :param rate_limit_waits: 429 answers that paused sending until ``X-RateLimit-Reset``.
    :param uncertain: calls that ended with an uncertain outcome.
    """

    requests_sent: int = 0
    retries: int = 0
    rate_limit_waits: int = 0
    uncertain: int = 0


class _Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = {"requests_sent": 0, "retries": 0, "rate_limit_waits": 0, "uncertain": 0}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> BrazeHookStats:
        with self._lock:
            return BrazeHookStats(**self._values)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _parse_timeout(value: Any) -> _Timeout:
    """Read a timeout the way ``requests`` takes it: seconds, or ``[connect, read]``."""
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


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (``args``, urllib3's ``reason``, causes)."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 32:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped: list[Any] = [*current.args, getattr(current, "reason", None)]
        wrapped += [current.__cause__, current.__context__]
        pending.extend(item for item in wrapped if isinstance(item, BaseException))


def _classify(exc: requests.RequestException) -> str:
    """Whether a request failed before being sent (``pre-send``), maybe after (``uncertain``),
    on TLS (``tls``) or because it could not be built (``invalid``)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "pre-send"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls"
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.InvalidHeader
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidJSONError,
    ):
        return "invalid"
    if isinstance(exc, requests.exceptions.ConnectionError):
        for cause in _exception_chain(exc):
            # NewConnectionError (refused, unreachable, DNS via NameResolutionError) subclasses it.
            if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
                return "pre-send"
    return "uncertain"


def _describe(exc: BaseException) -> str:
    """``OuterClass (InnermostClass: detail)`` for a transport failure, short and without headers."""
    chain = list(_exception_chain(exc))
    inner = chain[-1]
    for candidate in chain[1:]:
        if not isinstance(candidate, requests.RequestException | urllib3.exceptions.MaxRetryError):
            inner = candidate
            break
    detail = str(inner).split("(Caused by", 1)[0].strip()
    if len(detail) > 200:
        detail = detail[:200] + "..."
    if inner is exc:
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{type(exc).__name__} ({type(inner).__name__}: {detail})" if detail else type(exc).__name__


class BrazeHook(HttpHook):
    """Talk to the Braze REST API through an Airflow connection of type ``braze``.

    Creating the hook does no work and no network call; the connection is read on first use.
    One hook is meant to be shared by all the sender threads of a task: they share its session
    (connection pool), its client-side rate limit and its 429 pause.

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
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._lock = threading.RLock()
        self._resolved_base_url: str | None = None
        super().__init__(method="POST", http_conn_id=braze_conn_id)
        self.braze_conn_id = braze_conn_id
        self.max_connections = max_connections
        self.max_attempts = max_attempts
        self.max_rate_limit_waits = max_rate_limit_waits
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._timeout_arg = timeout
        self._rate_limits_arg = dict(rate_limits) if rate_limits else {}
        self._connection: Connection | None = None
        self._session: requests.Session | None = None
        self._api_key_value: str | None = None
        self._timeout: _Timeout = DEFAULT_TIMEOUT
        self._allow_redirects = False
        self._group_limits: dict[str, RateLimit] | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._gates: dict[str, PauseGate] = {}
        self._counters = _Counters()
        self._rng = random.Random()

    # ------------------------------------------------------------------ connection form (Airflow 3.1)
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's field behaviour, the same as ``ui-field-behaviour`` in provider info."""
        return python_ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's custom fields, built from ``conn-fields`` in provider info.

        Airflow 3.1 reads this method; 3.2+ reads the provider info and never calls it.
        """
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import Optional, any_of

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec.get("schema", {})
            types = schema.get("type", "string")
            types = [types] if isinstance(types, str) else list(types)
            validators: list[Any] = [Optional()]
            if "enum" in schema:
                validators.append(any_of(list(schema["enum"])))
            label = lazy_gettext(spec.get("label", name))
            description = spec.get("description", "")
            if "boolean" in types:
                widgets[name] = BooleanField(label, description=description)
            elif "integer" in types:
                widgets[name] = IntegerField(
                    label, validators=validators, widget=BS3TextFieldWidget(), description=description
                )
            else:
                widgets[name] = StringField(
                    label, validators=validators, widget=BS3TextFieldWidget(), description=description
                )
        return widgets

    # ------------------------------------------------------------------ connection → settings
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
                self._set_base_url(self.connection)
            assert self._resolved_base_url is not None
            return self._resolved_base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        # HttpHook.__init__ assigns ""; an empty value means "resolve from the connection".
        self._resolved_base_url = value or None

    def _set_base_url(self, connection: Connection) -> None:
        extra = self._extra()
        instance = extra.get("instance")
        self._resolved_base_url = resolve_rest_base_url(
            connection.host,
            instance=str(instance) if instance else None,
            port=connection.port,
            allow_custom_host=_truthy(extra.get("allow_custom_host", False)),
            allow_insecure_http=_truthy(extra.get("allow_insecure_http", False)),
        )
        self._base_url_initialized = True

    @property
    def host(self) -> str:
        """The host name of the REST endpoint (for messages)."""
        return urlsplit(self.base_url).hostname or self.base_url

    def _api_key(self) -> str:
        """The REST API key from the connection password, registered with the secret masker."""
        with self._lock:
            if self._api_key_value is not None:
                return self._api_key_value
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
            self._api_key_value = key
            return key

    def _scrub(self, text: str) -> str:
        """Remove the API key from a message, in case anything ever echoed it."""
        key = self._api_key_value or (self._connection.password if self._connection else None)
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's one pooled session, created on first use and reused by every call.

        :param headers: not supported (the session is shared); pass nothing.
        :param extra_options: not supported (use the connection extras); pass nothing.
        :raises BrazeConfigError: when the connection has no usable endpoint or key.
        """
        if headers or extra_options:
            raise TypeError("BrazeHook shares one session between calls: headers/extra_options are not taken")
        with self._lock:
            if self._session is None:
                self._session = self._build_session()
            return self._session

    def _build_session(self) -> requests.Session:
        base_url = self.base_url
        key = self._api_key()
        session = requests.Session()
        session.auth = None
        session = self._configure_session_from_extra(session, self.connection, {})
        session.headers.update(
            {
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"{_USER_AGENT}/{_version()}",
            }
        )
        if session.trust_env:
            # Resolve what trust_env means once for this fixed endpoint (proxies and CA bundle from
            # the environment) instead of on every request — a large share of a request's CPU —
            # and so that a ~/.netrc entry can never replace the bearer token.
            session.proxies = {**requests.utils.get_environ_proxies(base_url), **session.proxies}
            if session.verify is True:
                session.verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                )
            session.trust_env = False
        adapter = TCPKeepAliveAdapter(
            pool_connections=1,
            pool_maxsize=self.max_connections,
            max_retries=0,  # every retry decision is the hook's, none is urllib3's
        )
        scheme = urlsplit(base_url).scheme
        session.mount(f"{scheme}://", adapter)
        return session

    def _configure_session_from_extra(
        self, session: requests.Session, connection: Any, extra_options: dict[str, Any]
    ) -> requests.Session:
        """Apply the connection extras with ``HttpHook``'s meaning, minus Braze's own extras.

        ``proxies``/``proxy``, ``verify``/``verify_ssl``, ``cert``, ``trust_env``, ``max_redirects``,
        ``allow_redirects`` and ``timeout`` are settings; any other extra becomes an HTTP header,
        except Braze's extras (:data:`BRAZE_EXTRAS`) and the headers the hook sets itself.
        """
        extra = {**self._extra(), **(extra_options or {})}
        proxies = extra.get("proxies", extra.get("proxy"))
        if proxies:
            if not isinstance(proxies, Mapping):
                raise BrazeConfigError(
                    'The Braze connection extra "proxies" must be an object, e.g. '
                    '{"https": "http://proxy.example.com:3128"}.'
                )
            session.proxies = dict(proxies)
        verify = extra.get("verify", extra.get("verify_ssl", True))
        if isinstance(verify, str) and verify.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
            verify = _truthy(verify)
        session.verify = verify
        if extra.get("cert"):
            session.cert = extra["cert"]
        if "trust_env" in extra:
            session.trust_env = _truthy(extra["trust_env"])
        if extra.get("max_redirects") is not None:
            session.max_redirects = int(extra["max_redirects"])
        self._allow_redirects = _truthy(extra.get("allow_redirects", False))
        if self._timeout_arg is not None:
            self._timeout = _parse_timeout(self._timeout_arg)
        elif extra.get("timeout") is not None:
            self._timeout = _parse_timeout(extra["timeout"])
        for name, value in extra.items():
            if name in BRAZE_EXTRAS or name in HTTP_EXTRAS or name.lower() in RESERVED_HEADERS:
                continue
            if name.startswith("extra__") or value is None or isinstance(value, Mapping | list):
                continue
            session.headers[name] = value if isinstance(value, str) else json.dumps(value)
        return session

    @property
    def timeout(self) -> _Timeout:
        """The ``(connect, read)`` timeout in force (resolved with the session)."""
        self.get_conn()
        return self._timeout

    # ------------------------------------------------------------------ rate limits
    def _limits(self) -> dict[str, RateLimit]:
        with self._lock:
            if self._group_limits is None:
                limits: dict[str, RateLimit] = {**GROUP_RATES, BROADCAST_GROUP: BROADCAST_RATE}
                configured = self._extra().get("rate_limits") or {}
                if isinstance(configured, str):
                    try:
                        configured = json.loads(configured)
                    except ValueError:
                        configured = None
                if not isinstance(configured, Mapping):
                    raise BrazeConfigError(
                        'The Braze connection extra "rate_limits" must be an object, e.g. '
                        '{"users.track": "3000/3"}.'
                    )
                for group, value in configured.items():
                    limits[str(group)] = parse_rate_limit(value, name=f"rate_limits[{group!r}]")
                for group, value in self._rate_limits_arg.items():
                    limits[group] = parse_rate_limit(value, name=f"rate_limits[{group!r}]")
                self._group_limits = limits
            return self._group_limits

    def rate_limit(self, group: str) -> RateLimit:
        """The client-side budget in force for a rate group.

        :param group: ``users.track``, ``messaging``, ``messaging.broadcast`` or ``default``.
        """
        limits = self._limits()
        return limits.get(group, limits["default"])

    def _bucket(self, group: str) -> TokenBucket:
        with self._lock:
            if group not in self._buckets:
                self._buckets[group] = TokenBucket.for_limit(self.rate_limit(group))
            return self._buckets[group]

    def _gate(self, group: str) -> PauseGate:
        with self._lock:
            if group not in self._gates:
                self._gates[group] = PauseGate()
            return self._gates[group]

    @property
    def stats(self) -> BrazeHookStats:
        """Counters of everything sent through this hook so far (a snapshot)."""
        return self._counters.snapshot()

    # ------------------------------------------------------------------ calls
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Not available: use :meth:`post` (or the typed calls), which share the pooled session
        and the retry and rate-limit policy."""
        raise NotImplementedError("BrazeHook.run is not supported: use post(), track_users(), ...")

    def post(
        self, endpoint: str, body: Mapping[str, Any] | bytes, *, safe_to_retry: bool = False
    ) -> BrazeResponse:
        """POST a JSON body to a Braze endpoint under the retry and rate-limit policy.

        :param endpoint: the REST path, e.g. ``/users/track``.
        :param body: the JSON object, or its serialized UTF-8 bytes.
        :param safe_to_retry: the request is idempotent (e.g. attribute-only ``/users/track``):
            retry it after a timeout or a dropped connection instead of returning an uncertain outcome.
        :return: the response; ``outcome`` is ``ACCEPTED`` (2xx; see ``minor_errors``) or ``UNCERTAIN``.
        :raises BrazeApiError: Braze refused the request (4xx), or 5xx / connection failures
            persisted for ``max_attempts`` attempts, or 429 persisted for ``max_rate_limit_waits``.
        :raises BrazeConfigError: the connection is unusable (endpoint, key, extras).
        """
        data = body if isinstance(body, bytes) else _dumps(body)
        return self._request("POST", endpoint, data=data, safe_to_retry=safe_to_retry)

    def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> BrazeResponse:
        """GET a Braze endpoint (reads are retried like 5xx when their outcome is uncertain).

        :param endpoint: the REST path, e.g. ``/campaigns/list``.
        :param params: query parameters.
        """
        return self._request("GET", endpoint, params=params, safe_to_retry=True)

    def track_users(
        self,
        attributes: Sequence[Mapping[str, Any]] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
        purchases: Sequence[Mapping[str, Any]] | None = None,
        *,
        safe_to_retry: bool = False,
    ) -> BrazeResponse:
        """``POST /users/track`` (permission ``users.track``).

        The caller keeps within Braze's objects-per-request limit (see
        :class:`~airflow_provider_aiq_braze.braze.limits.ObjectCountRule`).

        :param attributes: user attribute objects.
        :param events: event objects.
        :param purchases: purchase objects.
        :param safe_to_retry: retry uncertain outcomes (true only for attribute-only requests).
        :raises ValueError: when all three are empty.
        """
        body: dict[str, Any] = {}
        for name, items in (("attributes", attributes), ("events", events), ("purchases", purchases)):
            if items:
                body[name] = list(items)
        if not body:
            raise ValueError("track_users needs at least one attribute, event or purchase object")
        return self.post("/users/track", body, safe_to_retry=safe_to_retry)

    def trigger_campaign(
        self,
        campaign_id: str,
        recipients: Sequence[Mapping[str, Any]] | None = None,
        trigger_properties: Mapping[str, Any] | None = None,
        send_id: str | None = None,
        *,
        broadcast: bool = False,
    ) -> BrazeResponse:
        """``POST /campaigns/trigger/send`` (permission ``campaigns.trigger.send``); never retried
        when its outcome is uncertain (a resend may message users twice).

        :param campaign_id: the API-triggered campaign.
        :param recipients: at most 50 recipient objects (``external_user_id``, ``user_alias``, ...).
        :param trigger_properties: personalization properties for every recipient.
        :param send_id: a send id from :meth:`create_send_id`, for per-send analytics.
        :param broadcast: send to the campaign's whole segment (no ``recipients``); such calls have
            their own budget of 250 per minute.
        :raises ValueError: on a missing campaign id, too many recipients, or recipients with broadcast.
        """
        if not campaign_id:
            raise ValueError("trigger_campaign needs a campaign_id")
        body: dict[str, Any] = {"campaign_id": campaign_id}
        if broadcast:
            if recipients:
                raise ValueError("broadcast=True sends to the campaign's segment: give no recipients")
            body["broadcast"] = True
        else:
            if not recipients:
                raise ValueError("trigger_campaign needs recipients (or broadcast=True)")
            if len(recipients) > TRIGGER_MAX_RECIPIENTS:
                raise ValueError(
                    f"{len(recipients)} recipients in one request; Braze accepts at most "
                    f"{TRIGGER_MAX_RECIPIENTS}"
                )
            body["recipients"] = list(recipients)
        if trigger_properties:
            body["trigger_properties"] = dict(trigger_properties)
        if send_id:
            body["send_id"] = send_id
        return self._request(
            "POST",
            "/campaigns/trigger/send",
            data=_dumps(body),
            safe_to_retry=False,
            group=BROADCAST_GROUP if broadcast else None,
        )

    def create_send_id(self, campaign_id: str, send_id: str | None = None) -> BrazeResponse:
        """``POST /sends/id/create`` (permission ``sends.id.create``; at most 100 per day per workspace).

        :param campaign_id: the campaign the send id is for.
        :param send_id: the id to create (ASCII, at most 64 characters); Braze makes one when omitted.
        :return: the response; the id is :attr:`BrazeResponse.send_id`.
        """
        if not campaign_id:
            raise ValueError("create_send_id needs a campaign_id")
        body: dict[str, Any] = {"campaign_id": campaign_id}
        if send_id is not None:
            if not send_id.isascii() or not 0 < len(send_id) <= SEND_ID_MAX_LENGTH:
                raise ValueError(f"send_id must be 1 to {SEND_ID_MAX_LENGTH} ASCII characters")
            body["send_id"] = send_id
        return self.post("/sends/id/create", body)

    # ------------------------------------------------------------------ the policy
    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        data: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        safe_to_retry: bool = False,
        group: str | None = None,
        max_attempts: int | None = None,
        max_rate_limit_waits: int | None = None,
    ) -> BrazeResponse:
        if not endpoint.startswith("/"):
            endpoint = f"/{endpoint}"
        session = self.get_conn()  # refuses a bad endpoint or a missing key before any request
        url = f"{self.base_url}{endpoint}"
        group = group or rate_group(endpoint.split("?", 1)[0])
        bucket, gate = self._bucket(group), self._gate(group)
        attempts_allowed = max_attempts or self.max_attempts
        waits_allowed = self.max_rate_limit_waits if max_rate_limit_waits is None else max_rate_limit_waits
        failures = 0  # attempts spent on 5xx, connection failures and (safe) uncertain outcomes
        waits = 0
        sent = 0
        while True:
            gate.wait()
            bucket.acquire()
            sent += 1
            self._counters.add("requests_sent")
            try:
                if params is None and not self._allow_redirects:
                    response = self._send_prepared(session, method, url, data)
                else:
                    response = session.request(
                        method,
                        url,
                        data=data,
                        params=params,
                        timeout=self._timeout,
                        allow_redirects=self._allow_redirects,
                        stream=False,
                    )
            except requests.RequestException as exc:
                kind = _classify(exc)
                what = self._scrub(_describe(exc))
                if kind == "tls":
                    raise BrazeApiError(
                        endpoint,
                        None,
                        f"TLS failure talking to {self.host}: {what} (check 'verify'/'cert')",
                        sent,
                    ) from None
                if kind == "invalid":
                    raise BrazeConfigError(
                        f"The request to {self.host}{endpoint} could not be built: {what}"
                    ) from None
                if kind == "uncertain" and not safe_to_retry:
                    return self._uncertain(endpoint, None, f"{what} after the request was sent", sent)
                failures += 1
                if failures >= attempts_allowed:
                    if kind == "uncertain":
                        return self._uncertain(endpoint, None, f"{what} after the request was sent", sent)
                    raise BrazeApiError(
                        endpoint, None, f"could not connect to {self.host}: {what}", sent
                    ) from None
                self._retry_after_failure(endpoint, failures, attempts_allowed, what)
                continue

            status = response.status_code
            info = parse_rate_limit_headers(response.headers)
            self._observe(bucket, info)
            body, text = _decode(response)
            self.log.debug("Braze %s %s -> HTTP %s (attempt %d)", method, endpoint, status, sent)
            if 200 <= status < 300:
                if body is None:
                    return self._uncertain(
                        endpoint, status, f"HTTP {status} without a JSON body (is this Braze?)", sent
                    )
                return BrazeResponse(
                    endpoint=endpoint,
                    outcome=Outcome.ACCEPTED,
                    status=status,
                    body=body,
                    minor_errors=parse_minor_errors(body),
                    attempts=sent,
                )
            message = self._scrub(_message(body, text, status))
            if status == 429:
                waits += 1
                if waits > waits_allowed:
                    raise BrazeApiError(
                        endpoint, status, f"{message} (still rate limited after {waits - 1} waits)", sent
                    )
                pause = reset_wait(info.reset, time.time())
                gate.pause(pause)
                self._counters.add("rate_limit_waits")
                self.log.warning(
                    "Braze rate limit reached on %s (HTTP 429): pausing every sender for %.1f s.",
                    endpoint,
                    pause,
                )
                continue
            if status >= 500:
                if status == 504 and not safe_to_retry:
                    return self._uncertain(
                        endpoint, status, "HTTP 504: the gateway timed out waiting for Braze", sent
                    )
                failures += 1
                if failures >= attempts_allowed:
                    if status == 504:
                        return self._uncertain(endpoint, status, "HTTP 504: the gateway timed out", sent)
                    raise BrazeApiError(endpoint, status, message, sent)
                self._retry_after_failure(endpoint, failures, attempts_allowed, f"HTTP {status}: {message}")
                continue
            raise BrazeApiError(endpoint, status, message, sent)

    def _send_prepared(
        self, session: requests.Session, method: str, url: str, data: bytes | None
    ) -> requests.Response:
        """Send straight through the session's pooled adapter.

        ``Session.request`` merges settings, cookies and hooks on every call; none of them vary
        for this hook (the session's headers, proxies, ``verify`` and ``cert`` are fixed when it is
        built and applied here), and skipping that machinery saves about a third of a request's
        client CPU — what limits a single task's throughput.
        """
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = CaseInsensitiveDict(session.headers)  # type: ignore[arg-type]
        prepared.body = data
        prepared.headers["Content-Length"] = str(len(data)) if data is not None else "0"
        adapter = session.get_adapter(url)
        return adapter.send(
            prepared,
            stream=False,
            timeout=self._timeout,
            verify=session.verify if session.verify is not None else True,
            cert=session.cert,
            proxies=session.proxies,
        )

    def _retry_after_failure(self, endpoint: str, failures: int, allowed: int, what: str) -> None:
        delay = backoff_delay(failures, base=self.backoff_base, cap=self.backoff_max, rng=self._rng)
        self._counters.add("retries")
        self.log.warning(
            "Braze %s failed (%s); retrying in %.2f s (attempt %d of %d).",
            endpoint,
            what,
            delay,
            failures + 1,
            allowed,
        )
        time.sleep(delay)

    def _uncertain(self, endpoint: str, status: int | None, reason: str, attempts: int) -> BrazeResponse:
        self._counters.add("uncertain")
        self.log.warning("Braze %s outcome uncertain: %s. It is not resent.", endpoint, reason)
        return BrazeResponse(
            endpoint=endpoint,
            outcome=Outcome.UNCERTAIN,
            status=status,
            attempts=attempts,
            uncertain_reason=reason,
        )

    def _observe(self, bucket: TokenBucket, info: Any) -> None:
        """Slow the bucket down when Braze's remaining budget runs low."""
        slower = adaptive_rate(info, time.time())
        if slower is not None:
            rate, until = slower
            if rate < bucket.current_rate():
                self.log.info(
                    "Braze budget low (%s of %s left): slowing to %.1f requests/s for %.1f s.",
                    info.remaining,
                    info.limit,
                    rate,
                    until,
                )
            bucket.slow_down(rate, until)

    # ------------------------------------------------------------------ connection test
    def test_connection(self) -> tuple[bool, str]:
        """Prove the endpoint and the key work, without writing to any user profile.

        Reads one made-up external id with ``POST /users/export/ids`` (permission
        ``users.export.ids``); on 403 falls back to ``GET /campaigns/list`` (``campaigns.list``).

        :return: ``(True, message)`` or ``(False, reason)`` with what to fix.
        """
        try:
            self.get_conn()
            host = self.host
        except BrazeConfigError as exc:
            return False, str(exc)
        first = "/users/export/ids"
        probe = {"external_ids": [CONNECTION_TEST_EXTERNAL_ID], "fields_to_export": ["external_id"]}
        try:
            response = self._request(
                "POST", first, data=_dumps(probe), safe_to_retry=True, max_attempts=1, max_rate_limit_waits=0
            )
        except BrazeApiError as exc:
            if exc.status != 403:
                return False, self._explain(exc, host)
        else:
            if not response.accepted:
                return False, self._explain_uncertain(response, host)
            return (
                True,
                f"Connected to Braze at {self.base_url}: the key works ({ENDPOINT_PERMISSIONS[first]}).",
            )
        second = "/campaigns/list"
        try:
            response = self._request(
                "GET", second, params={"page": 0}, safe_to_retry=True, max_attempts=1, max_rate_limit_waits=0
            )
        except BrazeApiError as exc:
            if exc.status == 403:
                return False, (
                    f"Braze at {host} accepted the key but it lacks permissions: it needs "
                    "users.export.ids or campaigns.list for this test, and users.track (audiences, events), "
                    "campaigns.trigger.send (campaigns), sends.id.create (send ids) for the operators. "
                    "Edit the key under Settings > APIs and Identifiers (403 also happens when the "
                    f"account is inactive). Braze said: {exc.message}"
                )
            return False, self._explain(exc, host)
        if not response.accepted:
            return False, self._explain_uncertain(response, host)
        return True, (
            f"Connected to Braze at {self.base_url}: the key works (campaigns.list). It lacks "
            "users.export.ids, which only this test uses."
        )

    def _explain_uncertain(self, response: BrazeResponse, host: str) -> str:
        return (
            f"No usable answer from {host} for {response.endpoint}: {response.uncertain_reason}. "
            "Check the REST endpoint, proxies and the 'timeout' extra."
        )

    def _explain(self, exc: BrazeApiError, host: str) -> str:
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


def _dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _decode(response: requests.Response) -> tuple[dict[str, Any] | None, str]:
    """The JSON object of a response (``None`` when the body is not one) and a short text excerpt."""
    content = response.content or b""
    text = content[:300].decode("utf-8", "replace")
    try:
        value = json.loads(content) if content else None
    except ValueError:
        return None, text
    return (value if isinstance(value, dict) else None), text


def _message(body: Mapping[str, Any] | None, text: str, status: int) -> str:
    """Braze's ``message`` (with its ``errors`` if any), or an excerpt of a non-JSON body."""
    if body:
        message = str(body.get("message") or "").strip()
        errors = body.get("errors")
        if errors:
            shown = json.dumps(errors if not isinstance(errors, list) else errors[:5], ensure_ascii=False)
            message = f"{message} {shown[:300]}".strip()
        if message:
            return message
    excerpt = " ".join(text.split())[:200]
    return excerpt or f"HTTP {status} with an empty body"


def _mask(secret: str) -> None:
    """Register a secret with Airflow's secret masker (task process and supervisor)."""
    from airflow.sdk.log import mask_secret

    mask_secret(secret)


def _version() -> str:
    from airflow_provider_aiq_braze import __version__

    return __version__
