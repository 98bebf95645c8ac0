"""API v2 notifications (docs/gateways-wechatpay.md §10.4, §10.5), for the trades a v2 call created.

- Payment: an XML POST of §10.4's fields (`return_code`, `appid`, `mch_id`,
  `result_code`, `openid`, `trade_type`, `bank_type`, `total_fee`,
  `fee_type`, `cash_fee`, `transaction_id`, `out_trade_no`, `attach`,
  `time_end`, ...), a fresh `nonce_str` and `sign` on every send, signed
  with the order's sign_type (`sign_type` present when HMAC-SHA256).
- Refund: an XML POST of `return_code`, `appid`, `mch_id`, `nonce_str` and
  `req_info`, §10.5's fields encrypted afresh for each send; no sign.
- Acknowledged only by HTTP 200 with XML whose return_code is SUCCESS
  (§10.4: plain `success`, JSON, HTML, or XML with stray text is a
  failure); re-sent on WeChat Pay's schedule otherwise (§5.6, the same as v3).

Forgeries (`forge` fault rules) keep their meaning where v2 has it:
bad_signature signs with another key (a refund: req_info under another
key); unknown_serial, stale_timestamp and sign_probe, which v2 cannot
express (no serial, timestamp header or probe), do the same; undecryptable
and bad_padding break req_info (a payment: another key's sign);
tampered_amount and wrong_mchid are validly signed (encrypted) lies.
"""
from __future__ import annotations

from typing import Any

from sandbox import config
from sandbox.models import Notification, Refund, Trade
from sandbox.providers import OutgoingNotification
from sandbox.wechatpay.formats import BEIJING
from sandbox.wechatpay.resources import REFUND_STATUSES
from sandbox.wechatpay.v2 import envelope

API = "v2"
XML_CONTENT_TYPE = "text/xml"
V2_REFUND_RESULTS = {"SUCCESS": "SUCCESS", "ABNORMAL": "CHANGE", "CLOSED": "REFUNDCLOSE"}
REFUND_TIME = "%Y-%m-%d %H:%M:%S"
COMPACT_TIME = "%Y%m%d%H%M%S"
STRANGER_MCHID = "1900009999"
WRONG_API_KEY = "NotTheApiKeyOfThisMerchant000000"
FORGED_SIGN_VARIANTS = frozenset({"bad_signature", "unknown_serial", "stale_timestamp", "sign_probe"})
BROKEN_REQ_INFO_VARIANTS = frozenset({"undecryptable", "bad_padding"})


def is_v2_trade(trade: Trade) -> bool:
    return trade.wire.get("api") == API


def payment_fields(trade: Trade) -> dict[str, Any]:
    """What Notification.fields holds for a v2 payment notification (rendered per send)."""
    assert trade.paid_at is not None and trade.trade_no  # notified only once paid
    sign_type = str(trade.wire.get("sign_type") or envelope.MD5)
    message = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": str(trade.wire.get("appid", config.WECHATPAY_APPID)),
        "mch_id": config.WECHATPAY_MCHID,
        "result_code": "SUCCESS",
        "openid": config.WECHATPAY_PAYER_OPENID,
        "is_subscribe": "N",
        "trade_type": str(trade.wire.get("trade_type", "NATIVE")),
        "bank_type": config.WECHATPAY_BANK_TYPE,
        "total_fee": str(trade.amount_minor),
        "fee_type": "CNY",
        "cash_fee": str(trade.amount_minor),
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "attach": str(trade.wire.get("attach", "")),
        "time_end": trade.paid_at.astimezone(BEIJING).strftime(COMPACT_TIME),
    }
    if sign_type != envelope.MD5:
        message["sign_type"] = sign_type
    return {"api": API, "kind": "payment", "sign_type": sign_type, "message": message}


def refund_fields(refund: Refund) -> dict[str, Any]:
    """What Notification.fields holds for a v2 refund notification (encrypted per send)."""
    trade = refund.trade
    status = V2_REFUND_RESULTS[REFUND_STATUSES[refund.status]]
    info = {
        "transaction_id": trade.trade_no or "",
        "out_trade_no": trade.out_trade_no,
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "total_fee": str(trade.amount_minor),
        "settlement_total_fee": str(trade.amount_minor),
        "refund_fee": str(refund.amount_minor),
        "settlement_refund_fee": str(refund.amount_minor),
        "refund_status": status,
        "refund_recv_accout": "支付用户零钱",
        "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
        "refund_request_source": "API",
    }
    if status == "SUCCESS":
        assert refund.succeeded_at is not None  # services._settle() stamps every success
        info["success_time"] = refund.succeeded_at.astimezone(BEIJING).strftime(REFUND_TIME)
    outer = {"return_code": "SUCCESS", "appid": str(trade.wire.get("appid", config.WECHATPAY_APPID)),
             "mch_id": config.WECHATPAY_MCHID}  # fmt: skip
    return {"api": API, "kind": "refund", "outer": outer, "req_info": info}


def _lying(fields: dict[str, str], variant: str, amount_field: str) -> dict[str, str]:
    if variant == "tampered_amount":
        fake = "2" if fields[amount_field] == "1" else "1"
        return {**fields, amount_field: fake, **({"cash_fee": fake} if "cash_fee" in fields else {})}
    return fields


def render(notification: Notification, *, variant: str) -> OutgoingNotification:
    fields = notification.fields
    key = config.WECHATPAY_V2_API_KEY
    if fields["kind"] == "payment":
        message = _lying(dict(fields["message"]), variant, "total_fee")
        if variant == "wrong_mchid":
            message["mch_id"] = STRANGER_MCHID
        signing_key = WRONG_API_KEY if variant in FORGED_SIGN_VARIANTS | BROKEN_REQ_INFO_VARIANTS else key
        body = envelope.render(envelope.signed(message, signing_key, fields["sign_type"]))
    else:
        info = _lying(dict(fields["req_info"]), variant, "refund_fee")
        outer = dict(fields["outer"])
        if variant == "wrong_mchid":
            outer["mch_id"] = STRANGER_MCHID
        sealing_key = WRONG_API_KEY if variant in FORGED_SIGN_VARIANTS | {"undecryptable"} else key
        plaintext = envelope.render(info, root="root")
        req_info = envelope.encrypt_refund_info(plaintext, sealing_key, bad_padding=variant == "bad_padding")
        body = envelope.render({**outer, "nonce_str": envelope.new_nonce(), "req_info": req_info})
    return OutgoingNotification(body=body, content_type=XML_CONTENT_TYPE, acknowledged=is_acknowledged)


def is_acknowledged(status_code: int, body: bytes) -> bool:
    """§10.4: HTTP 200 and an XML answer whose return_code is SUCCESS, nothing else."""
    if status_code != 200:
        return False
    try:
        answer = envelope.parse(body.strip())
    except envelope.EnvelopeInvalid:
        return False
    return answer.get("return_code") == "SUCCESS"
