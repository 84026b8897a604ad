"""The session resolves ``trust_env`` once: proxies and CA bundle from the environment, never netrc."""

from __future__ import annotations

from tests.conftest import TEST_API_KEY


def test_environment_proxies_are_resolved_once_for_the_endpoint(make_hook, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    hook = make_hook(host="https://rest.iad-01.braze.com")
    session = hook.get_conn()
    assert session.proxies["https"] == "http://proxy.corp.example:3128"
    assert session.trust_env is False  # nothing is looked up again per request


def test_no_proxy_is_honoured(make_hook, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("NO_PROXY", "rest.iad-01.braze.com")
    session = make_hook(host="https://rest.iad-01.braze.com").get_conn()
    assert "https" not in session.proxies


def test_connection_proxies_win_over_the_environment(make_hook, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    hook = make_hook(
        host="https://rest.iad-01.braze.com", extra={"proxies": {"https": "http://conn-proxy:8080"}}
    )
    assert hook.get_conn().proxies["https"] == "http://conn-proxy:8080"


def test_ca_bundle_from_the_environment(make_hook, monkeypatch, tmp_path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not used")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    assert make_hook(host="https://rest.iad-01.braze.com").get_conn().verify == str(bundle)


def test_netrc_never_replaces_the_bearer_token(make_hook, server, monkeypatch, tmp_path) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    hook = make_hook()
    hook.track_users(attributes=[{"external_id": "u1", "a": 1}])
    (request,) = server.requests
    assert request.headers["Authorization"] == f"Bearer {TEST_API_KEY}"
