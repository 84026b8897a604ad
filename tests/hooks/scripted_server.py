"""A scriptable HTTP/1.1 server on 127.0.0.1 for testing the hook against real sockets.

Each request is answered by the next scripted :class:`Reply` (or by a function of the request);
every request is recorded with its headers, body, arrival time and the TCP connection it came on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer.

    :param status: HTTP status.
    :param body: a JSON-able object, raw bytes, or ``None`` for an empty body.
    :param headers: extra response headers.
    :param delay: seconds to wait before answering (after the request was read).
    :param close: close the connection without answering (after reading the request).
    :param truncate: send only this many bytes of the body (the ``Content-Length`` announces it
        whole), then close the connection: a body shorter than its ``Content-Length``.
    """

    status: int = 201
    body: Any = field(default_factory=lambda: {"message": "success"})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close: bool = False
    truncate: int | None = None


@dataclass(frozen=True)
class Recorded:
    """A request as the server received it.

    :param method: HTTP method.
    :param path: path with query string.
    :param headers: request headers (names as sent).
    :param body: the raw body.
    :param time: ``time.time()`` at arrival (after the body was read).
    :param connection: the number of the TCP connection it arrived on (1 for the first).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    time: float
    connection: int

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


Script = Callable[[Recorded], Reply]


class ScriptedServer:
    """A ``ThreadingHTTPServer`` answering from a script; use as a context manager.

    :param replies: answers in order; once used up, ``default`` answers.
    :param default: the answer when the script is exhausted.
    """

    def __init__(self, replies: Iterable[Reply] = (), default: Reply | None = None) -> None:
        self.requests: list[Recorded] = []
        self.connections = 0
        self._replies = list(replies)
        self._default = default or Reply()
        self._handler: Script | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1
                    self.connection_number = server.connections

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    method=self.command,
                    path=self.path,
                    headers=dict(self.headers.items()),
                    body=body,
                    time=time.time(),
                    connection=self.connection_number,
                )
                reply = server._record(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.close:
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(reply.body, bytes):
                    payload = reply.body
                elif reply.body is None:
                    payload = b""
                else:
                    payload = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    if reply.body is not None and not isinstance(reply.body, bytes):
                        self.send_header("Content-Type", "application/json")
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if reply.truncate is not None:
                        self.wfile.write(payload[: reply.truncate])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(payload)
                except OSError:
                    self.close_connection = True

            do_GET = _serve
            do_POST = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def _record(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self._handler is not None:
                return self._handler(recorded)
            if self._replies:
                return self._replies.pop(0)
            return self._default

    def script(self, *replies: Reply, default: Reply | None = None) -> None:
        """Replace the scripted answers.

        :param replies: answers in order.
        :param default: the answer once they are used up.
        """
        with self._lock:
            self._replies = list(replies)
            if default is not None:
                self._default = default

    def respond_with(self, handler: Script) -> None:
        """Answer every request with ``handler(request)`` (called under the server's lock).

        :param handler: a function of the recorded request.
        """
        with self._lock:
            self._handler = handler

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (connecting to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
