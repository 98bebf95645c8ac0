"""Payment and refund notifications of WeChat Pay API v3: verify, decrypt, check.

Follows docs/gateways-wechatpay.md §9 "on every notification", in its order:
the four `Wechatpay-*` headers, the signature type, freshness (against the
time the notification was received, so a stored one can be processed
again), the serial, the RSA signature over the raw body (§4), then the
envelope (§5.1), AEAD_AES_256_GCM decryption with the APIv3 key (§5.2)
and the business checks on the decrypted object (§5.3, §5.4). Every
failure is an InvalidNotification whose reason names ids only, never the
decrypted text.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from payments.exceptions import InvalidNotification
from payments.gateways.base import (
    GatewayRefundStatus,
    PaymentNotification,
    RawNotification,
    RefundNotification,
    TradeStatus,
)
from payments.gateways.wechatpay.client import parse_json_object
from payments.gateways.wechatpay.formats import (
    OUT_REFUND_NO,
    OUT_TRADE_NO,
    PROVIDER_ID,
    check_fen,
    parse_rfc3339,
)
from payments.gateways.wechatpay.signing import (
    ResourceProblem,
    SignatureProblem,
    check_signed,
    decrypt_resource,
)

logger = logging.getLogger(__name__)

RESOURCE_TYPE = "encrypt-resource"
EVENT_TRANSACTION_SUCCESS = "TRANSACTION.SUCCESS"
EVENT_REFUND_SUCCESS = "REFUND.SUCCESS"
EVENT_REFUND_ABNORMAL = "REFUND.ABNORMAL"
EVENT_REFUND_CLOSED = "REFUND.CLOSED"
TRADE_STATE_SUCCESS = "SUCCESS"
CURRENCY = "CNY"

# §5.4, §6.6: `refund_status` in a notification. The OpenAPI enum's `CLOSE`
# is probably a typo of `CLOSED`; accept both.
REFUND_NOTIFIED_STATUSES = {
    "SUCCESS": GatewayRefundStatus.SUCCEEDED,
    "CLOSED": GatewayRefundStatus.CLOSED,
    "CLOSE": GatewayRefundStatus.CLOSED,
    "ABNORMAL": GatewayRefundStatus.ABNORMAL,
}
REFUND_EVENTS = {
    EVENT_REFUND_SUCCESS: GatewayRefundStatus.SUCCEEDED,
    EVENT_REFUND_ABNORMAL: GatewayRefundStatus.ABNORMAL,
    EVENT_REFUND_CLOSED: GatewayRefundStatus.CLOSED,
}


@dataclass(frozen=True)
class Recipient:
    """Who a notification must be for, and the keys that prove it came from WeChat Pay."""

    mchid: str
    appid: str
    public_key: rsa.RSAPublicKey
    public_key_id: str
    api_v3_key: bytes


@dataclass(frozen=True)
class Opened:
    """A verified envelope and its decrypted resource."""

    notification_id: str
    event_type: str
    resource: dict[str, Any]


def open_notification(raw: RawNotification, recipient: Recipient) -> Opened:
    """§9 steps 1-5: verify the signature first, then read and decrypt the envelope."""
    try:
        check_signed(
            raw.header,
            raw.body,
            public_key=recipient.public_key,
            public_key_id=recipient.public_key_id,
            now=raw.received_at,
        )
    except SignatureProblem as exc:
        raise InvalidNotification(exc.reason) from None
    try:
        envelope = parse_json_object(raw.body)
    except ValueError as exc:
        raise InvalidNotification(f"the body is not a JSON object ({exc})") from None
    notification_id = _text(envelope, "id", PROVIDER_ID.fullmatch, "notification")
    event_type = envelope.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidNotification("the notification has no event_type")
    if envelope.get("resource_type") != RESOURCE_TYPE:
        raise InvalidNotification(f"resource_type {_short(envelope.get('resource_type'))} is not {RESOURCE_TYPE}")
    resource = envelope.get("resource")
    if not isinstance(resource, dict):
        raise InvalidNotification("the notification has no resource object")
    try:
        plaintext = decrypt_resource(recipient.api_v3_key, resource)
    except ResourceProblem as exc:
        raise InvalidNotification(exc.reason) from None
    try:
        decrypted = parse_json_object(plaintext)
    except ValueError as exc:
        raise InvalidNotification(f"the decrypted resource is not a JSON object ({exc})") from None
    return Opened(notification_id=notification_id, event_type=event_type, resource=decrypted)


def payment_notification(raw: RawNotification, recipient: Recipient) -> PaymentNotification:
    """A verified TRANSACTION.SUCCESS for our merchant and app (§5.3, §9 step 6).

    `amount_minor` is `amount.total`, the order amount, never `payer_total`
    (smaller when coupons apply). `dedupe_key` is the notification id.
    """
    opened = open_notification(raw, recipient)
    if opened.event_type != EVENT_TRANSACTION_SUCCESS:
        raise InvalidNotification(f"event_type {_short(opened.event_type)} is not {EVENT_TRANSACTION_SUCCESS}")
    trade = opened.resource
    _check_ours(trade, "mchid", recipient.mchid)
    _check_ours(trade, "appid", recipient.appid)
    if trade.get("trade_state") != TRADE_STATE_SUCCESS:
        raise InvalidNotification(f"trade_state {_short(trade.get('trade_state'))} is not {TRADE_STATE_SUCCESS}")
    out_trade_no = _text(trade, "out_trade_no", OUT_TRADE_NO.fullmatch)
    transaction_id = _text(trade, "transaction_id", PROVIDER_ID.fullmatch)
    amount = _amount(trade)
    total = _fen(amount, "total")
    if amount.get("currency") != CURRENCY:
        raise InvalidNotification(f"amount.currency {_short(amount.get('currency'))} is not {CURRENCY}")
    paid_at = _time(trade, "success_time", required=True)
    logger.info("wechatpay notification %s for %s: %s", opened.notification_id, out_trade_no, opened.event_type)
    return PaymentNotification(
        out_trade_no=out_trade_no,
        status=TradeStatus.SUCCEEDED,
        amount_minor=total,
        gateway_trade_no=transaction_id,
        dedupe_key=opened.notification_id,
        paid_at=paid_at,
        raw={**trade, "notification_id": opened.notification_id, "event_type": opened.event_type},
    )


def refund_notification(raw: RawNotification, recipient: Recipient) -> RefundNotification:
    """A verified REFUND.SUCCESS / ABNORMAL / CLOSED for our merchant (§5.4, §9 step 7).

    The refund object carries no appid; `mchid` must be ours. The event
    and `refund_status` must agree.
    """
    opened = open_notification(raw, recipient)
    event_status = REFUND_EVENTS.get(opened.event_type)
    if event_status is None:
        raise InvalidNotification(f"event_type {_short(opened.event_type)} is not a refund event")
    refund = opened.resource
    _check_ours(refund, "mchid", recipient.mchid)
    refund_status = refund.get("refund_status")
    status = REFUND_NOTIFIED_STATUSES.get(refund_status) if isinstance(refund_status, str) else None
    if status is None:
        raise InvalidNotification(f"refund_status {_short(refund.get('refund_status'))} is unknown")
    if status is not event_status:
        raise InvalidNotification(f"refund_status {refund_status} contradicts {opened.event_type}")
    out_trade_no = _text(refund, "out_trade_no", OUT_TRADE_NO.fullmatch)
    out_refund_no = _text(refund, "out_refund_no", OUT_REFUND_NO.fullmatch)
    refund_id = _text(refund, "refund_id", PROVIDER_ID.fullmatch)
    amount = _amount(refund)
    refunded = _fen(amount, "refund")
    total = _fen(amount, "total") if "total" in amount else None
    refunded_at = _time(refund, "success_time", required=status is GatewayRefundStatus.SUCCEEDED)
    logger.info("wechatpay notification %s for refund %s: %s", opened.notification_id, out_refund_no,
                opened.event_type)
    return RefundNotification(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        status=status,
        amount_minor=refunded,
        total_minor=total,
        gateway_refund_id=refund_id,
        dedupe_key=opened.notification_id,
        refunded_at=refunded_at if status is GatewayRefundStatus.SUCCEEDED else None,
        raw={**refund, "notification_id": opened.notification_id, "event_type": opened.event_type},
    )


# -- checks -------------------------------------------------------------------


def _short(value: object) -> str:
    """A value for a reason: scalars only, cut short; never a nested structure."""
    if value is None or isinstance(value, str | int):
        return repr(value)[:48]
    return f"<{type(value).__name__}>"


def _check_ours(node: Mapping[str, Any], name: str, expected: str) -> None:
    if node.get(name) != expected:
        raise InvalidNotification(f"{name} {_short(node.get(name))} is not ours")


def _text(node: Mapping[str, Any], name: str, valid: Callable[[str], object], owner: str = "resource") -> str:
    value = node.get(name)
    if not isinstance(value, str) or not valid(value):
        raise InvalidNotification(f"{owner} {name} is missing or malformed")
    return value


def _amount(node: Mapping[str, Any]) -> Mapping[str, Any]:
    amount = node.get("amount")
    if not isinstance(amount, dict):
        raise InvalidNotification("resource amount is missing")
    return amount


def _fen(amount: Mapping[str, Any], name: str) -> int:
    try:
        return check_fen(amount.get(name), f"amount.{name}")
    except ValueError as exc:
        raise InvalidNotification(str(exc)) from None


def _time(node: Mapping[str, Any], name: str, *, required: bool) -> datetime | None:
    value = node.get(name)
    if value in (None, "") and not required:
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        raise InvalidNotification(f"resource {name} is missing or not an RFC 3339 time") from None
