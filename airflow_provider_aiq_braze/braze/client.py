"""BrazeClient: one pooled session, the client-side rate limits, and the send/retry/429 policy.

Airflow-free: it takes :class:`~airflow_provider_aiq_braze.braze.settings.ClientSettings` (the
hook builds them from an Airflow connection). The policy is a short loop around one step,
:meth:`BrazeClient.send_once`, which sends a request once and classifies what came back with
:func:`~airflow_provider_aiq_braze.braze.answers.classify`:

* ``rate_limited`` → every sender of the rate group pauses until ``X-RateLimit-Reset``, then the
  same request goes again (at most ``max_rate_limit_waits`` times);
* ``retry`` (and ``uncertain`` for requests marked ``safe_to_retry``) → exponential backoff with
  full jitter, at most ``max_attempts`` attempts;
* anything else is final and returned as it is.

:meth:`BrazeClient.send` never raises for an answer: the delivery engine reads the verdict. The
typed calls (:meth:`BrazeClient.post`, :meth:`~BrazeClient.track_users`, …) raise
:class:`~airflow_provider_aiq_braze.braze.errors.BrazeApiError` for refusals, for callers that
prefer exceptions.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

from airflow_provider_aiq_braze.braze.answers import Scrubber, classify
from airflow_provider_aiq_braze.braze.encoding import to_json_bytes
from airflow_provider_aiq_braze.braze.errors import BrazeApiError, BrazeConfigError
from airflow_provider_aiq_braze.braze.limits import (
    SEND_ID_MAX_LENGTH,
    TRIGGER_MAX_RECIPIENTS,
    RateLimit,
    rate_group,
)
from airflow_provider_aiq_braze.braze.ratelimit import (
    BROADCAST_GROUP,
    PauseGate,
    RateLimitInfo,
    TokenBucket,
    adaptive_rate,
    backoff_delay,
    reset_wait,
)
from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict
from airflow_provider_aiq_braze.braze.settings import ClientSettings

#: Called right before each attempt goes on the wire (after rate-limit waits); what it raises
#: propagates, and then nothing is sent.
BeforeSend = Callable[[], None]


class ClientLog(Protocol):
    """The logging methods the client uses (a ``logging.Logger`` or Airflow's task logger)."""

    def debug(self, msg: Any, /, *args: Any) -> Any:
        """Log at DEBUG."""

    def info(self, msg: Any, /, *args: Any) -> Any:
        """Log at INFO."""

    def warning(self, msg: Any, /, *args: Any) -> Any:
        """Log at WARNING."""


@dataclass(frozen=True)
class ClientStats:
    """A snapshot of what a client has sent so far (all threads together).

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

    def snapshot(self) -> ClientStats:
        with self._lock:
            return ClientStats(**self._values)


class BrazeClient:
    """Talk to the Braze REST API: one instance shared by every sender thread of a task.

    They share its session (connection pool), its client-side rate limit and its 429 pause.

    :param settings: endpoint, key, transport settings and policy limits.
    :param log: where warnings about retries, pauses and uncertain outcomes go.
    """

    def __init__(self, settings: ClientSettings, *, log: ClientLog | None = None) -> None:
        self.settings = settings
        self.log: ClientLog = log or logging.getLogger(__name__)
        self.scrubber = Scrubber((settings.api_key, *settings.secrets))
        self._lock = threading.RLock()
        self._session: requests.Session | None = None
        self._buckets: dict[str, TokenBucket] = {}
        self._gates: dict[str, PauseGate] = {}
        self._counters = _Counters()
        self._rng = random.Random()

    # -- what it holds -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The host name of the REST endpoint (for messages)."""
        return urlsplit(self.settings.base_url).hostname or self.settings.base_url

    @property
    def session(self) -> requests.Session:
        """The one pooled session, built on first use."""
        with self._lock:
            if self._session is None:
                self._session = self._build_session()
            return self._session

    @property
    def stats(self) -> ClientStats:
        """Counters of everything sent through this client so far (a snapshot)."""
        return self._counters.snapshot()

    def rate_limit(self, group: str) -> RateLimit:
        """The client-side budget in force for a rate group.

        :param group: ``users.track``, ``messaging``, ``messaging.broadcast`` or ``default``.
        """
        return self.settings.rate_limit(group)

    def bucket(self, group: str) -> TokenBucket:
        """The token bucket spacing the requests of a rate group.

        :param group: the rate group.
        """
        with self._lock:
            if group not in self._buckets:
                self._buckets[group] = TokenBucket.for_limit(self.rate_limit(group))
            return self._buckets[group]

    def gate(self, group: str) -> PauseGate:
        """The 429 pause shared by every sender of a rate group.

        :param group: the rate group.
        """
        with self._lock:
            if group not in self._gates:
                self._gates[group] = PauseGate()
            return self._gates[group]

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    # -- the policy --------------------------------------------------------------------------

    def send(
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
        before_send: BeforeSend | None = None,
    ) -> BrazeResponse:
        """Send one request under the retry and rate-limit policy; return its final verdict.

        :param method: ``POST`` or ``GET``.
        :param endpoint: the REST path, e.g. ``/users/track``.
        :param data: the JSON body.
        :param params: query parameters.
        :param safe_to_retry: the request is idempotent: retry it after an uncertain outcome too.
        :param group: the rate group (default: the endpoint's).
        :param max_attempts: overrides the settings' ``max_attempts``.
        :param max_rate_limit_waits: overrides the settings' ``max_rate_limit_waits``.
        :param before_send: called right before each attempt goes on the wire.
        :raises BrazeConfigError: when the session cannot be built from the settings.
        """
        endpoint = endpoint if endpoint.startswith("/") else f"/{endpoint}"
        group = group or rate_group(endpoint.split("?", 1)[0])
        bucket, gate = self.bucket(group), self.gate(group)
        attempts_allowed = max_attempts or self.settings.max_attempts
        waits_allowed = (
            self.settings.max_rate_limit_waits if max_rate_limit_waits is None else max_rate_limit_waits
        )
        attempts = failures = waits = 0
        while True:
            gate.wait()
            bucket.acquire()
            if before_send is not None:
                before_send()
            attempts += 1
            self._counters.add("requests_sent")
            answer = self.send_once(method, endpoint, data=data, params=params)
            self._observe(bucket, answer.rate_limit)
            self.log.debug("Braze %s %s -> %s (attempt %d)", method, endpoint, answer.verdict.value, attempts)
            if answer.verdict is Verdict.RATE_LIMITED and waits < waits_allowed:
                waits += 1
                self._pause(gate, endpoint, answer.rate_limit)
                continue
            again = answer.verdict is Verdict.RETRY or (answer.verdict is Verdict.UNCERTAIN and safe_to_retry)
            if again and failures + 1 < attempts_allowed:
                failures += 1
                self._backoff(endpoint, failures, attempts_allowed, answer.reason or "")
                continue
            return self._final(answer, attempts, waits)

    def send_once(
        self,
        method: str,
        endpoint: str,
        *,
        data: bytes | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> BrazeResponse:
        """Send a request once and classify what came back (no waiting, no retry).

        :param method: ``POST`` or ``GET``.
        :param endpoint: the REST path, starting with ``/``.
        :param data: the JSON body.
        :param params: query parameters.
        :raises BrazeConfigError: when the session cannot be built from the settings.
        """
        session = self.session
        url = f"{self.settings.base_url}{endpoint}"
        try:
            response = self._transmit(session, method, url, data, params)
        except Exception as exc:
            return classify(endpoint, error=exc, host=self.host, scrub=self.scrubber)
        read_error: BaseException | None = None
        try:
            body = response.content or b""
        except Exception as exc:
            body, read_error = b"", exc
        finally:
            response.close()
        return classify(
            endpoint,
            response.status_code,
            response.headers,
            body,
            read_error=read_error,
            host=self.host,
            scrub=self.scrubber,
        )

    def _transmit(
        self,
        session: requests.Session,
        method: str,
        url: str,
        data: bytes | None,
        params: Mapping[str, Any] | None,
    ) -> requests.Response:
        """Put the request on the wire; the body is read by the caller (``stream=True``).

        Without query parameters or redirects the request goes straight through the session's
        pooled adapter: ``Session.request`` merges settings, cookies and hooks on every call, none
        of which vary here (headers, proxies, ``verify`` and ``cert`` are fixed when the session is
        built), and skipping that saves about a third of a request's client CPU.
        """
        timeout = self.settings.timeout
        if params is not None or self.settings.allow_redirects:
            return session.request(
                method,
                url,
                data=data,
                params=params,
                timeout=timeout,
                allow_redirects=self.settings.allow_redirects,
                stream=True,
            )
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = CaseInsensitiveDict(session.headers)  # type: ignore[arg-type]
        prepared.body = data
        prepared.headers["Content-Length"] = str(len(data)) if data is not None else "0"
        return session.get_adapter(url).send(
            prepared,
            stream=True,
            timeout=timeout,
            verify=session.verify if session.verify is not None else True,
            cert=session.cert,
            proxies=session.proxies,
        )

    def _final(self, answer: BrazeResponse, attempts: int, waits: int) -> BrazeResponse:
        if answer.verdict is Verdict.UNCERTAIN:
            self._counters.add("uncertain")
            self.log.warning("Braze %s outcome uncertain: %s.", answer.endpoint, answer.reason)
        elif answer.verdict is Verdict.RATE_LIMITED:
            message = f"{answer.message} (still rate limited after {waits} waits)"
            answer = replace(answer, message=message, reason=f"HTTP 429: {message}")
        elif answer.items_unknown:
            self.log.warning("Braze %s: %s.", answer.endpoint, answer.reason)
        return replace(answer, attempts=attempts)

    def _pause(self, gate: PauseGate, endpoint: str, info: RateLimitInfo) -> None:
        pause = reset_wait(info.reset, time.time())
        gate.pause(pause)
        self._counters.add("rate_limit_waits")
        self.log.warning(
            "Braze rate limit reached on %s (HTTP 429): pausing every sender for %.1f s.", endpoint, pause
        )

    def _backoff(self, endpoint: str, failures: int, allowed: int, what: str) -> None:
        delay = backoff_delay(
            failures, base=self.settings.backoff_base, cap=self.settings.backoff_max, rng=self._rng
        )
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

    def _observe(self, bucket: TokenBucket, info: RateLimitInfo) -> None:
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

    def _build_session(self) -> requests.Session:
        settings = self.settings
        session = requests.Session()
        session.auth = None
        session.proxies = dict(settings.proxies)
        session.verify = settings.verify
        session.cert = settings.cert
        session.trust_env = settings.trust_env
        if settings.max_redirects is not None:
            session.max_redirects = settings.max_redirects
        session.headers.update(settings.headers)
        session.headers.update(
            {
                "Authorization": f"Bearer {settings.api_key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": settings.user_agent,
            }
        )
        if session.trust_env:
            # Resolve what trust_env means once for this fixed endpoint (proxies and CA bundle from
            # the environment) instead of on every request — a large share of a request's CPU —
            # and so that a ~/.netrc entry can never replace the bearer token.
            environment = requests.utils.get_environ_proxies(settings.base_url)
            session.proxies = {**environment, **session.proxies}
            if session.verify is True:
                session.verify = (
                    os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
                )
            session.trust_env = False
        adapter = TCPKeepAliveAdapter(
            pool_connections=1,
            pool_maxsize=settings.max_connections,
            max_retries=0,  # every retry decision is the client's, none is urllib3's
        )
        scheme = urlsplit(settings.base_url).scheme
        if scheme not in ("http", "https"):
            raise BrazeConfigError(f"The Braze REST endpoint {settings.base_url!r} is not an http(s) URL.")
        session.mount(f"{scheme}://", adapter)
        return session

    # -- calls that raise --------------------------------------------------------------------

    def request(self, method: str, endpoint: str, **options: Any) -> BrazeResponse:
        """:meth:`send`, raising for every verdict but ``accepted`` and ``uncertain``.

        :param method: ``POST`` or ``GET``.
        :param endpoint: the REST path.
        :param options: the keyword arguments of :meth:`send`.
        :raises BrazeApiError: Braze refused the request, or 5xx / failures before sending persisted
            for ``max_attempts`` attempts, or 429 persisted for ``max_rate_limit_waits`` waits.
        :raises BrazeConfigError: the request could not be built (bad URL or header).
        """
        response = self.send(method, endpoint, **options)
        raise_for_verdict(response)
        return response

    def post(
        self, endpoint: str, body: Mapping[str, Any] | bytes, *, safe_to_retry: bool = False
    ) -> BrazeResponse:
        """POST a JSON body under the retry and rate-limit policy.

        :param endpoint: the REST path, e.g. ``/users/track``.
        :param body: the JSON object, or its serialized UTF-8 bytes.
        :param safe_to_retry: the request is idempotent (e.g. attribute-only ``/users/track``):
            retry it after a timeout or a dropped connection instead of returning an uncertain outcome.
        :return: the response: ``accepted`` (see ``minor_errors``) or ``uncertain``.
        :raises BrazeApiError: see :meth:`request`.
        :raises BrazeConfigError: see :meth:`request`.
        """
        data = body if isinstance(body, bytes) else to_json_bytes(body)
        return self.request("POST", endpoint, data=data, safe_to_retry=safe_to_retry)

    def get(self, endpoint: str, params: Mapping[str, Any] | None = None) -> BrazeResponse:
        """GET a Braze endpoint (reads are retried like 5xx when their outcome is uncertain).

        :param endpoint: the REST path, e.g. ``/campaigns/list``.
        :param params: query parameters.
        """
        return self.request("GET", endpoint, params=params, safe_to_retry=True)

    def track_users(
        self,
        attributes: Sequence[Mapping[str, Any]] | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
        purchases: Sequence[Mapping[str, Any]] | None = None,
        *,
        safe_to_retry: bool = False,
    ) -> BrazeResponse:
        """``POST /users/track`` (permission ``users.track``); the caller keeps within Braze's
        objects-per-request limit.

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
        return self.request(
            "POST",
            "/campaigns/trigger/send",
            data=to_json_bytes(body),
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


def raise_for_verdict(response: BrazeResponse) -> None:
    """Raise the error a caller of the typed calls expects for a refusal; nothing otherwise.

    :param response: a final response.
    :raises BrazeConfigError: the request could not be built.
    :raises BrazeApiError: any verdict but ``accepted`` and ``uncertain``.
    """
    if response.verdict in (Verdict.ACCEPTED, Verdict.UNCERTAIN):
        return
    if response.cause == "unbuildable":
        raise BrazeConfigError(response.reason or "the request could not be built")
    message = response.message if response.status is not None else response.reason
    raise BrazeApiError(response.endpoint, response.status, message or "", response.attempts)
