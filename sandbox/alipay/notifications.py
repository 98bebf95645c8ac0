"""Alipay asynchronous notifications (docs/gateways-alipay-unionpay.md A8).

A form-encoded UTF-8 POST to the trade's notify_url: `notify_id` stays the
same across re-sends, `notify_time` and `sign` are made afresh for each
send, `sign` and `sign_type` are left out of the signed text, and
`fund_bill_list` is a compact JSON string. Only HTTP 200 with the body
`success`, exactly, stops the re-sends. A refund sends the payment's
notification again with the refund fields: TRADE_SUCCESS after a partial
refund, TRADE_CLOSED (with gmt_close) once nothing is left.
"""
from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

from sandbox import config
from sandbox.alipay.formats import beijing_text, yuan_text
from sandbox.alipay.keyring import forger_private_key, gateway_private_key
from sandbox.alipay.signing import NOTIFICATION_UNSIGNED, canonical_string, rsa2_sign
from sandbox.models import Notification, Refund, Trade
from sandbox.notifications import notification_queue
from sandbox.providers import OutgoingNotification

PROVIDER = "alipay"
NOTIFY_TYPE = "trade_status_sync"
FUND_CHANNEL = "ALIPAYACCOUNT"


def _common_fields(trade: Trade) -> dict[str, str]:
    amount = yuan_text(trade.amount_minor)
    fields = {
        "notify_type": NOTIFY_TYPE,
        "app_id": config.ALIPAY_APP_ID,
        "auth_app_id": config.ALIPAY_APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "sign_type": "RSA2",
        "trade_no": trade.trade_no or "",
        "out_trade_no": trade.out_trade_no,
        "buyer_id": config.ALIPAY_BUYER_ID,
        "buyer_logon_id": config.ALIPAY_BUYER_LOGON_ID,
        "seller_id": config.ALIPAY_SELLER_ID,
        "seller_email": config.ALIPAY_SELLER_EMAIL,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "receipt_amount": amount,
        "invoice_amount": amount,
        "buyer_pay_amount": amount,
        "point_amount": "0.00",
        "subject": trade.subject,
        "body": trade.body,
        "passback_params": trade.wire.get("passback_params", ""),
        "gmt_create": beijing_text(trade.opened_at) if trade.opened_at else "",
        "gmt_payment": beijing_text(trade.paid_at) if trade.paid_at else "",
        "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": FUND_CHANNEL}], separators=(",", ":")),
    }
    # Alipay sends only the fields that have a value.
    return {name: value for name, value in fields.items() if value}


def alipay_notify_payment(trade: Trade) -> Notification | None:
    """Queue the TRADE_SUCCESS notification of a trade just paid."""
    return notification_queue(
        provider=PROVIDER, kind=Notification.Kind.PAYMENT, trade=trade, fields=_common_fields(trade)
    )


def alipay_notify_refund(trade: Trade, refund: Refund) -> Notification | None:
    """Queue the notification a settled refund triggers; `trade` as after the refund."""
    assert refund.succeeded_at is not None  # settled: services._settle() stamped it
    fields = _common_fields(trade)
    fields.update(
        refund_fee=yuan_text(trade.refunded_minor),
        gmt_refund=beijing_text(refund.succeeded_at),
        out_biz_no=refund.out_refund_no,
    )
    if trade.fully_refunded:
        fields.update(trade_status="TRADE_CLOSED", gmt_close=beijing_text(refund.succeeded_at))
    return notification_queue(
        provider=PROVIDER, kind=Notification.Kind.REFUND, trade=trade, refund=refund, fields=fields
    )


def _tampered_amount(fields: dict[str, str]) -> dict[str, str]:
    # The classic attack: claim a big order was settled by a tiny payment.
    return {**fields, "total_amount": "0.01", "receipt_amount": "0.01", "buyer_pay_amount": "0.01"}


class AlipayNotificationFormat:
    # The classic re-send series of A8: 4m, 10m, 10m, 1h, 2h, 6h, 15h.
    default_schedule: tuple[float, ...] = (240.0, 600.0, 600.0, 3600.0, 7200.0, 21600.0, 54000.0)
    default_forgeries: tuple[str, ...] = ("bad_signature", "tampered_amount")
    # bad_signature: signed with a key the merchant does not trust.
    # tampered_amount: amounts changed after signing (signature now wrong).
    # signed_wrong_amount / wrong_app_id / wrong_seller: validly signed but
    # about another amount, app or seller, for the merchant's A13 checks.
    forgery_variants = frozenset(
        {"bad_signature", "tampered_amount", "signed_wrong_amount", "wrong_app_id", "wrong_seller"}
    )

    def render(self, notification: Notification, *, sent_at: datetime, variant: str) -> OutgoingNotification:
        fields = {**notification.fields, "notify_time": beijing_text(sent_at), "notify_id": notification.notification_id}
        signing_key = gateway_private_key()
        signed_fields = fields
        if variant == "bad_signature":
            signing_key = forger_private_key()
        elif variant == "tampered_amount":
            fields = _tampered_amount(fields)
        elif variant == "signed_wrong_amount":
            fields = signed_fields = _tampered_amount(fields)
        elif variant == "wrong_app_id":
            fields = signed_fields = {**fields, "app_id": "2021000199999999", "auth_app_id": "2021000199999999"}
        elif variant == "wrong_seller":
            fields = signed_fields = {**fields, "seller_id": "2088000000000999"}
        sign = rsa2_sign(canonical_string(signed_fields, unsigned=NOTIFICATION_UNSIGNED), signing_key)
        body = urlencode({**fields, "sign": sign}).encode("utf-8")
        return OutgoingNotification(body=body, content_type="application/x-www-form-urlencoded; charset=utf-8")

    def is_acknowledged(self, status_code: int, body: bytes) -> bool:
        return status_code == 200 and body == b"success"
