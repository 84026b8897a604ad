"""Helpers for the sandbox tests: a requests-based client bound to a running sandbox."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_aiq_braze.sandbox import BrazeSandbox
from airflow_provider_aiq_braze.sandbox.pytest_plugin import SANDBOX_API_KEY

WHEN = "2024-05-01T12:00:00Z"


class Api:
    """A keep-alive client for one sandbox.

    :param sandbox: the running sandbox.
    :param key: the API key to send (``None``: no Authorization header).
    """

    def __init__(self, sandbox: BrazeSandbox, key: str | None = SANDBOX_API_KEY) -> None:
        self.sandbox = sandbox
        self.base = sandbox.base_url
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = f"Bearer {key}"

    def post(self, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.post(self.base + path, json=body, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.session.get(self.base + path, **kwargs)

    def track(self, **arrays: Any) -> requests.Response:
        return self.post("/users/track", arrays)

    def admin(self, name: str, body: Any = None) -> Any:
        if body is None:
            response = requests.get(f"{self.base}/_sandbox/{name}", timeout=10)
        else:
            response = requests.post(f"{self.base}/_sandbox/{name}", json=body, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


def event(user: str = "u1", name: str = "purchase_intent", **extra: Any) -> dict[str, Any]:
    """An event object with valid defaults."""
    return {"external_id": user, "name": name, "time": WHEN, **extra}


@pytest.fixture
def api(braze_sandbox: BrazeSandbox) -> Api:
    """A client of the function's sandbox, authenticated with every permission."""
    return Api(braze_sandbox)
