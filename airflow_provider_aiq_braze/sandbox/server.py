"""The sandbox HTTP server: routing, auth, request framing, faults and the admin API.

Stdlib only: :class:`http.server.ThreadingHTTPServer` with HTTP/1.1 keep-alive, one daemon
thread per connection. Every response is written in a single ``send`` with ``TCP_NODELAY`` so
keep-alive clients never wait on Nagle's algorithm.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from airflow_provider_aiq_braze.braze.instances import is_loopback
from airflow_provider_aiq_braze.braze.limits import ENDPOINT_PERMISSIONS, MAX_REQUEST_BYTES, rate_group
from airflow_provider_aiq_braze.sandbox.config import FaultConfig, SandboxConfig, build_config
from airflow_provider_aiq_braze.sandbox.faults import FaultInjector
from airflow_provider_aiq_braze.sandbox.journal import Journal
from airflow_provider_aiq_braze.sandbox.ratelimit import FixedWindowLimiter, RateState
from airflow_provider_aiq_braze.sandbox.state import SandboxState, SendIdQuotaExceeded
from airflow_provider_aiq_braze.sandbox.validation import (
    RequestError,
    parse_body,
    parse_body_counting_floats,
    validate_campaign_and_send_id,
    validate_export,
    validate_track,
    validate_trigger,
)

#: How long a lingering close keeps reading what a refused client is still sending.
_LINGER_SECONDS = 2.0
#: At most this much of a refused body is read and discarded during a lingering close.
_LINGER_MAX_BYTES = 64 * 1024 * 1024
_UNKNOWN_PATH = "(unknown)"

_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


#: Header limits, as in :mod:`http.client`.
_MAX_HEADERS = 100
_MAX_LINE = 65536


class _Headers(dict[str, str]):
    """Request headers with case-insensitive :meth:`get` (keys are stored lower-case)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """A header's value.

        :param name: the header name, any case.
        :param default: returned when absent.
        """
        return dict.get(self, name.lower(), default)


class _Abort(Exception):
    """The connection is closed on purpose; nothing more is written."""


Handler = Callable[["_Handler", dict[str, Any]], tuple[int, dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class _Endpoint:
    method: str
    permission: str
    handler: Handler


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its sandbox and its open connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sandbox: BrazeSandbox, address: tuple[str, int]) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer`` does (it can take seconds)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Remember the connection so :meth:`close_connections` can end it.

        :param request: the accepted socket.
        :param client_address: the peer address.
        """
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget and close a connection.

        :param request: the socket.
        """
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open client connection, waking the threads blocked on them."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that vanish, unless verbose.

        :param request: the socket.
        :param client_address: the peer address.
        """
        if self.sandbox.config.verbose:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection; one :meth:`_handle` call per request."""

    protocol_version = "HTTP/1.1"
    server_version = "BrazeSandbox/1.0"
    sys_version = ""
    server: _Server

    _consumed = True
    _rate: RateState | None = None
    _group = "default"
    _count_as: str | None = None
    _size_bound: int | None = None

    # ------------------------------------------------------------------ plumbing

    def setup(self) -> None:
        """Apply the client socket timeout and disable Nagle's algorithm."""
        self.timeout = self.server.sandbox.config.client_timeout  # type: ignore[misc]
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr only when verbose; request lines only, never headers.

        :param format: a %-format string.
        :param args: its arguments.
        """
        if self.server.sandbox.config.verbose:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a malformed request (bad request line, headers) with JSON and close.

        :param code: the HTTP status.
        :param message: a short reason.
        :param explain: ignored.
        """
        self._consumed = True
        self._send(code, {"message": message or _PHRASES.get(code, "Error")}, close=True, count=False)

    def parse_request(self) -> bool:
        """Parse the request line and headers (a lean version of the stdlib's, same rules).

        The stdlib parses headers with the ``email`` package, the largest fixed cost per request;
        this reads them into a case-insensitive dict instead. On failure an error was sent.
        """
        self.command = None  # type: ignore[assignment]
        self.request_version = self.default_request_version
        self.close_connection = True
        requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")  # type: ignore[attr-defined]
        self.requestline = requestline
        words = requestline.split()
        if not words:
            return False
        if len(words) != 3:
            self.send_error(400, "Bad request syntax")
            return False
        command, path, version = words
        major, dot, minor = version[5:].partition(".")
        if not version.startswith("HTTP/") or not dot or not major.isdigit() or not minor.isdigit():
            self.send_error(400, "Bad request version")
            return False
        if len(major) > 10 or len(minor) > 10 or int(major) >= 2:
            self.send_error(505, "HTTP Version Not Supported")
            return False
        if (int(major), int(minor)) >= (1, 1):
            self.close_connection = False
        self.command, self.path, self.request_version = command, path, version
        headers = _Headers()
        for _ in range(_MAX_HEADERS + 1):
            line = self.rfile.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                self.send_error(431, "Header line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(line, "iso-8859-1").partition(":")
            if not sep or not name.strip():
                self.send_error(400, "Bad header line")
                return False
            key = name.strip().lower()
            value = value.strip()
            if key == "content-length" and key in headers and headers[key] != value:
                self.send_error(400, "Conflicting Content-Length headers")
                return False
            headers[key] = value
        else:
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        connection = headers.get("connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if headers.get("expect", "").lower() == "100-continue" and version >= "HTTP/1.1":
            return bool(self.handle_expect_100())
        return True

    def do_GET(self) -> None:
        """Handle GET."""
        self._handle("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._handle("POST")

    def do_PUT(self) -> None:
        """Handle PUT (always 405 or 404)."""
        self._handle("PUT")

    def do_DELETE(self) -> None:
        """Handle DELETE (always 405 or 404)."""
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        """Handle PATCH (always 405 or 404)."""
        self._handle("PATCH")

    def do_HEAD(self) -> None:
        """Handle HEAD (always 405 or 404, without a body)."""
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        """Handle OPTIONS (always 405 or 404)."""
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        self._consumed = False
        self._rate = None
        self._group = "default"
        self._count_as = None
        self._size_bound = None
        path, _, query = self.path.partition("?")
        try:
            if path == "/_sandbox" or path.startswith("/_sandbox/"):
                self._admin(method, path, query)
            else:
                self._api(method, path)
        except _Abort:
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

    def _send(
        self,
        status: int,
        body: dict[str, Any] | None,
        *,
        headers: list[tuple[str, str]] | None = None,
        close: bool = False,
        count: bool = True,
    ) -> None:
        """Write one complete response in a single ``send``."""
        if not self._consumed:
            close = self._discard_body() or close
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        rate = self._rate or self.server.sandbox.limiter.peek(self._group, time.time())
        lines = [
            f"HTTP/1.1 {status} {_PHRASES.get(status, 'Unknown')}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            f"Date: {_http_date()}",
            f"X-RateLimit-Limit: {rate.limit}",
            f"X-RateLimit-Remaining: {rate.remaining}",
            f"X-RateLimit-Reset: {rate.reset}",
        ]
        if headers:
            lines.extend(f"{name}: {value}" for name, value in headers)
        if close or self.close_connection:
            self.close_connection = True
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            data += payload
        if count and self._count_as is not None:
            self.server.sandbox.state.count_request(self._count_as, str(status))
        self.wfile.write(data)
        if self.server.sandbox.config.verbose:
            self.log_request(status, len(payload))
        if close:
            self._linger()

    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None or self.headers.get("Transfer-Encoding"):
            return None
        try:
            length = int(value)
        except ValueError:
            return None
        return length if length >= 0 else None

    def _discard_body(self) -> bool:
        """Read and drop a body nobody will look at; returns whether the connection must close."""
        self._consumed = True
        length = self._content_length()
        if length is None:
            return bool(self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length"))
        if length > MAX_REQUEST_BYTES:
            return True
        self.rfile.read(length)
        return False

    def _linger(self) -> None:
        """Half-close, then drain what the client still sends so it can read our answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_SECONDS)
            deadline = time.monotonic() + _LINGER_SECONDS
            drained = 0
            while drained < _LINGER_MAX_BYTES and time.monotonic() < deadline:
                chunk = self.rfile.read1(65536)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass

    def _read_body(self) -> bytes | None:
        """Read the request body, answering 411/413/400 itself when it can't; ``None`` then."""
        if self.headers.get("Transfer-Encoding"):
            self._consumed = True
            self._send(
                411,
                {"message": "Length Required: send the body with a Content-Length (chunked is not accepted)"},
                close=True,
            )
            return None
        value = self.headers.get("Content-Length")
        if value is None:
            self._consumed = True
            if self.command == "POST":
                self._send(411, {"message": "Length Required: send the body with a Content-Length"})
                return None
            return b""
        length = self._content_length()
        if length is None:
            self._consumed = True
            self._send(400, {"message": "Invalid Content-Length header"}, close=True)
            return None
        if length > MAX_REQUEST_BYTES:
            self._consumed = True
            self._send(
                413,
                {"message": f"Payload Too Large: the body is {length} bytes, at most {MAX_REQUEST_BYTES}"},
                close=True,
            )
            return None
        raw = self.rfile.read(length)
        self._consumed = True
        if len(raw) < length:
            raise _Abort
        return raw

    def _reset_connection(self) -> None:
        """Close the socket with an RST and no response."""
        self._consumed = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        raise _Abort

    # ------------------------------------------------------------------ Braze endpoints

    def _api(self, method: str, path: str) -> None:
        sandbox = self.server.sandbox
        endpoint = _ENDPOINTS.get(path)
        self._group = rate_group(path)
        if endpoint is None:
            self._count_as = _UNKNOWN_PATH
            self._send(404, {"message": "Not Found: no Braze endpoint at this path"})
            return
        self._count_as = path
        if method != endpoint.method:
            self._send(
                405,
                {"message": f"Method Not Allowed: use {endpoint.method}"},
                headers=[("Allow", endpoint.method)],
            )
            return
        permissions = sandbox.config.permissions_of(self._bearer_key())
        if permissions is None:
            self._send(401, {"message": _invalid_key_message(self.headers.get("Authorization"))})
            return
        if endpoint.permission not in permissions:
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
        if decision.action == "reset":
            sandbox.state.count_fault("reset")
            sandbox.state.count_request(path, "reset")
            self._reset_connection()
        now = time.time()
        if decision.action == "storm":
            sandbox.state.count_fault("storm")
            limit = sandbox.config.rate_for_group(self._group).requests
            self._rate = RateState(limit, 0, int(now) + 2, allowed=False)
            self._send(429, {"message": "Rate limit exceeded"})
            return
        self._rate = sandbox.limiter.consume(self._group, now)
        if not self._rate.allowed:
            self._send(429, {"message": "Rate limit exceeded"})
            return
        if decision.action == "error":
            sandbox.state.count_fault("error")
            self._send(decision.error_status, {"message": _PHRASES[decision.error_status]})
            return
        try:
            if method == "POST":
                content_type = self.headers.get("Content-Type", "")
                if content_type.partition(";")[0].strip().lower() != "application/json":
                    raise RequestError(400, "Content-Type must be application/json")
                body, floats = parse_body_counting_floats(raw)
                self._size_bound = len(raw) + 14 * floats
            else:
                body = {}
            status, response, info = endpoint.handler(self, body)
        except RequestError as error:
            self._send(error.status, {"message": error.message})
            return
        if sandbox.journal is not None and 200 <= status < 300:
            fault = decision.action if decision.action in ("drop", "stall") else None
            sandbox.journal.write(path, status, body, fault=fault, **info)
        if decision.action == "drop":
            sandbox.state.count_fault("drop")
            sandbox.state.count_request(path, "dropped")
            self.close_connection = True
            raise _Abort
        if decision.action == "stall":
            sandbox.state.count_fault("stall")
            sandbox.stop_event.wait(decision.stall_seconds)
        self._send(status, response)

    def _bearer_key(self) -> str:
        value = self.headers.get("Authorization") or ""
        scheme, _, key = value.partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def _users_track(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        config = self.server.sandbox.config
        valid, errors, sizes = validate_track(
            body,
            rule=config.object_count_rule,
            properties_max_bytes=config.properties_max_bytes,
            size_bound=self._size_bound,
        )
        rejected: dict[str, int] = {}
        for error in errors:
            rejected[error["input_array"]] = rejected.get(error["input_array"], 0) + 1
        processed = {array: n - rejected.get(array, 0) for array, n in sizes.items()}
        self.server.sandbox.state.apply_track(valid, processed, len(errors))
        response: dict[str, Any] = {"message": "success"}
        for array, n in processed.items():
            response[f"{array}_processed"] = n
        if errors:
            response["errors"] = errors
        return 201, response, {}

    def _trigger_send(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        sandbox = self.server.sandbox
        recipients, errors, fields = validate_trigger(
            body, properties_max_bytes=sandbox.config.properties_max_bytes
        )
        record = sandbox.state.apply_trigger(recipients, fields, len(errors))
        response: dict[str, Any] = {"dispatch_id": record["dispatch_id"], "message": "success"}
        if errors:
            response["errors"] = errors
        return 201, response, {"dispatch_id": record["dispatch_id"], "send_id": fields["send_id"]}

    def _send_id_create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        sandbox = self.server.sandbox
        campaign_id, send_id = validate_campaign_and_send_id(body)
        per_day = sandbox.config.send_ids_per_day
        midnight = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        reset = int((midnight + timedelta(days=1)).timestamp())
        try:
            created, remaining = sandbox.state.create_send_id(campaign_id, send_id, per_day)
        except SendIdQuotaExceeded:
            self._rate = RateState(per_day, 0, reset, allowed=False)
            raise RequestError(
                429, f"Rate limit exceeded: at most {per_day} send identifiers can be created per day"
            ) from None
        self._rate = RateState(per_day, remaining, reset)
        return 201, {"send_id": created, "message": "success"}, {"send_id": created}

    def _export_ids(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        identities, raw_ids, fields = validate_export(body)
        return 201, self.server.sandbox.state.export(identities, raw_ids, fields), {}

    def _campaigns_list(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        return 200, {"campaigns": [], "message": "success"}, {}

    # ------------------------------------------------------------------ admin API

    def _admin(self, method: str, path: str, query: str) -> None:
        sandbox = self.server.sandbox
        if sandbox.config.admin_loopback_only and not is_loopback(str(self.client_address[0])):
            self._send(403, {"message": "The sandbox admin API answers loopback clients only"})
            return
        name = path[len("/_sandbox/") :].strip("/")
        params = parse_qs(query)
        state = sandbox.state
        readers: dict[str, Callable[[], Any]] = {
            "health": lambda: {"status": "ok"},
            "profiles": lambda: {"profiles": self._profiles(params)},
            "events": lambda: {"events": state.events(params["name"][0] if "name" in params else None)},
            "purchases": lambda: {"purchases": state.purchases()},
            "dispatches": lambda: {"dispatches": state.dispatches()},
            "messages": lambda: {"messages": state.messages()},
            "send_ids": lambda: {"send_ids": state.send_ids()},
            "stats": state.stats,
            "faults": lambda: {"faults": sandbox.fault_config.as_dict()},
        }
        writers = {"faults", "reset"}
        if name not in readers and name not in writers:
            self._send(404, {"message": f"Unknown sandbox admin path {path[:80]!r}"})
            return
        if method == "GET" and name in readers:
            self._send(200, readers[name]())
            return
        if method != "POST" or name not in writers:
            allowed = ", ".join(m for m, ok in (("GET", name in readers), ("POST", name in writers)) if ok)
            self._send(405, {"message": "Method Not Allowed"}, headers=[("Allow", allowed)])
            return
        raw = self._read_body()
        if raw is None:
            return
        if name == "reset":
            sandbox.reset()
            self._send(200, {"message": "reset"})
            return
        try:
            changes = parse_body(raw) if raw.strip() else {}
            clear = bool(changes.pop("clear", False))
            reseed = "seed" in changes
            seed = changes.pop("seed", None)
            faults = sandbox.set_faults(clear=clear, **({"seed": seed} if reseed else {}), **changes)
        except RequestError as error:
            self._send(error.status, {"message": error.message})
            return
        except (TypeError, ValueError) as error:
            self._send(400, {"message": f"Invalid fault settings: {error}"})
            return
        self._send(200, {"faults": faults.as_dict()})

    def _profiles(self, params: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = self.server.sandbox.state
        if "external_id" in params:
            found = state.profile(params["external_id"][0])
            return [found] if found else []
        if "braze_id" in params:
            found = state.profile_by_braze_id(params["braze_id"][0])
            return [found] if found else []
        return state.profiles()


def _invalid_key_message(header: str | None) -> str:
    """A 401 message that never repeats the key."""
    if not header:
        return "Invalid API key: no 'Authorization: Bearer <REST API key>' header was sent"
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer":
        return "Invalid API key: use the 'Authorization: Bearer <REST API key>' scheme"
    key = key.strip()
    if key[:1] in ("'", '"'):
        return "Invalid API key: the key is wrapped in quotes; send it without them"
    return "Invalid API key: the key is not valid for this workspace or instance"


_ENDPOINTS: dict[str, _Endpoint] = {
    "/users/track": _Endpoint("POST", ENDPOINT_PERMISSIONS["/users/track"], _Handler._users_track),
    "/campaigns/trigger/send": _Endpoint(
        "POST", ENDPOINT_PERMISSIONS["/campaigns/trigger/send"], _Handler._trigger_send
    ),
    "/sends/id/create": _Endpoint("POST", ENDPOINT_PERMISSIONS["/sends/id/create"], _Handler._send_id_create),
    "/users/export/ids": _Endpoint("POST", ENDPOINT_PERMISSIONS["/users/export/ids"], _Handler._export_ids),
    "/campaigns/list": _Endpoint("GET", ENDPOINT_PERMISSIONS["/campaigns/list"], _Handler._campaigns_list),
}


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
        self.stop_event = threading.Event()
        self.journal: Journal | None = None
        self._server: _Server | None = None
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
        self._server = _Server(self, (self.config.host, self.config.port))
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
    def _wake(server: _Server) -> None:
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

    def reset(self) -> None:
        """Back to freshly started: empty state, fresh rate windows, start-up faults and seed."""
        self.state.reset()
        self.limiter.reset()
        self.faults.configure(self.config.faults, seed=self.config.seed, reseed=True)
