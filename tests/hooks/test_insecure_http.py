"""``allow_insecure_http``: plain http to a sandbox on a private network (e.g. docker-compose)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.instances import resolve_rest_base_url
from airflow_provider_aiq_braze.hooks.braze import BrazeHook
from tests.hooks.scripted_server import ScriptedServer

MakeHook = Callable[..., BrazeHook]


def test_plain_http_to_a_service_host_needs_the_opt_in(braze_connection: Callable[..., str]) -> None:
    braze_connection("braze_compose", host="http://sandbox:4010", extra={"allow_custom_host": True})
    with pytest.raises(BrazeConfigError, match="allow_insecure_http"):
        _ = BrazeHook("braze_compose").base_url


def test_plain_http_to_a_service_host_with_both_opt_ins(braze_connection: Callable[..., str]) -> None:
    extra = {"allow_custom_host": True, "allow_insecure_http": "true"}
    braze_connection("braze_compose", host="http://sandbox:4010", extra=extra)
    assert BrazeHook("braze_compose").base_url == "http://sandbox:4010"


def test_insecure_http_alone_does_not_allow_a_custom_host() -> None:
    with pytest.raises(BrazeConfigError, match="allow_custom_host"):
        resolve_rest_base_url("http://sandbox:4010", allow_insecure_http=True)


def test_insecure_http_never_applies_to_braze_itself() -> None:
    with pytest.raises(BrazeConfigError, match="unencrypted"):
        resolve_rest_base_url("http://rest.iad-01.braze.com", allow_insecure_http=True)


def test_the_opt_in_is_not_sent_as_a_header(make_hook: MakeHook, server: ScriptedServer) -> None:
    make_hook(extra={"allow_insecure_http": True}).post("/users/track", {"attributes": []})
    headers = {k.lower() for k in server.requests[0].headers}
    assert "allow_insecure_http" not in headers
