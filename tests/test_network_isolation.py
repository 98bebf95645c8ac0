"""Tests reach nothing beyond loopback.

pyproject's addopts run pytest-socket with --allow-hosts=127.0.0.1,localhost,::1:
inside a test, connect() to any other address raises SocketConnectBlockedError
before a packet leaves, while Redis, the live servers and the sandbox process
(all on loopback) work as before. tests/network_guard.py adds that names
other than localhost do not resolve (no DNS query leaves either).

No test here can send a packet anywhere else: each first proves its guard
is in place, the connect guard on a loopback address outside the allowed
list (127.0.0.2, where a missing guard only gets a refusal from this
machine), the resolution guard by identity, and only then tries the
outside addresses and names.
"""
import socket
import threading

import pytest
import redis
import requests
from pytest_socket import SocketConnectBlockedError

from tests import network_guard
from tests.network_guard import NameResolutionBlocked

# Never served to these tests: a documentation network (RFC 5737, RFC 3849)
# and a private address.
OUTSIDE_ADDRESSES = [("203.0.113.1", 80), ("10.255.255.1", 80)]
OUTSIDE_IPV6_ADDRESS = ("2001:db8::1", 80)
# Loopback, but not in --allow-hosts: refused by the guard, and by this
# machine's closed port if the guard were missing.
UNLISTED_LOOPBACK = ("127.0.0.2", 9)

pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket.socket.connect")


def _require_guard() -> None:
    """Fail, sending nothing, unless the connect guard is active in this test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        try:
            sock.connect(UNLISTED_LOOPBACK)
        except SocketConnectBlockedError:
            return
        except OSError as error:
            pytest.fail(f"no network guard: 127.0.0.2 was tried for real ({error})")
        pytest.fail("no network guard: 127.0.0.2 accepted a connection")


@pytest.mark.parametrize("address", OUTSIDE_ADDRESSES, ids=lambda address: address[0])
def test_a_raw_socket_cannot_connect_outside_loopback(address):
    _require_guard()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        with pytest.raises(SocketConnectBlockedError, match=address[0]):
            sock.connect(address)


def test_create_connection_cannot_reach_an_ipv6_address_outside_loopback():
    _require_guard()
    with pytest.raises(SocketConnectBlockedError, match="2001:db8::1"):
        socket.create_connection(OUTSIDE_IPV6_ADDRESS, timeout=1)


def _require_resolution_guard() -> None:
    """Fail, resolving nothing, unless the name resolution guard is installed."""
    if not network_guard.installed():
        pytest.fail("no name resolution guard: tests/conftest.py did not install tests/network_guard.py")


def test_an_http_client_cannot_reach_outside_loopback():
    """What a gateway adapter does: requests raises the guard's error, not a
    ConnectionError a caller might retry."""
    _require_guard()
    with pytest.raises(SocketConnectBlockedError, match="203.0.113.1"):
        requests.get("http://203.0.113.1/", timeout=1)


@pytest.mark.parametrize("lookup", ["getaddrinfo", "gethostbyname", "gethostbyname_ex"])
def test_names_other_than_localhost_do_not_resolve(lookup):
    _require_resolution_guard()
    # Looked up now, inside the test: the module attribute the guard replaces.
    resolve = getattr(socket, lookup)
    assert resolve.__name__ == f"guarded_{lookup}"
    with pytest.raises(NameResolutionBlocked, match="api.mch.weixin.qq.com"):
        resolve("api.mch.weixin.qq.com")


def test_an_http_client_calling_a_real_provider_fails_loudly():
    """Not with a ConnectionError an adapter would report as "gateway unavailable"."""
    _require_resolution_guard()
    with pytest.raises(NameResolutionBlocked, match="openapi.alipay.com"):
        requests.get("https://openapi.alipay.com/gateway.do", timeout=1)


@pytest.mark.parametrize("name", ["localhost", "LocalHost", "127.0.0.1", "::1", "203.0.113.1"])
def test_localhost_and_address_literals_still_resolve(name):
    """Literals resolve without DNS; connecting to an outside one is the connect guard's to refuse."""
    _require_resolution_guard()
    assert socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)


def test_a_trailing_dot_is_not_localhost():
    """"localhost." is not in /etc/hosts: resolving it would ask DNS."""
    _require_resolution_guard()
    with pytest.raises(NameResolutionBlocked):
        socket.getaddrinfo("localhost.", 80)


class _EchoServer:
    """A one-line echo server on a loopback address and a free port."""

    def __init__(self, family: socket.AddressFamily, host: str) -> None:
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        connection, _ = self.listener.accept()
        with connection:
            connection.sendall(connection.recv(64))

    def close(self) -> None:
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.mark.parametrize(
    ("family", "bind_host", "connect_host"),
    [
        (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET, "127.0.0.1", "localhost"),
        (socket.AF_INET6, "::1", "::1"),
    ],
    ids=["127.0.0.1", "localhost", "::1"],
)
def test_loopback_connections_still_work(family, bind_host, connect_host):
    server = _EchoServer(family, bind_host)
    try:
        with socket.create_connection((connect_host, server.port), timeout=5) as connection:
            connection.sendall(b"ping")
            assert connection.recv(64) == b"ping"
    finally:
        server.close()


def test_redis_on_loopback_still_works():
    client = redis.Redis.from_url("redis://127.0.0.1:6379/15", socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_the_live_server_still_answers(live_server):
    response = requests.get(f"{live_server.url}/healthz", timeout=10)
    assert response.status_code in (200, 503)
    assert "database" in response.json()
