"""Braze instances and REST endpoint resolution."""

from __future__ import annotations

import pytest

from airflow_provider_aiq_braze.braze.errors import BrazeConfigError
from airflow_provider_aiq_braze.braze.instances import (
    INSTANCE_CODES,
    INSTANCES,
    is_loopback,
    resolve_rest_base_url,
)

EXPECTED_REST = {
    "US-01": "https://rest.iad-01.braze.com",
    "US-02": "https://rest.iad-02.braze.com",
    "US-03": "https://rest.iad-03.braze.com",
    "US-04": "https://rest.iad-04.braze.com",
    "US-05": "https://rest.iad-05.braze.com",
    "US-06": "https://rest.iad-06.braze.com",
    "US-07": "https://rest.iad-07.braze.com",
    "US-08": "https://rest.iad-08.braze.com",
    "US-10": "https://rest.us-10.braze.com",
    "EU-01": "https://rest.fra-01.braze.eu",
    "EU-02": "https://rest.fra-02.braze.eu",
    "AU-01": "https://rest.au-01.braze.com",
    "ID-01": "https://rest.id-01.braze.com",
    "JP-01": "https://rest.jp-01.braze.com",
    "KR-01": "https://rest.kr-01.braze.com",
}


def test_every_instance_is_known() -> None:
    assert tuple(EXPECTED_REST) == INSTANCE_CODES
    assert {code: INSTANCES[code].rest_url for code in INSTANCE_CODES} == EXPECTED_REST


@pytest.mark.parametrize(("code", "url"), list(EXPECTED_REST.items()))
def test_instance_code_resolves(code: str, url: str) -> None:
    assert resolve_rest_base_url(None, instance=code) == url
    assert resolve_rest_base_url("", instance=code.lower()) == url


@pytest.mark.parametrize(("code", "url"), list(EXPECTED_REST.items()))
def test_rest_url_and_bare_host_accepted(code: str, url: str) -> None:
    assert resolve_rest_base_url(url) == url
    assert resolve_rest_base_url(url + "/") == url
    assert resolve_rest_base_url(url.removeprefix("https://")) == url
    assert resolve_rest_base_url(url, instance=code) == url


@pytest.mark.parametrize(
    ("host", "rest"),
    [
        ("https://dashboard-01.braze.com", "https://rest.iad-01.braze.com"),
        ("https://dashboard-08.braze.com/app", "https://rest.iad-08.braze.com"),
        ("dashboard.us-10.braze.com", "https://rest.us-10.braze.com"),
        ("https://dashboard-02.braze.eu", "https://rest.fra-02.braze.eu"),
        ("https://dashboard.jp-01.braze.com", "https://rest.jp-01.braze.com"),
        ("https://sdk.iad-03.braze.com", "https://rest.iad-03.braze.com"),
        ("sdk.fra-01.braze.eu", "https://rest.fra-01.braze.eu"),
        ("https://sdk.au-01.braze.com", "https://rest.au-01.braze.com"),
    ],
)
def test_dashboard_and_sdk_hosts_refused_naming_rest_url(host: str, rest: str) -> None:
    with pytest.raises(BrazeConfigError) as raised:
        resolve_rest_base_url(host)
    assert rest in str(raised.value)
    assert "not a REST endpoint" in str(raised.value)


def test_us10_legacy_alias_accepted() -> None:
    assert resolve_rest_base_url("https://rest.iad-10.braze.com") == "https://rest.iad-10.braze.com"


def test_unknown_braze_host_refused() -> None:
    with pytest.raises(BrazeConfigError, match=r"start with 'rest\.'"):
        resolve_rest_base_url("https://api.braze.com")


def test_plain_http_refused_for_remote_hosts() -> None:
    with pytest.raises(BrazeConfigError, match="unencrypted"):
        resolve_rest_base_url("http://rest.iad-01.braze.com")
    with pytest.raises(BrazeConfigError, match="unencrypted"):
        resolve_rest_base_url("http://proxy.example.com", allow_custom_host=True)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080"),
        ("http://localhost", 9000, "http://localhost:9000"),
        ("http://[::1]:8080/", None, "http://[::1]:8080"),
        ("http://127.0.0.5:1/braze/", None, "http://127.0.0.5:1/braze"),
    ],
)
def test_plain_http_allowed_on_loopback(host: str, port: int | None, expected: str) -> None:
    assert resolve_rest_base_url(host, port=port) == expected


def test_custom_host_needs_opt_in() -> None:
    with pytest.raises(BrazeConfigError, match="allow_custom_host"):
        resolve_rest_base_url("https://braze-proxy.corp.example")
    assert (
        resolve_rest_base_url("https://braze-proxy.corp.example/v1/", allow_custom_host=True)
        == "https://braze-proxy.corp.example/v1"
    )


def test_instance_mismatch_refused() -> None:
    with pytest.raises(BrazeConfigError, match="belongs to instance US-01 but extra 'instance' says EU-01"):
        resolve_rest_base_url("https://rest.iad-01.braze.com", instance="EU-01")


def test_unknown_instance_and_empty_connection_refused() -> None:
    with pytest.raises(BrazeConfigError, match="Unknown Braze instance 'US-09'"):
        resolve_rest_base_url(None, instance="US-09")
    with pytest.raises(BrazeConfigError, match="no REST endpoint"):
        resolve_rest_base_url("  ")
    with pytest.raises(BrazeConfigError, match="not a URL"):
        resolve_rest_base_url("ftp://rest.iad-01.braze.com")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("rest.iad-01.braze.com", False),
        ("localhost.example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
