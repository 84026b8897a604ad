"""Shared fixtures: Braze connections through ``AIRFLOW_CONN_*`` and the local Braze sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

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
