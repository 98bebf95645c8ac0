"""WeChat Pay v3 notifications (docs/gateways-wechatpay.md §4, §5).

A JSON POST: the envelope `{"id","create_time","resource_type":
"encrypt-resource","event_type","summary","resource":{...}}` whose
`resource` is the business object (§5.3 transaction, §5.4 refund)
encrypted with AEAD_AES_256_GCM under the APIv3 key, with a fresh
12-character nonce and `associated_data` "transaction" or "refund". The
headers are signed like an answer: `Wechatpay-Timestamp` (real Unix time,
fresh for every send), `-Nonce`, `-Signature` (platform key over
`ts\\nnonce\\nbody\\n`), `-Serial` (the public key id), `-Signature-Type`,
and a `Request-ID`.

The `id` (`EV-` + 32 hex) stays the same across re-sends of one event;
each send is encrypted and signed afresh. Any 2xx acknowledges (§5.5);
anything else, or no answer, is re-sent after 15s, 15s, 30s, 3m, 10m, 20m,
30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h (§5.6; times the time scale).
Payments notify TRANSACTION.SUCCESS to the trade's notify_url; refunds
notify REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED to the refund's
own notify_url (none given: no notification). A trade an API v2 call
created is notified in v2's XML instead (sandbox/wechatpay/v2/notifications.py).
"""
from __future__ import annotations

import hashlib
import time
from datetime import datetime
from typing import Any

from sandbox import config
from sandbox.models import Notification, Refund, Trade
from sandbox.notifications import notification_queue
from sandbox.providers import OutgoingNotification
from sandbox.runtime import provider_now
from sandbox.wechatpay.api import json_bytes
from sandbox.wechatpay.formats import new_notification_id, new_request_id, rfc3339
from sandbox.wechatpay.keyring import api_v3_key, forger_private_key, platform_private_key
from sandbox.wechatpay.resources import PROVIDER, REFUND_STATUSES, refund_resource, transaction_object
from sandbox.wechatpay.signing import (
    AEAD_ALGORITHM,
    SCHEME,
    SIGN_PROBE_PREFIX,
    aes_gcm_encrypt,
    answer_message,
    new_nonce,
    new_resource_nonce,
    rsa_sign,
)
from sandbox.wechatpay.v2 import notifications as v2_notifications

RESOURCE_TYPE = "encrypt-resource"
REFUND_EVENTS = {
    "SUCCESS": ("REFUND.SUCCESS", "退款成功"),
    "ABNORMAL": ("REFUND.ABNORMAL", "退款异常"),
    "CLOSED": ("REFUND.CLOSED", "退款关闭"),
}
# What forgeries claim instead of the truth.
STRANGER_MCHID = "1900009999"
UNKNOWN_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000002025112200000000009999"
WRONG_API_V3_KEY = b"NotTheApiV3KeyOfThisMerchant0000"
STALE_SECONDS = 600


def _fields(*, event_type: str, summary: str, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "create_time": rfc3339(provider_now()),
        "event_type": event_type,
        "summary": summary,
        "original_type": kind,
        "associated_data": kind,
        "resource": resource,
    }


def wechatpay_notify_payment(trade: Trade) -> Notification | None:
    """Queue the TRANSACTION.SUCCESS notification of a trade just paid."""
    if v2_notifications.is_v2_trade(trade):
        fields = v2_notifications.payment_fields(trade)
    else:
        fields = _fields(
            event_type="TRANSACTION.SUCCESS",
            summary="支付成功",
            kind="transaction",
            resource=transaction_object(trade, trade_state="SUCCESS"),
        )
    return notification_queue(
        provider=PROVIDER,
        kind=Notification.Kind.PAYMENT,
        trade=trade,
        fields=fields,
        notification_id=new_notification_id(),
    )


def wechatpay_notify_refund(refund: Refund) -> Notification | None:
    """Queue the notification of a refund that just ended, to its own notify_url."""
    if v2_notifications.is_v2_trade(refund.trade):
        fields = v2_notifications.refund_fields(refund)
    else:
        event_type, summary = REFUND_EVENTS[REFUND_STATUSES[refund.status]]
        fields = _fields(event_type=event_type, summary=summary, kind="refund", resource=refund_resource(refund))
    return notification_queue(
        provider=PROVIDER,
        kind=Notification.Kind.REFUND,
        trade=refund.trade,
        refund=refund,
        fields=fields,
        url=refund.notify_url,
        notification_id=new_notification_id(),
    )


def _tampered_amount(resource: dict[str, Any]) -> dict[str, Any]:
    # Claim a tiny amount: 1 fen (2 when the truth is 1 fen).
    amount = dict(resource["amount"])
    key = "refund" if "refund" in amount else "total"
    fake = 2 if amount[key] == 1 else 1
    payer_key = "payer_refund" if key == "refund" else "payer_total"
    amount.update({key: fake, payer_key: fake})
    return {**resource, "amount": amount}


def _lie_id(notification: Notification, variant: str) -> str:
    # A validly signed lie is another event: its own id, so that a merchant
    # deduplicating by id still takes the real one afterwards.
    return "EV-" + hashlib.sha256(f"{notification.notification_id}:{variant}".encode()).hexdigest()[:32]


class WechatPayNotificationFormat:
    # §5.6: 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
    default_schedule: tuple[float, ...] = (
        15.0, 15.0, 30.0, 180.0, 600.0, 1200.0, 1800.0, 1800.0, 1800.0, 3600.0,
        10800.0, 10800.0, 10800.0, 21600.0, 21600.0,
    )  # fmt: skip
    default_forgeries: tuple[str, ...] = ("bad_signature", "undecryptable")
    # Refused by a careful merchant's signature and decryption checks (§9
    # steps 1-5), with the real event's id: bad_signature (a stranger's
    # key), unknown_serial (Wechatpay-Serial names another key), stale_timestamp
    # (signed 10 minutes ago), undecryptable (resource sealed with another
    # APIv3 key), sign_probe (`WECHATPAY/SIGNTEST/` signature, §4.4).
    # Validly signed and encrypted lies, for the business checks (§9 steps
    # 6-7), under their own ids: tampered_amount (1 fen), wrong_mchid.
    forgery_variants = frozenset(
        {
            "bad_signature",
            "unknown_serial",
            "stale_timestamp",
            "undecryptable",
            "sign_probe",
            "tampered_amount",
            "wrong_mchid",
            # API v2 only: req_info whose PKCS#7 padding is broken.
            "bad_padding",
        }
    )

    def render(self, notification: Notification, *, sent_at: datetime, variant: str) -> OutgoingNotification:
        fields = notification.fields
        if fields.get("api") == v2_notifications.API:
            return v2_notifications.render(notification, variant=variant)
        resource = fields["resource"]
        envelope_id = notification.notification_id
        signing_key = platform_private_key()
        serial = config.WECHATPAY_PUBLIC_KEY_ID
        key = api_v3_key()
        timestamp = int(time.time())
        if variant == "bad_signature":
            signing_key = forger_private_key()
        elif variant == "unknown_serial":
            serial = UNKNOWN_PUBLIC_KEY_ID
        elif variant == "stale_timestamp":
            timestamp -= STALE_SECONDS
        elif variant in ("undecryptable", "bad_padding"):
            # v3's GCM has no padding: a v2 bad_padding is a resource that does not decrypt.
            key = WRONG_API_V3_KEY
        elif variant == "tampered_amount":
            resource, envelope_id = _tampered_amount(resource), _lie_id(notification, variant)
        elif variant == "wrong_mchid":
            resource, envelope_id = {**resource, "mchid": STRANGER_MCHID}, _lie_id(notification, variant)
        resource_nonce = new_resource_nonce()
        envelope = {
            "id": envelope_id,
            "create_time": fields["create_time"],
            "resource_type": RESOURCE_TYPE,
            "event_type": fields["event_type"],
            "summary": fields["summary"],
            "resource": {
                "original_type": fields["original_type"],
                "algorithm": AEAD_ALGORITHM,
                "ciphertext": aes_gcm_encrypt(key, resource_nonce, json_bytes(resource), fields["associated_data"]),
                "associated_data": fields["associated_data"],
                "nonce": resource_nonce,
            },
        }
        body = json_bytes(envelope)
        nonce = new_nonce()
        signature = rsa_sign(answer_message(str(timestamp), nonce, body), signing_key)
        if variant == "sign_probe":
            signature = SIGN_PROBE_PREFIX + signature
        headers = {
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": signature,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature-Type": SCHEME,
            "Request-ID": new_request_id(),
        }
        return OutgoingNotification(body=body, content_type="application/json", headers=headers)

    def is_acknowledged(self, status_code: int, body: bytes) -> bool:
        # §5.5: the status decides; any 2xx, whatever the body.
        return 200 <= status_code < 300
