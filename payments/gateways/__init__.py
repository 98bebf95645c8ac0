"""Choose gateway adapters from settings: `get_gateway(code)`, `enabled_gateways()`.

`PAYMENT_GATEWAYS` names the enabled codes in cashier order;
`GATEWAY_CLASSES` maps a code to its adapter class and `GATEWAY_OPTIONS` to
its options. Adapters are built lazily on first use, never at import, and
rebuilt when a test overrides one of those settings.
"""
from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from payments.exceptions import GatewayNotConfigured
from payments.gateways.base import Gateway

logger = logging.getLogger(__name__)

_cache: dict[str, Gateway] = {}
# Why a code cannot work, for as long as the settings are the same.
_unusable: dict[str, str] = {}
_lock = threading.Lock()
_SETTINGS = {"PAYMENT_GATEWAYS", "GATEWAY_CLASSES", "GATEWAY_OPTIONS"}


def _gateway_class(code: str) -> type[Gateway] | None:
    path = settings.GATEWAY_CLASSES.get(code)
    return import_string(path) if path else None


def configuration_problems() -> dict[str, list[str]]:
    """For every enabled code, what stops it from working ({} when all are ready)."""
    problems: dict[str, list[str]] = {}
    for code in settings.PAYMENT_GATEWAYS:
        cls = _gateway_class(code)
        if cls is None:
            problems[code] = ["no adapter for this gateway in this version"]
            continue
        found = cls.configuration_problems(settings.GATEWAY_OPTIONS.get(code, {}))
        if found:
            problems[code] = found
    return problems


def warn_about_configuration() -> None:
    """At start-up: which adapter each enabled code uses and why (GATEWAY_CHOICES),
    then every enabled gateway that cannot work."""
    choices: dict[str, str] = getattr(settings, "GATEWAY_CHOICES", {})
    for code in settings.PAYMENT_GATEWAYS:
        if code in choices:
            logger.info("payment gateway %s: %s", code, choices[code])
    for code, found in configuration_problems().items():
        logger.warning("payment gateway %s is not offered: %s", code, "; ".join(found))


def get_gateway(code: str) -> Gateway:
    """The configured adapter for `code`; GatewayNotConfigured when it cannot work.

    Both answers are kept until the settings change: a gateway whose key
    does not load is not loaded again (a PKCS#12 file opened, a key parsed)
    on every cashier page that leaves it out.
    """
    gateway = _cache.get(code)
    if gateway is not None:
        return gateway
    with _lock:
        if code in _cache:
            return _cache[code]
        if code in _unusable:
            raise GatewayNotConfigured(_unusable[code])
        cls = _gateway_class(code)
        if cls is None:
            raise GatewayNotConfigured(f"{code}: no adapter")
        options = settings.GATEWAY_OPTIONS.get(code, {})
        found = cls.configuration_problems(options)
        if found:
            _unusable[code] = f"{code}: {'; '.join(found)}"
            raise GatewayNotConfigured(_unusable[code])
        _cache[code] = cls(options)
        return _cache[code]


def enabled_gateways() -> list[Gateway]:
    """The gateways a shopper may choose, in PAYMENT_GATEWAYS order."""
    gateways = []
    for code in settings.PAYMENT_GATEWAYS:
        try:
            gateways.append(get_gateway(code))
        except GatewayNotConfigured:
            continue
    return gateways


def reset_gateway_cache() -> None:
    with _lock:
        _cache.clear()
        _unusable.clear()


@receiver(setting_changed)
def _reset_on_setting_change(*, setting: str, **kwargs: object) -> None:
    if setting in _SETTINGS:
        reset_gateway_cache()
