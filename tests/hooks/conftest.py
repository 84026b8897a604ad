"""Fixtures for the hook tests: a scripted HTTP server on 127.0.0.1 and hooks pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from tests.hooks.scripted_server import ScriptedServer


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    """A started :class:`ScriptedServer` answering 201 ``{"message": "success"}`` by default."""
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def make_hook(braze_connection: Callable[..., str], server: ScriptedServer) -> Callable[..., BrazeHook]:
    """Build a hook on a connection to the scripted server; fast backoff, short timeouts.

    Keyword arguments go to :class:`BrazeHook`, except ``host``, ``password`` and ``extra``, which
    go to the connection.
    """

    def make(
        *,
        host: str | None = None,
        password: str | Any | None = ...,
        extra: dict[str, Any] | None = None,
        **hook_kwargs: Any,
    ) -> BrazeHook:
        conn_kwargs: dict[str, Any] = {"host": host if host is not None else server.url, "extra": extra}
        if password is not ...:
            conn_kwargs["password"] = password
        conn_id = braze_connection("braze_test", **conn_kwargs)
        hook_kwargs.setdefault("backoff_base", 0.01)
        hook_kwargs.setdefault("backoff_max", 0.05)
        hook_kwargs.setdefault("timeout", (2.0, 5.0))
        return BrazeHook(conn_id, **hook_kwargs)

    return make
