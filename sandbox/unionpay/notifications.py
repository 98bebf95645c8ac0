"""UnionPay back notifications (docs/gateways-alipay-unionpay.md B7, B10, B16).

A form-encoded UTF-8 POST to the transaction's backUrl (a consume's, or the
refund's own), every field signed, signPubKeyCert included, no certId. Any
HTTP 200 acknowledges, whatever the body; anything else, or no answer, is
sent again. UnionPay does not document its re-send schedule (B7); the
sandbox assumes 1m, 2m, 4m, 8m, 16m, 32m (times the time scale;
`notify_schedules.unionpay`). Each send is signed afresh.

Forgeries (fault mode `forge`) go before the real notification: some fail
the signature or certificate checks (bad_signature, impostor_chain,
wrong_cn, expired_certificate, tampered_amount, malformed), others are
validly signed lies for the merchant's own checks (signed_wrong_amount,
wrong_merchant, wrong_txn_time, unknown_order).
"""
from __future__ import annotations

import secrets
import urllib.parse
from datetime import datetime, timedelta

from sandbox.models import Notification, Refund, Trade
from sandbox.notifications import notification_queue
from sandbox.providers import OutgoingNotification
from sandbox.unionpay.keyring import (
    expired_signer,
    impostor_signer,
    stranger_key,
    unionpay_signer,
    wrong_cn_signer,
)
from sandbox.unionpay.messages import BEIJING, parse_txn_time, txn_time
from sandbox.unionpay.messages import sign as rsa_sign
from sandbox.unionpay.wire import PROVIDER, consume_fields, refund_fields, signed

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=UTF-8"
STRANGER_MER_ID = "898110000009999"


def unionpay_notify_payment(trade: Trade) -> Notification | None:
    """Queue the back notification of a consume just paid, to its backUrl."""
    return notification_queue(provider=PROVIDER, kind=Notification.Kind.PAYMENT, trade=trade,
                              fields=consume_fields(trade), notification_id=secrets.token_hex(16))


def unionpay_notify_refund(refund: Refund) -> Notification | None:
    """Queue the back notification of a refund that succeeded, to the refund's backUrl."""
    return notification_queue(provider=PROVIDER, kind=Notification.Kind.REFUND, trade=refund.trade, refund=refund,
                              fields=refund_fields(refund), url=refund.notify_url,
                              notification_id=secrets.token_hex(16))


def _tiny(amount: str) -> str:
    return "2" if amount == "1" else "1"


def _earlier(text: str) -> str:
    return txn_time(parse_txn_time(text).astimezone(BEIJING) - timedelta(days=1))


def _real(fields: dict[str, str]) -> dict[str, str]:
    return signed(fields)


def _signed_with_wrong_key(fields: dict[str, str]) -> dict[str, str]:
    # The real certificate, but a signature it cannot verify.
    message = {**fields, "signPubKeyCert": unionpay_signer().certificate_pem}
    message["signature"] = rsa_sign(message, stranger_key())
    return message


def _variant_fields(fields: dict[str, str], variant: str) -> dict[str, str]:
    if variant == "real":
        return _real(fields)
    if variant == "bad_signature":
        return _signed_with_wrong_key(fields)
    if variant == "impostor_chain":
        return signed(fields, impostor_signer())
    if variant == "wrong_cn":
        return signed(fields, wrong_cn_signer())
    if variant == "expired_certificate":
        return signed(fields, expired_signer())
    if variant == "tampered_amount":
        message = _real(fields)
        return {**message, "txnAmt": _tiny(fields["txnAmt"])}
    if variant == "signed_wrong_amount":
        return _real({**fields, "txnAmt": _tiny(fields["txnAmt"])})
    if variant == "wrong_merchant":
        return _real({**fields, "merId": STRANGER_MER_ID})
    if variant == "wrong_txn_time":
        return _real({**fields, "txnTime": _earlier(fields["txnTime"])})
    if variant == "unknown_order":
        return _real({**fields, "orderId": f"SANDBOX{secrets.randbelow(10**12):012d}"})
    raise ValueError(f"unknown variant {variant}")


class UnionPayNotificationFormat:
    # B7: undocumented; 1m, 2m, 4m, 8m, 16m, 32m is the sandbox's assumption.
    default_schedule: tuple[float, ...] = (60.0, 120.0, 240.0, 480.0, 960.0, 1920.0)
    default_forgeries: tuple[str, ...] = ("bad_signature", "impostor_chain")
    forgery_variants = frozenset({
        "bad_signature", "impostor_chain", "wrong_cn", "expired_certificate", "tampered_amount", "malformed",
        "signed_wrong_amount", "wrong_merchant", "wrong_txn_time", "unknown_order",
    })

    def render(self, notification: Notification, *, sent_at: datetime, variant: str) -> OutgoingNotification:
        if variant == "malformed":
            return OutgoingNotification(body=b"orderId=%ZZ&&signature", content_type=FORM_CONTENT_TYPE)
        fields = {str(name): str(value) for name, value in notification.fields.items()}
        body = urllib.parse.urlencode(_variant_fields(fields, variant), encoding="utf-8").encode("ascii")
        return OutgoingNotification(body=body, content_type=FORM_CONTENT_TYPE)

    def is_acknowledged(self, status_code: int, body: bytes) -> bool:
        # B7: HTTP 200 is the acknowledgement; the body is not read.
        return status_code == 200

