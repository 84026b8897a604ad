"""Every answer Braze gives, classified in one place, free of the API key.

:func:`classify` is a pure function from what came back for one request (status, headers, body
bytes or the failure to read them, or the transport exception and whether the request had left the
process) to a :class:`~airflow_provider_aiq_braze.braze.responses.BrazeResponse` carrying its
:class:`~airflow_provider_aiq_braze.braze.responses.Verdict`. The table of ``docs/guarantees.md``
is this function in words; keep them together.

Every text Braze provides (messages, minor-error types, ``dispatch_id``, any body) passes through a
:class:`Scrubber` here, before anything downstream (rejects, ledger, logs, results) can see it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
import urllib3.exceptions

from airflow_provider_aiq_braze.braze.encoding import to_json
from airflow_provider_aiq_braze.braze.limits import ENDPOINT_PERMISSIONS
from airflow_provider_aiq_braze.braze.ratelimit import RateLimitInfo, parse_rate_limit_headers
from airflow_provider_aiq_braze.braze.responses import BrazeResponse, Verdict, parse_minor_errors

#: Braze's answers that mean "more objects in one request than this account allows": the setup's
#: ``batch_size`` is too high, the rows are fine.
OBJECT_LIMIT_MESSAGES = (
    "max input length exceeded",
    "the max number of external_ids and aliases per request was exceeded",
)

#: Shorter secrets are not scrubbed (they would mangle ordinary text); keys are far longer.
MIN_SECRET_LENGTH = 4

_MASK = "***"


class Scrubber:
    """Removes the API key (and its obvious variants) from any text.

    :param secrets: the raw connection password and the key as used; each is scrubbed as given,
        stripped of surrounding whitespace, and behind ``Bearer``.
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        found: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            for variant in (secret, secret.strip(), " ".join(secret.split())):
                if len(variant) >= MIN_SECRET_LENGTH:
                    found.add(variant)
        # longest first, so a variant that contains another is replaced whole
        self._secrets = sorted(found, key=len, reverse=True)

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by ``***``.

        :param value: any text.
        """
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, _MASK)
        return value

    def value(self, value: Any) -> Any:
        """A JSON value with every string in it (keys included) scrubbed.

        :param value: a decoded JSON value.
        """
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value


#: A scrubber that knows no secret.
NO_SECRETS = Scrubber()


def classify(
    endpoint: str,
    status: int | None = None,
    headers: Mapping[str, Any] | None = None,
    body: bytes | None = None,
    *,
    read_error: BaseException | None = None,
    error: BaseException | None = None,
    left_process: bool = True,
    host: str = "",
    scrub: Scrubber = NO_SECRETS,
) -> BrazeResponse:
    """The verdict of one answer, or of one failure to get an answer.

    :param endpoint: the REST path of the request, e.g. ``/users/track``.
    :param status: the HTTP status, ``None`` when no answer came (``error`` is then set).
    :param headers: the answer's headers.
    :param body: the answer's body bytes as read (possibly partial when ``read_error`` is set).
    :param read_error: the exception raised while reading the body, if any.
    :param error: the exception raised instead of an answer (transport or building the request).
    :param left_process: for ``error``: whether the request had been handed to the transport (when
        false, it certainly never left the process).
    :param host: the host of the REST endpoint, for messages.
    :param scrub: removes the API key from every text kept.
    """
    if error is not None or status is None:
        failure = error if error is not None else RuntimeError("no answer")
        return _transport_failure(endpoint, failure, left_process=left_process, host=host, scrub=scrub)
    rate_limit = parse_rate_limit_headers(headers or {})
    decoded, excerpt = _decode(body or b"", scrub)
    answer = _Answer(endpoint, status, decoded, rate_limit)
    if 200 <= status < 300:
        return _success(answer, body or b"", read_error, excerpt, scrub)
    message = scrub.text(_message(decoded, excerpt, status))
    if read_error is not None:
        message = f"{message} (the body could not be read whole: {_describe(read_error, scrub)})"
    answer.message = message
    if 300 <= status < 400:
        location = scrub.text(str((headers or {}).get("Location") or (headers or {}).get("location") or ""))
        return answer.make(Verdict.SETUP_ERROR, "redirect", _redirect_advice(status, location, host))
    if status == 429:
        return answer.make(Verdict.RATE_LIMITED, "rate_limit", f"HTTP 429 (rate limited): {message}")
    if status >= 500:
        if status == 504:
            return answer.make(
                Verdict.UNCERTAIN, "gateway", "HTTP 504: the gateway timed out waiting for Braze"
            )
        return answer.make(Verdict.RETRY, "server", f"HTTP {status}: {message}")
    return _client_error(answer, host)


class _Answer:
    """What :func:`classify` knows of an HTTP answer while it decides."""

    def __init__(
        self, endpoint: str, status: int, decoded: dict[str, Any] | None, rate_limit: RateLimitInfo
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.decoded = decoded
        self.rate_limit = rate_limit
        self.message: str | None = None

    def make(self, verdict: Verdict, cause: str, reason: str | None, **more: Any) -> BrazeResponse:
        return BrazeResponse(
            endpoint=self.endpoint,
            verdict=verdict,
            status=self.status,
            body=self.decoded or {},
            reason=reason,
            message=self.message,
            cause=cause,
            rate_limit=self.rate_limit,
            **more,
        )


def _success(
    answer: _Answer, body: bytes, read_error: BaseException | None, excerpt: str, scrub: Scrubber
) -> BrazeResponse:
    status = answer.status
    if read_error is not None:
        # The status came back: Braze processed the request. Which objects it refused is lost.
        answer.decoded = None
        return answer.make(
            Verdict.ACCEPTED,
            "truncated",
            f"HTTP {status} whose body could not be read whole ({_describe(read_error, scrub)}): "
            "the request was processed, but which objects Braze refused (if any) is unknown",
            items_unknown=True,
        )
    if not body.strip():
        return answer.make(Verdict.ACCEPTED, "", None)
    if answer.decoded is None:
        # A 2xx is Braze's "processed" (the verdict table fixes it); what it refused is unknown.
        answer.message = excerpt
        return answer.make(
            Verdict.ACCEPTED,
            "not_json",
            f"HTTP {status} without a JSON body ({excerpt[:80]!r}; is a proxy answering instead of "
            "Braze?): the request was processed, but which objects Braze refused (if any) is unknown",
            items_unknown=True,
        )
    return answer.make(Verdict.ACCEPTED, "", None, minor_errors=parse_minor_errors(answer.decoded))


def _client_error(answer: _Answer, host: str) -> BrazeResponse:
    """4xx other than 429."""
    status, endpoint, message = answer.status, answer.endpoint, answer.message or ""
    where = f"{host}{endpoint}" if host else endpoint
    if status == 401:
        return answer.make(
            Verdict.SETUP_ERROR,
            "auth",
            f"Braze refused the REST API key (HTTP 401 at {where}): check the connection's Password; "
            "401 also comes from a key of another instance (Host must be your instance's REST "
            f"endpoint) or a key in quotes. Braze said: {message}",
        )
    if status == 403:
        permission = ENDPOINT_PERMISSIONS.get(endpoint, "the endpoint's permission")
        return answer.make(
            Verdict.SETUP_ERROR,
            "permission",
            f"Braze refused the request (HTTP 403 at {where}): the REST API key lacks the permission "
            f"{permission}, or the workspace is inactive. Add {permission} to the key under Settings > "
            f"APIs and Identifiers. Braze said: {message}",
        )
    if status in (404, 405, 410):
        return answer.make(
            Verdict.SETUP_ERROR,
            "endpoint",
            f"HTTP {status} for {where}: Host is not the Braze REST API (use your instance's REST "
            "endpoint, https://rest.<instance>.braze.com, without a path, or check the proxy in "
            f"front of it). The answer was: {message}",
        )
    if any(text in message.lower() for text in OBJECT_LIMIT_MESSAGES):
        return answer.make(
            Verdict.SETUP_ERROR,
            "batch_size",
            f"Braze refused the number of objects in one request (HTTP {status}: {message}): this "
            "account's limit is lower than the operator's batch_size. Lower batch_size (e.g. "
            "batch_size=50 for /users/track on contracts counting 50 objects combined); the rows are fine.",
        )
    if status == 408:
        return answer.make(Verdict.RETRY, "server", f"HTTP 408: {message}")
    minor_errors = parse_minor_errors(answer.decoded) if answer.decoded else ()
    if any(error.index is not None for error in minor_errors):
        return answer.make(
            Verdict.REFUSED_ITEMS,
            "items",
            f"HTTP {status}: Braze refused the objects it named and processed none: {message}",
            minor_errors=minor_errors,
        )
    return answer.make(Verdict.REFUSED, "content", f"Braze refused the request (HTTP {status}): {message}")


def _redirect_advice(status: int, location: str, host: str) -> str:
    where = f" to {location}" if location else ""
    return (
        f"{host or 'The host'} answered HTTP {status} (a redirect{where}). Braze's REST API never "
        "redirects: Host is probably not your REST endpoint (use https://rest.<instance>.braze.com), "
        "or a proxy redirects; fix Host (or set the extra allow_redirects only if a trusted proxy "
        "requires it)."
    )


def _transport_failure(
    endpoint: str, error: BaseException, *, left_process: bool, host: str, scrub: Scrubber
) -> BrazeResponse:
    what = _describe(error, scrub)
    where = host or "the host"

    def make(verdict: Verdict, cause: str, reason: str) -> BrazeResponse:
        return BrazeResponse(endpoint=endpoint, verdict=verdict, reason=reason, message=what, cause=cause)

    kind = transport_kind(error) if left_process else ("unbuildable" if _unbuildable(error) else "pre-send")
    if kind == "unbuildable":
        return make(
            Verdict.SETUP_ERROR,
            "unbuildable",
            f"The request to {where}{endpoint} could not be built: {what}. Check the connection's "
            "Host and the extras sent as HTTP headers (no line breaks, Latin-1 text only).",
        )
    if kind == "tls":
        return make(
            Verdict.SETUP_ERROR, "tls", f"TLS failure talking to {where}: {what} (check 'verify'/'cert')"
        )
    if kind == "pre-send":
        return make(Verdict.RETRY, "connect", f"could not connect to {where}: {what}")
    return make(Verdict.UNCERTAIN, "transport", f"{what} after the request was sent")


def transport_kind(error: BaseException) -> str:
    """Where a request failed: ``pre-send`` (never sent), ``tls``, ``unbuildable`` or ``uncertain``.

    :param error: what ``requests`` (or the code under it) raised instead of an answer.
    """
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "pre-send"
    if isinstance(error, requests.exceptions.SSLError):
        return "tls"
    if _unbuildable(error):
        return "unbuildable"
    if isinstance(error, requests.exceptions.ConnectionError):
        for cause in exception_chain(error):
            # NewConnectionError (refused, unreachable, DNS via NameResolutionError) subclasses it.
            if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
                return "pre-send"
    return "uncertain"


def _unbuildable(error: BaseException) -> bool:
    """A request that could not be built: bad URL, bad header (CR/LF, non-Latin-1), bad body."""
    if isinstance(
        error,
        requests.exceptions.InvalidURL
        | requests.exceptions.InvalidHeader
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidJSONError,
    ):
        return True
    # http.client refuses a bad header with a plain ValueError before writing anything
    return not isinstance(error, requests.RequestException) and isinstance(error, ValueError | TypeError)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (``args``, urllib3's ``reason``, causes).

    :param exc: the outermost exception.
    """
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


def _describe(exc: BaseException, scrub: Scrubber) -> str:
    """``OuterClass (InnermostClass: detail)`` for a failure, short, without headers or the key."""
    chain = list(exception_chain(exc))
    inner = chain[-1]
    for candidate in chain[1:]:
        if not isinstance(candidate, requests.RequestException | urllib3.exceptions.MaxRetryError):
            inner = candidate
            break
    detail = scrub.text(str(inner).split("(Caused by", 1)[0].strip())
    if len(detail) > 200:
        detail = detail[:200] + "..."
    if inner is exc:
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{type(exc).__name__} ({type(inner).__name__}: {detail})" if detail else type(exc).__name__


def describe(exc: BaseException, scrub: Scrubber = NO_SECRETS) -> str:
    """A short description of an exception, free of the key (for logs and messages).

    :param exc: the exception.
    :param scrub: removes the API key.
    """
    return _describe(exc, scrub)


def _decode(content: bytes, scrub: Scrubber) -> tuple[dict[str, Any] | None, str]:
    """The body's JSON object (``None`` when it is not one), scrubbed, and a short text excerpt."""
    excerpt = scrub.text(" ".join(content[:300].decode("utf-8", "replace").split()))
    if not content.strip():
        return None, excerpt
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None, excerpt
    return (scrub.value(value) if isinstance(value, dict) else None), excerpt


def _message(body: Mapping[str, Any] | None, excerpt: str, status: int) -> str:
    """Braze's ``message`` (with its ``errors`` if any), or an excerpt of a non-JSON body."""
    if body:
        message = str(body.get("message") or "").strip()
        errors = body.get("errors")
        if errors:
            try:
                shown = to_json(errors if not isinstance(errors, list) else errors[:5])
            except (ValueError, RecursionError):
                shown = repr(errors)
            message = f"{message} {shown[:300]}".strip()
        if message:
            return message
    return excerpt[:200] or f"HTTP {status} with an empty body"
