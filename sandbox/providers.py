"""The providers the sandbox speaks, and what the core needs from each.

The core (notification dispatch, fault rules, runtime settings, keys) is
provider-neutral; each provider package hands it a `Provider` describing how
its notifications look and are acknowledged, and which fault targets and
modes its calls support, and the few lifecycle rules that differ between
providers. A new provider adds its package and one line to PROVIDERS.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from sandbox.models import Notification, Refund

PROVIDERS: dict[str, str] = {
    "alipay": "sandbox.alipay.provider.ALIPAY",
    "wechatpay": "sandbox.wechatpay.provider.WECHATPAY",
    "unionpay": "sandbox.unionpay.provider.UNIONPAY",
}

NOTIFY_TARGET_SUFFIX = ".notify"


@dataclass(frozen=True)
class OutgoingNotification:
    """One HTTP POST the dispatcher makes."""

    body: bytes
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)
    # Judges the merchant's answer to this send when it is not judged the
    # format's way (WeChat Pay API v2's XML acknowledgement beside v3's 2xx).
    acknowledged: Callable[[int, bytes], bool] | None = None


class NotificationFormat(Protocol):
    # Seconds between re-sends (before the time scale), after the first send.
    default_schedule: tuple[float, ...]
    # What a "forge" fault sends when it names no variants.
    default_forgeries: tuple[str, ...]
    forgery_variants: frozenset[str]

    def render(self, notification: Notification, *, sent_at: datetime, variant: str) -> OutgoingNotification:
        """The request for one send; `variant` is "real" or a forgery variant."""

    def is_acknowledged(self, status_code: int, body: bytes) -> bool:
        """Did the merchant's answer tell the provider to stop re-sending?"""


# A fault mode's parameter check: takes the posted parameters (with the
# rule's out_trade_no filter), returns the normalised parameters or raises
# faults.FaultRuleInvalid.
ParamsCheck = Callable[[Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Provider:
    code: str
    notification_format: NotificationFormat
    # target -> mode -> parameter check, for the provider's calls ("alipay.refund").
    call_faults: Mapping[str, Mapping[str, ParamsCheck]]
    # End a processing refund SUCCESS now (the money moves) and queue what
    # that sends, as a refund query that settles it does; raises
    # InvalidTransition when it has already ended. Used when the refund is
    # due by time (runtime setting refund_settle_after_seconds).
    refund_settle: Callable[[Refund], Refund]
    # Targets whose rules stay in force until cleared instead of being used up.
    standing_targets: frozenset[str] = frozenset()
    # Notification kind -> its fault target; a kind not named uses
    # "<code>.notify" (Alipay: payments and refunds alike).
    notify_targets: Mapping[str, str] = field(default_factory=dict)
    # Extra notification fault modes that send forgeries before the real
    # notification: mode -> forgery variants (WeChat Pay's "sign_probe").
    forgery_modes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Does passing the trade's deadline close it (Alipay: TRADE_CLOSED), or
    # only refuse payment while it still reads unpaid (WeChat Pay: NOTPAY
    # until the merchant closes it)?
    expiry_closes_trade: bool = True
    # How many refund queries a new refund stays processing for, unless a
    # fault rule says otherwise (runtime setting refund_processing_queries).
    default_refund_processing_queries: int = 0
    # Does a processing refund end by itself after a while (WeChat Pay)? The
    # start-up option --refund-settle-after then says when; the others start
    # with null (never) in refund_settle_after_seconds.
    refunds_settle_by_themselves: bool = False

    def notify_target(self, kind: str) -> str:
        return self.notify_targets.get(kind, self.code + NOTIFY_TARGET_SUFFIX)

    def notify_fault_targets(self) -> list[str]:
        return sorted({self.code + NOTIFY_TARGET_SUFFIX, *self.notify_targets.values()})


@cache
def provider_get(code: str) -> Provider:
    return import_string(PROVIDERS[code])


def provider_codes() -> list[str]:
    return list(PROVIDERS)
