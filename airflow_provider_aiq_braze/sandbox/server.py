"""The sandbox HTTP server: routing, auth, request framing, faults and the admin API.

Stdlib only: :class:`http.server.ThreadingHTTPServer` with HTTP/1.1 keep-alive, one daemon
thread per connection. Every response is written in a single ``send`` with ``TCP_NODELAY`` so
keep-alive clients never wait on Nagle's algorithm. Header names are sent lower-case, as Braze
sends them ("HTTP headers will be returned in all lowercase characters", braze-docs:
_docs/_api/api_limits.md).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_aiq_braze.sandbox import admin, facts
from airflow_provider_aiq_braze.sandbox.config import FaultConfig, Refusals, SandboxConfig, build_config
from airflow_provider_aiq_braze.sandbox.endpoints import ENDPOINTS, Answer, QuotaExceeded
from airflow_provider_aiq_braze.sandbox.faults import BEFORE_PROCESSING, FaultDecision, FaultInjector
from airflow_provider_aiq_braze.sandbox.journal import Journal
from airflow_provider_aiq_braze.sandbox.ratelimit import FixedWindowLimiter, RateState
from airflow_provider_aiq_braze.sandbox.state import SandboxState
from airflow_provider_aiq_braze.sandbox.validation import RequestError, parse_body
from airflow_provider_aiq_braze.sandbox.wire import PHRASES, Abort, SandboxHTTPServer, WireHandler

_UNKNOWN_PATH = "(unknown)"
_UNKNOWN_PATH = "(unknown)"
#: What a gateway that gave up answers (HTML, not JSON), for the ``gateway_timeout`` fault.
_GATEWAY_TIMEOUT_PAGE = (
    b"<html><head><title>504 Gateway Time-out</title></head>"
    b"<body><center><h1>504 Gateway Time-out</h1></center></body></html>"
)
#: A 2xx body that is not JSON, for the ``non_json_body`` fault.
_NOT_JSON_PAGE = b"<html><body>OK</body></html>"
#: Faults that happen after the request was processed (journaled with their name).
_AFTER_PROCESSING = frozenset(
    {
        "drop",
        "stall",
        "gateway_timeout",
        "truncated_body",
        "empty_body",
        "non_json_body",
        "string_errors",
        "echo_key",
    }
)


def _is_loopback(host: str) -> bool:
    """Whether an address is this machine's (127.0.0.0/8, ``::1``)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _hostile_body(action: str | None, body: dict[str, Any], key: str) -> dict[str, Any]:
    """The answer body as a hostile fault rewrites it.

    ``string_errors``: ``errors`` entries as plain strings (their ``type``), or
    ``["minor error message"]`` when there were none, as RudderStack's Braze fixtures recorded.
    ``echo_key``: the request's API key appended to every minor error ``type`` and to ``dispatch_id``.

    :param action: the fault.
    :param body: the answer body.
    :param key: the request's API key.
    """
    if action == "string_errors":
        errors = body.get("errors") or [{"type": "minor error message"}]
        return {**body, "errors": [e["type"] if isinstance(e, dict) else e for e in errors]}
    if action == "echo_key":
        body = dict(body)
        if body.get("errors"):
            body["errors"] = [{**e, "type": f"{e['type']} (api key {key})"} for e in body["errors"]]
        if "dispatch_id" in body:
            body["dispatch_id"] = f"{body['dispatch_id']}-{key}"
    return body


class _Handler(WireHandler):
    """The Braze endpoints and the admin API, on one connection."""

    server: SandboxHTTPServer

    def handle_request(self, method: str) -> None:
        """Route one request to the admin API or a Braze endpoint.

        :param method: the HTTP method.
        """
        self._consumed = False
        self._rate = None
        self._group = "default"
        self._count_as = None
        path, _, query = self.path.partition("?")
        try:
            if path == "/_sandbox" or path.startswith("/_sandbox/"):
                self._admin(method, path, query)
            else:
                self._api(method, path, query)
        except Abort:
            self.close_connection = True
        except (TimeoutError, ConnectionError):
            raise
        except Exception:
            self.server.sandbox.state.count("internal_errors")
            if self.server.sandbox.config.verbose:
                traceback.print_exc()
            try:
                self._send(500, {"message": "Internal sandbox error"}, close=True)
            except OSError:
                self.close_connection = True

    # ------------------------------------------------------------------ Braze endpoints

    def _api(self, method: str, path: str, query: str) -> None:
        sandbox = self.server.sandbox
        endpoint = ENDPOINTS.get(path)
        self._group = facts.rate_group(path)
        if endpoint is None:
            self._count_as = _UNKNOWN_PATH
            self._send(404, {"message": "Not Found: no Braze endpoint at this path"})
            return
        self._count_as = path
        if method != endpoint.method:
            self._send(
                405,
                {"message": f"Method Not Allowed: use {endpoint.method}"},
                headers=[("allow", endpoint.method)],
            )
            return
        key = self._bearer_key()
        permissions = sandbox.config.permissions_of(key)
        if permissions is None:
            # The body live Braze answers; it never repeats the key (rudder-transformer network.ts).
            self._send(401, {"message": facts.INVALID_API_KEY})
            return
        if endpoint.permission not in permissions:
            # "403 Forbidden: Rate plan doesn't support or account is otherwise inactivated"
            # (errors.md); the sandbox names the missing permission.
            self._send(
                403, {"message": f"Forbidden: this API key lacks the '{endpoint.permission}' permission"}
            )
            return
        raw = self._read_body()
        if raw is None:
            return
        decision = sandbox.faults.decide(path)
        if decision.delay:
            sandbox.state.count_fault("latency")
            sandbox.stop_event.wait(decision.delay)
        if decision.action in BEFORE_PROCESSING and self._refuse_before_processing(decision, path):
            return
        now = time.time()
        self._rate = sandbox.limiter.consume(self._group, now)
        if not self._rate.allowed:
            self._send(429, {"message": facts.RATE_LIMITED})
            return
        if decision.action in BEFORE_PROCESSING and self._answer_before_processing(decision, path):
            return
        status, body = self._process(method, raw, endpoint.handler, query, decision, path)
        self._answer(status, body, decision, path, key)

    def _refuse_before_processing(self, decision: FaultDecision, path: str) -> bool:
        """Faults that come before the rate limit is counted: resets and 429 storms."""
        sandbox = self.server.sandbox
        if decision.action == "reset":
            sandbox.state.count_fault("reset")
            sandbox.state.count_request(path, "reset")
            self._reset_connection()
        if decision.action == "storm":
            sandbox.state.count_fault("storm")
            limit = sandbox.config.rate_for_group(self._group).requests
            self._rate = RateState(limit, 0, int(time.time()) + 2, allowed=False)
            self._send(429, {"message": facts.RATE_LIMITED})
            return True
        return False

    def _answer_before_processing(self, decision: FaultDecision, path: str) -> bool:
        """Faults answered instead of processing: 5xx, redirects, 413, 422."""
        action = decision.action
        self.server.sandbox.state.count_fault(action or "")
        if action == "error":
            self._send(decision.error_status, {"message": PHRASES.get(decision.error_status, "Server Error")})
        elif action == "redirect":
            # Back to this sandbox, on a path it does not serve: a client that follows lands on 404.
            location = f"/_moved{path}"
            self._send(decision.redirect_status, {"message": "Moved"}, headers=[("location", location)])
        elif action == "payload_too_large":
            self._send(413, {"message": "Payload Too Large"})
        elif action == "unprocessable":
            self._send(422, {"message": "Unprocessable Entity"})
        else:
            return False
        return True

    def _process(
        self, method: str, raw: bytes, handler: Any, query: str, decision: FaultDecision, path: str
    ) -> tuple[int, dict[str, Any]]:
        """Decode, validate and apply a request; journal it when accepted."""
        sandbox = self.server.sandbox
        body: dict[str, Any] = {}
        try:
            if method == "POST":
                content_type = self.headers.get("Content-Type", "")
                if content_type.partition(";")[0].strip().lower() != "application/json":
                    raise RequestError(400, "Content-Type must be application/json")
                body = parse_body(raw)
            answer: Answer = handler(sandbox, body, parse_qs(query))
        except QuotaExceeded as error:
            self._rate = error.rate
            return error.status, error.body()
        except RequestError as error:
            return error.status, error.body()
        if answer.rate is not None:
            self._rate = answer.rate
        if sandbox.journal is not None and 200 <= answer.status < 300:
            fault = decision.action if decision.action in _AFTER_PROCESSING else None
            sandbox.journal.write(path, answer.status, body, fault=fault, **answer.journal)
        return answer.status, answer.body

    def _answer(
        self, status: int, body: dict[str, Any], decision: FaultDecision, path: str, key: str
    ) -> None:
        """Send the answer, as the fault drawn for this request (if any) changes it."""
        sandbox = self.server.sandbox
        action = decision.action
        if action not in _AFTER_PROCESSING:
            self._send(status, body)
            return
        sandbox.state.count_fault(action)  # type: ignore[arg-type]
        if action == "drop":
            sandbox.state.count_request(path, "dropped")
            self.close_connection = True
            raise Abort
        if action == "stall":
            sandbox.stop_event.wait(decision.stall_seconds)
        elif action == "gateway_timeout":
            self._write(504, _GATEWAY_TIMEOUT_PAGE, content_type="text/html")
            return
        elif 200 <= status < 300 and action in ("truncated_body", "empty_body", "non_json_body"):
            payload = json.dumps(body, separators=(",", ":")).encode()
            if action == "truncated_body":
                self._write(status, payload[: len(payload) // 2], declared_length=len(payload), close=True)
            elif action == "empty_body":
                self._write(status, b"")
            else:
                self._write(status, _NOT_JSON_PAGE, content_type="text/html")
            return
        self._send(status, _hostile_body(action, body, key))

    def _bearer_key(self) -> str:
        value = self.headers.get("Authorization") or ""
        scheme, _, key = value.partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    # ------------------------------------------------------------------ admin API

    def _admin(self, method: str, path: str, query: str) -> None:
        sandbox = self.server.sandbox
        if sandbox.config.admin_loopback_only and not _is_loopback(str(self.client_address[0])):
            self._send(403, {"message": "The sandbox admin API answers loopback clients only"})
            return
        name = path[len("/_sandbox/") :].strip("/")
        readable, writable = name in admin.READERS, name in admin.WRITERS
        if not readable and not writable:
            self._send(404, {"message": f"Unknown sandbox admin path {path[:80]!r}"})
            return
        if method == "GET" and readable:
            self._send(200, admin.READERS[name](sandbox, parse_qs(query)))
            return
        if method != "POST" or not writable:
            allowed = ", ".join(m for m, ok in (("GET", readable), ("POST", writable)) if ok)
            self._send(405, {"message": "Method Not Allowed"}, headers=[("allow", allowed)])
            return
        raw = self._read_body()
        if raw is None:
            return
        try:
            answer = admin.write(sandbox, name, parse_body(raw) if raw.strip() else {})
        except RequestError as error:
            self._send(error.status, error.body())
            return
        except (TypeError, ValueError) as error:
            self._send(400, {"message": f"Invalid {name} settings: {error}"})
            return
        self._send(200, answer)


class BrazeSandbox:
    """A local, strict emulator of the Braze REST endpoints this provider uses.

    Use it as a context manager or call :meth:`start` and :meth:`stop`::

        with BrazeSandbox(api_keys={"sk-test": None}) as sandbox:
            requests.post(f"{sandbox.base_url}/users/track", ...)
            sandbox.state.profile("user-1")

    :param config: the configuration (default: :class:`SandboxConfig` defaults).
    :param overrides: fields of :class:`SandboxConfig` or :class:`FaultConfig` to change, plus
        ``api_key`` and ``permissions`` (see :func:`build_config`).
    """

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        self.config = build_config(config, **overrides)
        self.state = SandboxState(self.config.log_limit, self.config.seed)
        self.limiter = FixedWindowLimiter(self.config.rate_for_group)
        self.faults = FaultInjector(self.config.faults, self.config.seed)
        self.refusals: Refusals = self.config.refusals
        self.stop_event = threading.Event()
        self.journal: Journal | None = None
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving in a background thread.

        :return: the base URL, e.g. ``http://127.0.0.1:53127``.
        """
        if self._server is not None:
            return self.base_url
        self.stop_event.clear()
        if self.config.journal is not None and self.journal is None:
            self.journal = Journal(self.config.journal)
        self._server = SandboxHTTPServer(self, (self.config.host, self.config.port), _Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="braze-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving, end open connections and close the journal."""
        server, self._server = self._server, None
        self.stop_event.set()
        if server is not None:
            stopper = threading.Thread(target=server.shutdown, name="braze-sandbox-stop", daemon=True)
            stopper.start()
            self._wake(server)
            stopper.join()
            server.close_connections()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    @staticmethod
    def _wake(server: SandboxHTTPServer) -> None:
        """Connect once so the serve loop leaves its ``select`` now instead of at the next poll."""
        host, port = server.server_address[:2]
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - connecting, not binding
            host = "127.0.0.1" if server.address_family == socket.AF_INET else "::1"
        with contextlib.suppress(OSError), socket.create_connection((str(host), int(port)), timeout=0.5):
            pass

    def __enter__(self) -> BrazeSandbox:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the Braze sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The REST base URL to give the Braze connection."""
        host = self.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    @property
    def api_key(self) -> str | None:
        """The first configured API key (the one the fixtures use)."""
        return next(iter(self.config.api_keys), None)

    @property
    def fault_config(self) -> FaultConfig:
        """The faults in force (counters show what is left)."""
        return self.faults.config

    def set_faults(self, *, clear: bool = False, **changes: Any) -> FaultConfig:
        """Change faults at runtime.

        :param clear: start from no faults instead of the current settings.
        :param changes: :class:`FaultConfig` fields; ``seed=N`` also restarts the generator.
        :return: the faults now in force.
        """
        reseed = "seed" in changes
        seed = changes.pop("seed", None)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer")
        if "endpoints" in changes and changes["endpoints"] is not None:
            changes["endpoints"] = tuple(changes["endpoints"])
        base = FaultConfig() if clear else self.faults.config
        new = base.updated(changes)
        self.faults.configure(new, seed=seed, reseed=reseed)
        return new

    def set_refusals(
        self, *, ids: Iterable[str] = (), prefixes: Iterable[str] = (), clear: bool = False
    ) -> Refusals:
        """Refuse more identifiers at runtime, as live Braze refuses identifiers it does not accept.

        :param ids: identifiers to refuse exactly.
        :param prefixes: identifier prefixes to refuse.
        :param clear: forget the refusals in force first (``clear=True`` alone refuses nothing).
        :return: the refusals now in force.
        """
        self.refusals = self.refusals.merged(ids, prefixes, clear=clear)
        return self.refusals

    def reset(self) -> None:
        """Back to freshly started: empty state, fresh rate windows, start-up faults, seed and refusals."""
        self.state.reset()
        self.limiter.reset()
        self.faults.configure(self.config.faults, seed=self.config.seed, reseed=True)
        self.refusals = self.config.refusals
