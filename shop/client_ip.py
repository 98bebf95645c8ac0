"""The address a request really came from, through the proxies we trust.

REMOTE_ADDR is the client unless it is one of TRUSTED_PROXIES (CIDRs). Then
X-Forwarded-For is read from the right, the side our proxies append to,
and the first address that is not one of ours is the client: whatever a
client writes at the left of the header is never believed. The notify IP
allowlist, login throttling (django-axes, AXES_CLIENT_IP_CALLABLE) and the
inbox's sender address all use this one answer.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=64)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """CIDRs (or bare addresses) from the environment; raises ValueError on a bad one."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def address_in(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Any) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = parse_networks(tuple(settings.TRUSTED_PROXIES))
    if not proxies or not address_in(remote, proxies):
        return remote
    hops: Sequence[str] = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not address_in(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # garbage where an address should be: trust only the socket
    return remote
