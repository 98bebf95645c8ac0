"""Refunds: create and query (docs/gateways-wechatpay.md §6.5-§6.7).

`POST /v3/refund/domestic/refunds` names the payment by `transaction_id`
(wins) or `out_trade_no` and carries `out_refund_no`, optional `reason`
and `notify_url`, and `amount` {refund, total, currency}. Rules:
- the payment unknown or unpaid: 404 RESOURCE_NOT_EXISTS;
- `amount.total` other than the payment's total: 400 PARAM_ERROR;
- idempotent by out_refund_no: the same number and amount answer the same
  refund (whatever its status now) and never refund twice; another amount,
  or another payment, under a used number: 400 INVALID_REQUEST;
- more than what is left to refund (processing and abnormal refunds hold
  their amounts; closed ones release them): 400 INVALID_REQUEST.
A new refund is PROCESSING for the next `refund_processing_queries` refund
queries (runtime setting, WeChat Pay default 1; a `processing` fault rule
overrides it), then SUCCESS; with 0 it is SUCCESS at once. It also ends
SUCCESS by itself `refund_settle_after_seconds` (runtime setting, start-up
`--refund-settle-after`, default 10; times the time scale) after its
creation, whatever queries it still waits for (the notification dispatcher
does it). The control API can end a processing refund SUCCESS, ABNORMAL or
CLOSED. Every end sends the refund notification to the refund's notify_url
(none given: none).

`GET /v3/refund/domestic/refunds/{out_refund_no}` -> the §6.6 object; 404
RESOURCE_NOT_EXISTS when unknown.
"""
from __future__ import annotations

from django.db import transaction

from sandbox.exceptions import RefundConflict, RefundExceedsRefundable, TradeNotRefundable
from sandbox.models import FaultRule, Refund, Trade
from sandbox.notifications import dispatcher_wake
from sandbox.runtime import provider_now, refund_processing_queries
from sandbox.services import refund_request, trade_find
from sandbox.wechatpay import fields
from sandbox.wechatpay.api import Answer, V3Call
from sandbox.wechatpay.errors import WechatPayError, param_error
from sandbox.wechatpay.formats import OUT_REFUND_NO, OUT_TRADE_NO, new_refund_id
from sandbox.wechatpay.notifications import wechatpay_notify_refund
from sandbox.wechatpay.resources import PROVIDER, refund_object
from sandbox.wechatpay.trades import wechatpay_refund_note_query


def refund_find(out_refund_no: str) -> Refund | None:
    """The refund under the merchant's number (unique per merchant, §6.5)."""
    return Refund.objects.filter(trade__provider=PROVIDER, out_refund_no=out_refund_no).select_related("trade").first()


def _payment(call: V3Call) -> Trade | None:
    data = call.data
    transaction_id = fields.text(data, "transaction_id", max_length=32, required=False)
    out_trade_no = fields.text(data, "out_trade_no", max_length=32, required=False, pattern=OUT_TRADE_NO)
    if not transaction_id and not out_trade_no:
        raise param_error("out_trade_no", "transaction_id和out_trade_no必须二选一")
    return trade_find(PROVIDER, out_trade_no=out_trade_no, trade_no=transaction_id)


def refund_create(call: V3Call, fault: FaultRule | None) -> Answer:
    data = call.data
    out_refund_no = fields.text(data, "out_refund_no", max_length=64, pattern=OUT_REFUND_NO)
    reason = fields.text(data, "reason", max_length=80, required=False)
    notify_url = fields.notify_url(data, "notify_url", max_length=256, required=False)
    amount = fields.node(data, "amount")
    refund_minor = fields.fen(amount, "refund", label="amount.refund")
    total_minor = fields.fen(amount, "total", label="amount.total")
    fields.currency(amount, label="amount.currency", required=True)
    trade = _payment(call)
    if trade is None or trade.status != Trade.Status.PAID:
        raise WechatPayError("RESOURCE_NOT_EXISTS", "订单不存在或未支付")
    if total_minor != trade.amount_minor:
        raise param_error("amount.total", "与原订单金额不一致", value=total_minor)
    used = refund_find(out_refund_no)
    if used is not None and used.trade_id != trade.pk:
        raise WechatPayError("INVALID_REQUEST", "out_refund_no已用于另一笔订单的退款")
    if fault is not None and fault.mode == "processing":
        processing_queries = fault.params["queries"]
    else:
        processing_queries = refund_processing_queries(PROVIDER)
    try:
        with transaction.atomic():
            refund, created = refund_request(
                trade,
                out_refund_no=out_refund_no,
                amount_minor=refund_minor,
                reason=reason,
                processing_queries=processing_queries,
                refund_id=new_refund_id(provider_now()),
                notify_url=notify_url,
            )
            refund = Refund.objects.select_related("trade").get(pk=refund.pk)
            if created and refund.status == Refund.Status.SUCCEEDED:
                wechatpay_notify_refund(refund)
            elif created:
                # It may end by time (refund_settle_after_seconds): the
                # dispatcher counts from now.
                transaction.on_commit(dispatcher_wake)
    except RefundConflict:
        raise WechatPayError("INVALID_REQUEST", "订单金额或退款金额与之前请求不一致, 请核实后再试") from None
    except TradeNotRefundable:
        raise WechatPayError("INVALID_REQUEST", "订单已全额退款") from None
    except RefundExceedsRefundable:
        raise WechatPayError("INVALID_REQUEST", "申请退款金额超过订单可退金额") from None
    return Answer(data=refund_object(refund))


def refund_create_reference(call: V3Call, kwargs: dict[str, str]) -> str:
    out_trade_no = call.data.get("out_trade_no")
    if isinstance(out_trade_no, str) and out_trade_no:
        return out_trade_no
    transaction_id = call.data.get("transaction_id")
    if isinstance(transaction_id, str) and transaction_id:
        trade = Trade.objects.filter(provider=PROVIDER, trade_no=transaction_id).first()
        return trade.out_trade_no if trade is not None else ""
    return ""


def refund_query(call: V3Call, fault: FaultRule | None, out_refund_no: str) -> Answer:
    if not OUT_REFUND_NO.fullmatch(out_refund_no):
        raise param_error("out_refund_no", "格式错误", value=out_refund_no[:64], location="path")
    refund = refund_find(out_refund_no)
    if refund is None:
        raise WechatPayError("RESOURCE_NOT_EXISTS", "退款单不存在")
    refund = wechatpay_refund_note_query(refund)
    return Answer(data=refund_object(Refund.objects.select_related("trade").get(pk=refund.pk)))


def refund_query_reference(call: V3Call, kwargs: dict[str, str]) -> str:
    refund = refund_find(kwargs.get("out_refund_no", ""))
    return refund.trade.out_trade_no if refund is not None else ""
