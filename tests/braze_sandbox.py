"""Helpers for tests that talk to the Braze sandbox: a connection to it, and seeded profiles."""

from __future__ import annotations

import json
from typing import Any

import requests

from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox


def connection_env(sandbox: BrazeSandbox, **extra: Any) -> dict[str, str]:
    """``AIRFLOW_CONN_BRAZE_DEFAULT`` pointing at the sandbox (``extra``: connection extras)."""
    conn: dict[str, Any] = {"conn_type": "braze", "host": sandbox.base_url, "password": sandbox.api_key}
    if extra:
        conn["extra"] = extra
    return {"AIRFLOW_CONN_BRAZE_DEFAULT": json.dumps(conn)}


def create_users(sandbox: BrazeSandbox, external_ids: list[str]) -> None:
    """Create profiles in the sandbox through ``/users/track``, 75 per request."""
    with requests.Session() as session:
        for start in range(0, len(external_ids), 75):
            attributes = [{"external_id": u, "seeded": True} for u in external_ids[start : start + 75]]
            response = session.post(
                f"{sandbox.base_url}/users/track",
                json={"attributes": attributes},
                headers={"Authorization": f"Bearer {sandbox.api_key}"},
                timeout=30,
            )
            assert response.status_code == 201, response.text
