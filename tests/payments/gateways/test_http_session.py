"""GatewaySession: requests' reading of the environment, once per host."""
import pytest
import requests

from payments.gateways.http_session import GatewaySession


@pytest.fixture
def environment_reads(monkeypatch):
    """How often requests looked at the proxy variables."""
    reads = []
    real = requests.sessions.get_environ_proxies

    def counted(url, no_proxy=None):
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    return reads


@pytest.fixture
def proxied(monkeypatch):
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "sandbox.internal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")


def settings_for(session, url, **given):
    return session.merge_environment_settings(url, given.get("proxies", {}), given.get("stream"),
                                              given.get("verify"), given.get("cert"))


def test_the_environment_is_read_once_per_host_and_gives_what_requests_gives(proxied, environment_reads):
    session, plain = GatewaySession(), requests.Session()
    url = "https://openapi.alipay.com/gateway.do?charset=utf-8"
    expected = settings_for(plain, url)
    assert expected["proxies"]["https"] == "http://proxy.example:3128"
    assert expected["verify"] == "/etc/ssl/bundle.pem"
    environment_reads.clear()

    first = settings_for(session, url)
    second = settings_for(session, "https://openapi.alipay.com/gateway.do?charset=utf-8&other=1")

    assert first == second == expected
    assert len(environment_reads) == 1


def test_no_proxy_is_decided_per_host(proxied, environment_reads):
    session = GatewaySession()
    assert settings_for(session, "https://openapi.alipay.com/")["proxies"].get("https") == "http://proxy.example:3128"
    assert "https" not in settings_for(session, "https://sandbox.internal/")["proxies"]
    assert len(environment_reads) == 2


def test_a_call_with_its_own_settings_is_worked_out_afresh(proxied, environment_reads):
    session = GatewaySession()
    url = "https://api.mch.weixin.qq.com/pay/refundquery"
    settings_for(session, url)
    own = settings_for(session, url, proxies={"https": "http://other.example:8080"})
    assert own["proxies"]["https"] == "http://other.example:8080"
    assert len(environment_reads) == 2


def test_what_a_caller_does_with_the_answer_does_not_change_the_next(proxied):
    session = GatewaySession()
    url = "https://openapi.alipay.com/"
    settings_for(session, url)["proxies"]["https"] = "http://changed.example"
    assert settings_for(session, url)["proxies"]["https"] == "http://proxy.example:3128"
