"""Fixtures of the reliability suite: the operator-test fixtures, reused."""

from __future__ import annotations

from tests.operators.conftest import run_task, sandbox

__all__ = ["run_task", "sandbox"]
