"""What the cashier offers: each enabled gateway's ways to pay that work on this device.

The shopper never answers "computer or phone?": the device comes from the
browser's User-Agent, and each gateway's `capabilities.methods` say what it
can do. A computer gets the provider's website (PAGE) and a QR code to scan
with the phone (QR); a phone gets the provider's mobile page or app (WAP),
or its website when the provider has no mobile flavour, and never a QR code
it would have to scan itself. A provider with nothing that works on the
device (WeChat Pay's H5 page on a computer) is simply not offered.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from django.contrib.staticfiles import finders
from django.utils.translation import gettext_lazy as _

from payments.exceptions import GatewayNotConfigured
from payments.gateways import get_gateway
from payments.gateways.base import Gateway, PayMethod

DESKTOP = "desktop"
MOBILE = "mobile"
DEVICES = (DESKTOP, MOBILE)

MOBILE_MARKERS = ("mobile", "android", "iphone", "ipad", "ipod", "harmonyos", "micromessenger")

LABELS = {
    PayMethod.PAGE: _("Pay on the %(gateway)s website"),
    PayMethod.WAP: _("Pay with %(gateway)s on this phone"),
    PayMethod.QR: _("Scan a QR code with the %(gateway)s app"),
}
HINTS = {
    PayMethod.PAGE: _("You go to %(gateway)s to pay and come back here."),
    PayMethod.WAP: _("%(gateway)s opens on this phone; you come back here after paying."),
    PayMethod.QR: _("The next page shows a code to scan with your phone."),
}


def gateway_name(code: str) -> str:
    """The provider's name as shoppers know it ("Alipay", "支付宝"); the code of one no longer enabled."""
    try:
        return str(get_gateway(code).display_name)
    except GatewayNotConfigured:
        return code


def device_from_user_agent(user_agent: str) -> str:
    lowered = user_agent.lower()
    return MOBILE if any(marker in lowered for marker in MOBILE_MARKERS) else DESKTOP


def methods_for_device(methods: frozenset[PayMethod], device: str) -> list[PayMethod]:
    """The ways to pay, of those a gateway has, that work on `device`, in display order."""
    if device == MOBILE:
        if PayMethod.WAP in methods:
            return [PayMethod.WAP]
        return [PayMethod.PAGE] if PayMethod.PAGE in methods else []
    return [method for method in (PayMethod.PAGE, PayMethod.QR) if method in methods]


@lru_cache(maxsize=32)
def _mark(code: str) -> str:
    """The provider's mark under static/img/pay/, or the generic one."""
    path = f"img/pay/{code}.svg"
    return path if finders.find(path) else "img/pay/generic.svg"


@dataclass(frozen=True)
class PayOption:
    gateway: Gateway
    method: PayMethod

    @property
    def value(self) -> str:
        return f"{self.gateway.code}:{self.method.value}"

    @property
    def label(self) -> str:
        return str(LABELS[self.method]) % {"gateway": self.gateway.display_name}

    @property
    def hint(self) -> str:
        return str(HINTS[self.method]) % {"gateway": self.gateway.display_name}

    @property
    def mark(self) -> str:
        return _mark(self.gateway.code)


def pay_options(gateways: list[Gateway], device: str) -> list[PayOption]:
    """Every way to pay this device can use, gateway by gateway in cashier order."""
    return [PayOption(gateway, method) for gateway in gateways
            for method in methods_for_device(gateway.methods, device)]
