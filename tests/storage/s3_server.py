"""A real S3-compatible server for the tests: moto's S3 application served over HTTP on 127.0.0.1.

Run as ``python -m tests.storage.s3_server`` (the ``s3_server`` fixture of ``tests/storage/conftest.py``
does): it binds an ephemeral port, prints ``PORT <n>`` on one line and serves until killed.

Two things on top of moto's own server (``moto_server``):

* requests are handled one at a time (a lock around the application). moto checks ``If-None-Match``
  and ``If-Match`` and then writes in two steps; AWS S3 does both atomically. Serialising the
  requests gives moto the same atomicity, so races between processes test our code, not moto's.
* ``GET /_test/requests?path=<prefix>`` answers, for the requests whose path starts with ``<prefix>``
  (``/bucket/key…``; all without it), their number by method (``{"PUT": 3, …}``) and the body bytes
  they carried by method (``{"bytes": {"PUT": 1234}}``), so a test can count uploads instead of
  trusting the code under test.
"""

from __future__ import annotations

import collections
import contextlib
import json
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class SerialisedApp:
    """Serve one request at a time and count them."""

    def __init__(self, app: Callable[[Environ, StartResponse], Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._seen: list[tuple[str, str, int]] = []

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/_test/requests":
            return self._stats(environ, start_response)
        with self._lock:
            size = environ.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH") or environ.get("CONTENT_LENGTH") or 0
            self._seen.append((environ["REQUEST_METHOD"], path, int(size)))
            return list(self._app(environ, start_response))

    def _stats(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        prefix = unquote(query[len("path=") :]) if query.startswith("path=") else ""
        counts: collections.Counter[str] = collections.Counter()
        sizes: collections.Counter[str] = collections.Counter()
        with self._lock:
            for method, path, size in self._seen:
                if path.startswith(prefix):
                    counts[method] += 1
                    sizes[method] += size
        body = json.dumps({**counts, "bytes": sizes}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def main() -> None:
    app = SerialisedApp(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    print(f"PORT {server.server_port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
