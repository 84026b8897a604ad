"""Pytest fixtures that run the Braze sandbox on 127.0.0.1 (``pytest_plugins`` entry).

``braze_sandbox`` is a fresh sandbox per test, accepting :data:`SANDBOX_API_KEY` with every
permission; ``braze_sandbox_factory(**overrides)`` starts more, configured as asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aiq_braze.sandbox.config import SandboxConfig
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox

#: The REST API key the fixture sandboxes accept; recognisable so tests can scan for leaks.
SANDBOX_API_KEY = "sk-TEST-0123456789abcdef-NEVER-LOG-ME"

SandboxFactory = Callable[..., BrazeSandbox]


@pytest.fixture
def braze_sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with overrides; all are stopped at teardown.

    Call it as ``braze_sandbox_factory(permissions=["users.track"], object_count_rule="combined-50",
    users_track_rate="10/1", latency_ms=20, seed=7, refuse_id_prefixes=["bot-"],
    truncated_body_requests=1, ...)``: any :class:`SandboxConfig` or
    :class:`~airflow_provider_aiq_braze.sandbox.config.FaultConfig` field, rates as ``"N/SECONDS"``,
    ``api_key`` (default :data:`SANDBOX_API_KEY`), ``permissions`` (default: all), ``refuse_ids``
    and ``refuse_id_prefixes``. It returns
    the running :class:`BrazeSandbox` (``.base_url``, ``.api_key``, ``.state``, ``.set_faults``,
    ``.reset``, ``.config``).
    """
    started: list[BrazeSandbox] = []

    def start(config: SandboxConfig | None = None, **overrides: Any) -> BrazeSandbox:
        if config is None or "api_key" in overrides or not config.api_keys:
            overrides.setdefault("api_key", SANDBOX_API_KEY)
        overrides.setdefault("port", 0)
        sandbox = BrazeSandbox(config, **overrides)
        sandbox.start()
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in reversed(started):
        sandbox.stop()


@pytest.fixture
def braze_sandbox(braze_sandbox_factory: SandboxFactory) -> BrazeSandbox:
    """A running sandbox on 127.0.0.1 with a random port, accepting :data:`SANDBOX_API_KEY`."""
    return braze_sandbox_factory()
