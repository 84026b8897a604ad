"""The HTTP/1.1 wire layer of the sandbox: a lean request parser, single-``send`` responses,
lingering closes and connection bookkeeping. Stdlib only.

:class:`WireHandler` parses requests and writes answers; the Braze handler of
:mod:`~airflow_provider_aiq_braze.sandbox.server` subclasses it and implements
:meth:`WireHandler.handle_request`.
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
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from airflow_provider_aiq_braze.sandbox import facts
from airflow_provider_aiq_braze.sandbox.ratelimit import RateState

#: How long a lingering close keeps reading what a refused client is still sending.
_LINGER_SECONDS = 2.0
#: At most this much of a refused body is read and discarded during a lingering close.
_LINGER_MAX_BYTES = 64 * 1024 * 1024

PHRASES = {status.value: status.phrase for status in HTTPStatus}
_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


#: Header limits, as in :mod:`http.client`.
_MAX_HEADERS = 100
_MAX_LINE = 65536


class Headers(dict[str, str]):
    """Request headers with case-insensitive :meth:`get` (keys are stored lower-case)."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """A header's value.

        :param name: the header name, any case.
        :param default: returned when absent.
        """
        return dict.get(self, name.lower(), default)


class Abort(Exception):
    """The connection is closed on purpose; nothing more is written."""


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its sandbox and its open connections."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sandbox: Any, address: tuple[str, int], handler: type[WireHandler]) -> None:
        self.sandbox = sandbox
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

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


class WireHandler(BaseHTTPRequestHandler):
    """One connection; one :meth:`handle_request` call per request."""

    protocol_version = "HTTP/1.1"
    server_version = "BrazeSandbox/1.0"
    sys_version = ""
    server: SandboxHTTPServer

    _consumed = True
    _rate: RateState | None = None
    _group = "default"
    _count_as: str | None = None

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
        self._send(code, {"message": message or PHRASES.get(code, "Error")}, close=True, count=False)

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
        headers = Headers()
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
        self.handle_request("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self.handle_request("POST")

    def do_PUT(self) -> None:
        """Handle PUT (always 405 or 404)."""
        self.handle_request("PUT")

    def do_DELETE(self) -> None:
        """Handle DELETE (always 405 or 404)."""
        self.handle_request("DELETE")

    def do_PATCH(self) -> None:
        """Handle PATCH (always 405 or 404)."""
        self.handle_request("PATCH")

    def do_HEAD(self) -> None:
        """Handle HEAD (always 405 or 404, without a body)."""
        self.handle_request("HEAD")

    def do_OPTIONS(self) -> None:
        """Handle OPTIONS (always 405 or 404)."""
        self.handle_request("OPTIONS")

    def handle_request(self, method: str) -> None:
        """Answer one request (implemented by the Braze handler).

        :param method: the HTTP method.
        """
        raise NotImplementedError

    def _send(
        self,
        status: int,
        body: dict[str, Any] | None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
        count: bool = True,
    ) -> None:
        """Write one complete JSON response in a single ``send``."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        self._write(status, payload, headers=headers, close=close, count=count)

    def _write(
        self,
        status: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
        close: bool = False,
        count: bool = True,
        declared_length: int | None = None,
    ) -> None:
        """Write one response in a single ``send``.

        :param declared_length: the ``Content-Length`` to announce when it is not ``len(payload)``
            (the ``truncated_body`` fault).
        """
        if not self._consumed:
            close = self._discard_body() or close
        rate = self._rate or self.server.sandbox.limiter.peek(self._group, time.time())
        lines = [
            f"HTTP/1.1 {status} {PHRASES.get(status, 'Unknown')}",
            f"content-type: {content_type}",
            f"content-length: {len(payload) if declared_length is None else declared_length}",
            f"date: {http_date()}",
            f"x-ratelimit-limit: {rate.limit}",
            f"x-ratelimit-remaining: {rate.remaining}",
            f"x-ratelimit-reset: {rate.reset}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if close or self.close_connection:
            self.close_connection = True
            lines.append("connection: close")
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
        if length > facts.MAX_REQUEST_BYTES:
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
        if length > facts.MAX_REQUEST_BYTES:
            self._consumed = True
            limit = facts.MAX_REQUEST_BYTES
            message = f"Payload Too Large: the body is {length} bytes, at most {limit}"
            self._send(413, {"message": message}, close=True)
            return None
        raw = self.rfile.read(length)
        self._consumed = True
        if len(raw) < length:
            raise Abort
        return raw

    def _reset_connection(self) -> None:
        """Close the socket with an RST and no response."""
        self._consumed = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        raise Abort
