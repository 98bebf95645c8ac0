"""Name resolution in tests: loopback names and address literals only.

pytest-socket (pyproject addopts, --allow-hosts) refuses connect() beyond
loopback but lets any name resolve, and resolving a name other than
localhost asks the machine's DNS server, which is not on loopback. Worse, a
test that reached for a real host by mistake would then see a DNS failure
(socket.gaierror, an OSError), which an adapter reports as "gateway
unavailable", and might pass. tests/conftest.py installs this guard around
every test so such a lookup raises NameResolutionBlocked instead, before
any query is sent.

Reverse lookups (socket.gethostbyaddr) are left alone: the suite makes two,
both answered by /etc/hosts on these machines, never by DNS: HTTPServer's
getfqdn("127.0.0.1") when a live server binds, and Django's Message-ID
getfqdn() of this machine's own name when a test sends mail.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import pytest

LOOPBACK_NAMES = frozenset({"localhost"})

_true_getaddrinfo = socket.getaddrinfo
_true_gethostbyname = socket.gethostbyname
_true_gethostbyname_ex = socket.gethostbyname_ex


class NameResolutionBlocked(RuntimeError):
    """A test tried to resolve a name that only DNS could answer.

    A RuntimeError, not an OSError, so that no `except OSError` (or
    requests.ConnectionError) turns the mistake into an ordinary failure.
    """


def resolves_locally(host: str | bytes | None) -> bool:
    """Can `host` be resolved without asking a DNS server?"""
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    # No trailing-dot forms: "localhost." is not in /etc/hosts, so it goes to DNS.
    name = host.lower()
    if name in ("", *LOOPBACK_NAMES):
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])  # an IPv6 literal may carry a %scope
    except ValueError:
        return False
    return True


def _guarded(lookup: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(host: str | bytes | None, *args: Any, **kwargs: Any) -> Any:
        if not resolves_locally(host):
            raise NameResolutionBlocked(
                f"A test tried to resolve {host!r}: only {', '.join(sorted(LOOPBACK_NAMES))} "
                "and address literals resolve in tests (tests/network_guard.py)."
            )
        return lookup(host, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = f"guarded_{lookup.__name__}"
    return guarded


guarded_getaddrinfo = _guarded(_true_getaddrinfo)
guarded_gethostbyname = _guarded(_true_gethostbyname)
guarded_gethostbyname_ex = _guarded(_true_gethostbyname_ex)


def refuse_outside_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Install the guard until `monkeypatch` is undone (the end of the test)."""
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket, "gethostbyname", guarded_gethostbyname)
    monkeypatch.setattr(socket, "gethostbyname_ex", guarded_gethostbyname_ex)


def installed() -> bool:
    return (
        socket.getaddrinfo is guarded_getaddrinfo
        and socket.gethostbyname is guarded_gethostbyname
        and socket.gethostbyname_ex is guarded_gethostbyname_ex
    )
