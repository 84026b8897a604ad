"""A local, strict emulator of the Braze REST endpoints this provider uses.

Start it with ``python -m airflow_provider_aiq_braze.sandbox --port 0 --api-key KEY``, in-process
with :class:`BrazeSandbox`, or in tests with the ``braze_sandbox`` fixture
(:mod:`airflow_provider_aiq_braze.sandbox.pytest_plugin`). See ``docs/sandbox.md``.

The sandbox is a second opinion on Braze: its rules are its own (:mod:`.facts`, :mod:`.checks`),
written from Braze's documentation, and it imports nothing of the package outside itself.
"""

from __future__ import annotations

from airflow_provider_aiq_braze.sandbox.config import (
    HOSTILE_ANSWERS,
    FaultConfig,
    Refusals,
    SandboxConfig,
    build_config,
    parse_api_key,
    parse_rate,
)
from airflow_provider_aiq_braze.sandbox.process import SandboxStartError, start_sandbox_process
from airflow_provider_aiq_braze.sandbox.server import BrazeSandbox
from airflow_provider_aiq_braze.sandbox.state import SandboxState

__all__ = [
    "HOSTILE_ANSWERS",
    "BrazeSandbox",
    "FaultConfig",
    "Refusals",
    "SandboxConfig",
    "SandboxStartError",
    "SandboxState",
    "build_config",
    "parse_api_key",
    "parse_rate",
    "start_sandbox_process",
]
