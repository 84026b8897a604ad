"""Shared fixtures: Braze connections through ``AIRFLOW_CONN_*``, the local Braze sandbox, and a real
S3-compatible server (``s3_server``, ``s3_bucket``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

pytest_plugins = ["airflow_provider_aiq_braze.sandbox.pytest_plugin"]

#: A recognisable API key: tests scan logs, exceptions and files for it.
TEST_API_KEY = "sk-TEST-0123456789abcdef-NEVER-LOG-ME"


@pytest.fixture
def braze_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a Braze connection through an ``AIRFLOW_CONN_<ID>`` variable; no metadata DB needed.

    Call it as ``braze_connection(host=..., password=..., extra={...}, conn_id="braze_test")``;
    it returns the connection id.
    """

    def define(
        conn_id: str = "braze_test",
        *,
        host: str | None = None,
        password: str | None = TEST_API_KEY,
        port: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        conn: dict[str, Any] = {"conn_type": "braze"}
        if host is not None:
            conn["host"] = host
        if password is not None:
            conn["password"] = password
        if port is not None:
            conn["port"] = port
        if extra:
            conn["extra"] = extra
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return define


# --------------------------------------------------------------------------------------------------
# a real S3-compatible server on 127.0.0.1 (moto's S3 application, see tests/storage/s3_server.py)


@dataclass(frozen=True)
class S3Bucket:
    """A fresh bucket on the test S3 server, reachable through an Airflow ``aws`` connection.

    :param endpoint: the server's URL (``http://127.0.0.1:<port>``).
    :param bucket: the bucket's name.
    :param conn_id: the Airflow connection (``AIRFLOW_CONN_<ID>``, type aws, ``endpoint_url`` in extra).
    """

    endpoint: str
    bucket: str
    conn_id: str

    @property
    def root(self) -> str:
        """``s3://<bucket>``."""
        return f"s3://{self.bucket}"

    def path(self, key: str = "") -> ObjectStoragePath:
        """``ObjectStoragePath("s3://<bucket>/<key>", conn_id=…)``.

        :param key: the key in the bucket.
        """
        return ObjectStoragePath(f"{self.root}/{key}", conn_id=self.conn_id)

    def requests(self, key_prefix: str = "") -> dict[str, Any]:
        """What the server saw for keys starting with ``key_prefix``: ``{"PUT": n, …, "bytes": {"PUT": b}}``.

        :param key_prefix: a key prefix in this bucket.
        """
        query = urllib.parse.urlencode({"path": f"/{self.bucket}/{key_prefix}"})
        with urllib.request.urlopen(f"{self.endpoint}/_test/requests?{query}", timeout=10) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start the test S3 server once per session (only when a test asks for it); yields its URL.

    A subprocess (``python -m tests.storage.s3_server``) on an ephemeral port of 127.0.0.1, stopped
    at the end of the session. It serves requests one at a time, so moto's conditional writes are
    atomic as on AWS S3.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.storage.s3_server"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the test S3 server did not start (said {line!r})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket on :func:`s3_server` and the connection ``aiq_s3_test`` to reach it.

    The connection is an ``AIRFLOW_CONN_AIQ_S3_TEST`` variable, so subprocesses started by the test
    inherit it. Use ``s3_bucket.path("key")`` for an ``ObjectStoragePath``, or ``state_path=
    s3_bucket.root, state_conn_id=s3_bucket.conn_id`` for an operator.
    """
    conn_id = "aiq_s3_test"
    extra = {"endpoint_url": s3_server, "region_name": "us-east-1"}
    conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    bucket = S3Bucket(endpoint=s3_server, bucket=f"aiq-test-{uuid.uuid4().hex[:12]}", conn_id=conn_id)
    bucket.path().fs.mkdir(bucket.bucket)
    return bucket
