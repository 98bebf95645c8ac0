"""The HTTP session every gateway client calls its provider with."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests


class GatewaySession(requests.Session):
    """A requests session that reads the proxy and CA-bundle variables once per host.

    requests looks through the whole process environment on every call
    (`*_proxy`, `no_proxy`, `REQUESTS_CA_BUNDLE`): about a twentieth of a
    payment start's CPU, measured. The environment of a running process does
    not change, and a gateway client talks to one or two hosts, so the
    answer is kept per scheme, host and `verify`. A call that passes its own
    proxies, stream or cert is worked out afresh, as requests would.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[str, str, Any], dict[str, Any]] = {}

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        if proxies or stream is not None or cert is not None or not isinstance(verify, (bool, str, type(None))):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, verify)
        found = self._environment.get(key)
        if found is None:
            found = self._environment[key] = super().merge_environment_settings(url, {}, None, verify, None)
        # requests may add to the proxies it is given (a redirect's rebuild).
        return {**found, "proxies": dict(found["proxies"])}
