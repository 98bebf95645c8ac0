"""API v2 notifications: the payment notification (signed) and the refund
notification (`req_info` encrypted), read, verified and checked.

docs/gateways-wechatpay.md §10.4 and §10.5, with §9's order of checks:
the XML read safely (xml.py) before anything else; then for a payment
`return_code` SUCCESS, the `sign` with the algorithm `sign_type` names
(MD5 when absent, §10.2), `appid`/`mch_id` ours, `result_code` SUCCESS and
the trade's fields; for a refund (which carries no sign) `return_code`
SUCCESS, `appid`/`mch_id` ours, `req_info` decrypted with its PKCS#7
padding checked, and the decrypted fields. Amount and trade are checked
against our records by the services. Every failure is an
InvalidNotification whose reason names ids only, never decrypted text.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from payments.exceptions import InvalidNotification
from payments.gateways.base import (
    GatewayRefundStatus,
    PaymentNotification,
    RawNotification,
    RefundNotification,
    TradeStatus,
)
from payments.gateways.wechatpay.formats import OUT_REFUND_NO, OUT_TRADE_NO, PROVIDER_ID
from payments.gateways.wechatpay_v2.client import SUCCESS
from payments.gateways.wechatpay_v2.endpoints import CURRENCY, REFUND_STATUSES
from payments.gateways.wechatpay_v2.formats import parse_compact_time, parse_fen, parse_refund_time
from payments.gateways.wechatpay_v2.signing import (
    SIGN_TYPE_FIELD,
    RefundInfoProblem,
    SignatureProblem,
    check_signed,
    decrypt_refund_info,
    sign_type_of,
)
from payments.gateways.wechatpay_v2.xml import XmlProblem, parse_fields

logger = logging.getLogger(__name__)

# §10.4: the one answer WeChat takes as "received"; anything else is a failure.
ACK_BODY = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
# §10.4: "return_code=FAIL with a return_msg" asks for a resend. The reason
# is logged and stored, never told to the sender.
NACK_BODY = "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[报文无效]]></return_msg></xml>".encode()
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
REFUND_INFO_ROOT = "root"


@dataclass(frozen=True)
class Recipient:
    """Who a notification must be for, and the key that proves it came from WeChat Pay."""

    appid: str
    mch_id: str
    api_key: str


def _read(raw: RawNotification, recipient: Recipient) -> dict[str, str]:
    try:
        fields = parse_fields(raw.body)
    except XmlProblem as exc:
        raise InvalidNotification(exc.reason) from None
    if fields.get("return_code") != SUCCESS:
        raise InvalidNotification(f"return_code {_short(fields.get('return_code'))} is not SUCCESS")
    return fields


def _check_ours(fields: Mapping[str, str], recipient: Recipient) -> None:
    for name, ours in (("appid", recipient.appid), ("mch_id", recipient.mch_id)):
        if fields.get(name) != ours:
            raise InvalidNotification(f"{name} {_short(fields.get(name))} is not ours")


def payment_notification(raw: RawNotification, recipient: Recipient) -> PaymentNotification:
    """A verified, successful payment for our app and merchant (§10.4).

    `amount_minor` is `total_fee`, the order amount (never `cash_fee`,
    smaller when coupons apply). v2 notifications carry no id: the
    dedupe key is WeChat's transaction_id with the state, the same for
    every resend.
    """
    fields = _read(raw, recipient)
    try:
        sign_type = sign_type_of(fields.get(SIGN_TYPE_FIELD, ""))
        check_signed(fields, recipient.api_key, sign_type)
    except (ValueError, SignatureProblem) as exc:
        raise InvalidNotification(exc.reason if isinstance(exc, SignatureProblem) else str(exc)) from None
    _check_ours(fields, recipient)
    if fields.get("result_code") != SUCCESS:
        # Not a payment; the janitor's query decides what became of the trade.
        raise InvalidNotification(f"result_code {_short(fields.get('result_code'))} is not SUCCESS")
    out_trade_no = _text(fields, "out_trade_no", OUT_TRADE_NO.fullmatch)
    transaction_id = _text(fields, "transaction_id", PROVIDER_ID.fullmatch)
    if fields.get("fee_type", CURRENCY) != CURRENCY:
        raise InvalidNotification(f"fee_type {_short(fields.get('fee_type'))} is not {CURRENCY}")
    total = _fen(fields, "total_fee")
    paid_at = _time(fields, "time_end", parse_compact_time)
    logger.info("wechatpay v2 notification for %s: paid (%s)", out_trade_no, transaction_id)
    return PaymentNotification(
        out_trade_no=out_trade_no,
        status=TradeStatus.SUCCEEDED,
        amount_minor=total,
        gateway_trade_no=transaction_id,
        dedupe_key=f"{transaction_id}:{SUCCESS}",
        paid_at=paid_at,
        raw=fields,
    )


def refund_notification(raw: RawNotification, recipient: Recipient) -> RefundNotification:
    """A decrypted refund result for our app and merchant (§10.5).

    Trusted because `req_info` decrypts, with valid padding, under our API
    key and the ids are ours (it carries no sign). The dedupe key is
    out_refund_no with the reported status.
    """
    outer = _read(raw, recipient)
    _check_ours(outer, recipient)
    req_info = outer.get("req_info", "")
    if not req_info:
        raise InvalidNotification("req_info is missing")
    try:
        plaintext = decrypt_refund_info(req_info, recipient.api_key)
    except RefundInfoProblem as exc:
        raise InvalidNotification(exc.reason) from None
    try:
        refund = parse_fields(plaintext, root=REFUND_INFO_ROOT)
    except XmlProblem as exc:
        raise InvalidNotification(f"the decrypted req_info is not readable ({exc.reason})") from None
    status = REFUND_STATUSES.get(refund.get("refund_status", ""))
    if status is None or status is GatewayRefundStatus.PROCESSING:
        raise InvalidNotification(f"refund_status {_short(refund.get('refund_status'))} is not a refund result")
    out_trade_no = _text(refund, "out_trade_no", OUT_TRADE_NO.fullmatch)
    out_refund_no = _text(refund, "out_refund_no", OUT_REFUND_NO.fullmatch)
    refund_id = _text(refund, "refund_id", PROVIDER_ID.fullmatch)
    refunded = _fen(refund, "refund_fee")
    total = _fen(refund, "total_fee")
    refunded_at = _time(refund, "success_time", parse_refund_time) if status is GatewayRefundStatus.SUCCEEDED else None
    logger.info("wechatpay v2 refund notification for %s: %s", out_refund_no, refund.get("refund_status"))
    return RefundNotification(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        status=status,
        amount_minor=refunded,
        total_minor=total,
        gateway_refund_id=refund_id,
        dedupe_key=f"{out_refund_no}:{refund['refund_status']}",
        refunded_at=refunded_at,
        raw={**refund, "appid": outer.get("appid", ""), "mch_id": outer.get("mch_id", "")},
    )


# -- checks -------------------------------------------------------------------


def _short(value: object) -> str:
    """A value for a reason: cut short, never a whole body."""
    return repr(value)[:48] if isinstance(value, str | None) else f"<{type(value).__name__}>"


def _text(fields: Mapping[str, str], name: str, valid: Callable[[str], object]) -> str:
    value = fields.get(name, "")
    if not valid(value):
        raise InvalidNotification(f"{name} is missing or malformed")
    return value


def _fen(fields: Mapping[str, str], name: str) -> int:
    try:
        return parse_fen(fields.get(name, ""), name)
    except ValueError as exc:
        raise InvalidNotification(str(exc)) from None


def _time(fields: Mapping[str, str], name: str, parse: Callable[[str], datetime]) -> datetime:
    try:
        return parse(fields.get(name, ""))
    except ValueError:
        raise InvalidNotification(f"{name} is missing or malformed") from None
