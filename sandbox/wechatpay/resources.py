"""The WeChat Pay view of the core trades and refunds, and the JSON objects
that describe them (docs/gateways-wechatpay.md §5.3, §5.4, §6.6).

trade_state: prepaid (scanned or not) -> NOTPAY, also once past
time_expire (the deadline refuses payment but does not close the trade);
paid -> SUCCESS, or REFUND once any refund was accepted; failed ->
PAYERROR; closed -> CLOSED; voided (closed before it was ever prepaid) ->
no such order. Refund status: PROCESSING, SUCCESS, ABNORMAL, CLOSED.
"""
from __future__ import annotations

from typing import Any

from sandbox import config
from sandbox.models import Refund, Trade
from sandbox.wechatpay.formats import rfc3339

PROVIDER = "wechatpay"
CURRENCY = "CNY"
USER_RECEIVED_ACCOUNT = "支付用户零钱"
REFUND_CHANNEL = "ORIGINAL"
FUNDS_ACCOUNT = "AVAILABLE"

TRADE_STATE_DESCRIPTIONS = {
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "NOTPAY": "未支付",
    "CLOSED": "已关闭",
    "PAYERROR": "支付失败，请重新下单支付",
}
# Keyed by Refund.status as stored (text; the Status members are str too).
REFUND_STATUSES: dict[str, str] = {
    Refund.Status.PROCESSING: "PROCESSING",
    Refund.Status.SUCCEEDED: "SUCCESS",
    Refund.Status.ABNORMAL: "ABNORMAL",
    Refund.Status.CLOSED: "CLOSED",
}
REFUND_END_STATUSES = {wire: status for status, wire in REFUND_STATUSES.items() if wire != "PROCESSING"}


def wire_trade_state(trade: Trade) -> str | None:
    """The trade_state WeChat reports, or None when it has no such order."""
    if trade.status in (Trade.Status.ANNOUNCED, Trade.Status.PENDING):
        return "NOTPAY"
    if trade.status == Trade.Status.PAID:
        return "REFUND" if trade.refunds.exists() else "SUCCESS"
    if trade.status == Trade.Status.FAILED:
        return "PAYERROR"
    if trade.status == Trade.Status.CLOSED:
        return "CLOSED"
    return None


def transaction_object(trade: Trade, *, trade_state: str | None = None) -> dict[str, Any]:
    """§5.3: the query answer, and the payment notification's resource."""
    state = trade_state or wire_trade_state(trade) or "NOTPAY"
    paid = state in ("SUCCESS", "REFUND")
    node: dict[str, Any] = {
        "appid": trade.wire.get("appid", config.WECHATPAY_APPID),
        "mchid": config.WECHATPAY_MCHID,
        "out_trade_no": trade.out_trade_no,
    }
    if paid:
        node["transaction_id"] = trade.trade_no
    node.update(trade_type=trade.wire.get("trade_type", "NATIVE"), trade_state=state,
                trade_state_desc=TRADE_STATE_DESCRIPTIONS[state])  # fmt: skip
    if paid:
        assert trade.paid_at is not None  # trade_pay() stamps every paid trade
        node.update(bank_type=config.WECHATPAY_BANK_TYPE, success_time=rfc3339(trade.paid_at))
    node["attach"] = trade.wire.get("attach", "")
    if paid:
        node["payer"] = {"openid": config.WECHATPAY_PAYER_OPENID}
    node["amount"] = {
        "total": trade.amount_minor,
        "payer_total": trade.amount_minor if paid else 0,
        "currency": CURRENCY,
        "payer_currency": CURRENCY,
    }
    if paid:
        node["promotion_detail"] = []
    return node


def _refund_amount(refund: Refund, trade: Trade) -> dict[str, Any]:
    return {
        "total": trade.amount_minor,
        "refund": refund.amount_minor,
        "from": [],
        "payer_total": trade.amount_minor,
        "payer_refund": refund.amount_minor,
        "settlement_refund": refund.amount_minor,
        "settlement_total": trade.amount_minor,
        "discount_refund": 0,
        "currency": CURRENCY,
        "refund_fee": 0,
    }


def refund_object(refund: Refund) -> dict[str, Any]:
    """§6.6: the refund create and refund query answer."""
    trade = refund.trade
    status = REFUND_STATUSES[refund.status]
    node: dict[str, Any] = {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        "channel": REFUND_CHANNEL,
        "user_received_account": USER_RECEIVED_ACCOUNT,
    }
    if status == "SUCCESS":
        assert refund.succeeded_at is not None  # services._settle() stamps every success
        node["success_time"] = rfc3339(refund.succeeded_at)
    node.update(
        create_time=rfc3339(refund.created_at),
        status=status,
        funds_account=FUNDS_ACCOUNT,
        amount=_refund_amount(refund, trade),
        promotion_detail=[],
    )
    return node


def refund_resource(refund: Refund) -> dict[str, Any]:
    """§5.4: the refund notification's resource (`refund_status`, fewer amounts)."""
    trade = refund.trade
    status = REFUND_STATUSES[refund.status]
    node: dict[str, Any] = {
        "mchid": config.WECHATPAY_MCHID,
        "out_trade_no": trade.out_trade_no,
        "transaction_id": trade.trade_no,
        "out_refund_no": refund.out_refund_no,
        "refund_id": refund.refund_id,
        "refund_status": status,
    }
    if status == "SUCCESS":
        assert refund.succeeded_at is not None  # services._settle() stamps every success
        node["success_time"] = rfc3339(refund.succeeded_at)
    node.update(
        user_received_account=USER_RECEIVED_ACCOUNT,
        amount={
            "total": trade.amount_minor,
            "refund": refund.amount_minor,
            "payer_total": trade.amount_minor,
            "payer_refund": refund.amount_minor,
        },
    )
    return node
