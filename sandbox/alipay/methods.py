"""The server-to-server Alipay methods (docs/gateways-alipay-unionpay.md A7, A10, A11).

Each takes a verified AlipayCall (and the fault rule in force, if any) and
returns the business node of the response, or raises AlipayError.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import transaction
from django.urls import reverse

from sandbox import config
from sandbox.alipay.bills import bill_has_lines, bill_link_create, bill_zip_name
from sandbox.alipay.biz_fields import biz_amount, biz_expiry, biz_text, biz_trade, query_options
from sandbox.alipay.calls import AlipayCall
from sandbox.alipay.errors import SUCCESS, AlipayError, announce_error, business_error
from sandbox.alipay.formats import BEIJING, beijing_text, yuan_text
from sandbox.alipay.notifications import FUND_CHANNEL, alipay_notify_refund
from sandbox.alipay.trades import alipay_refund_note_query, wire_trade_status
from sandbox.exceptions import (
    RefundConflict,
    RefundExceedsRefundable,
    TradeAlreadyPaid,
    TradeClosed,
    TradeConflict,
    TradeNotRefundable,
)
from sandbox.models import FaultRule, Refund, Trade
from sandbox.notifications import dispatcher_wake
from sandbox.runtime import provider_now, refund_processing_queries
from sandbox.services import refund_request, trade_announce, trade_close, trade_void_unknown


def _success(**fields: Any) -> dict[str, Any]:
    return {"code": SUCCESS, "msg": "Success", **fields}


def _existing_trade(biz: dict[str, Any]) -> Trade:
    trade = biz_trade(biz)
    if trade is None or not trade.exists_at_provider:
        raise business_error("ACQ.TRADE_NOT_EXIST")
    return trade


def trade_precreate_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    """Returns a QR code: the URL of the sandbox scan page a phone would open.

    The trade comes to exist only when that page is opened (A7).
    """
    biz = call.biz
    out_trade_no = biz_text(biz, "out_trade_no")
    amount_minor = biz_amount(biz, "total_amount")
    try:
        trade = trade_announce(
            provider="alipay",
            out_trade_no=out_trade_no,
            amount_minor=amount_minor,
            subject=biz_text(biz, "subject", max_length=256),
            body=biz_text(biz, "body", max_length=128, required=False),
            pay_method=Trade.PayMethod.QR,
            notify_url=call.params.get("notify_url", ""),
            expires_at=biz_expiry(biz, provider_now()),
            wire={"method": call.method, "app_id": call.params["app_id"]},
        )
    except (TradeAlreadyPaid, TradeClosed, TradeConflict) as error:
        raise announce_error(error) from None
    qr_code = call.request.build_absolute_uri(reverse("alipay-scan", args=[trade.token]))
    return _success(out_trade_no=out_trade_no, qr_code=qr_code)


def _fund_bill_list(trade: Trade) -> list[dict[str, str]]:
    return [{"amount": yuan_text(trade.amount_minor), "fund_channel": FUND_CHANNEL}]


def trade_query_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    trade = _existing_trade(call.biz)
    paid = trade.status == Trade.Status.PAID
    paid_amount = yuan_text(trade.amount_minor) if paid else "0.00"
    node = _success(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=config.ALIPAY_BUYER_LOGON_ID,
        trade_status=wire_trade_status(trade),
        total_amount=yuan_text(trade.amount_minor),
        receipt_amount=paid_amount,
        buyer_pay_amount=paid_amount,
        point_amount="0.00",
        invoice_amount=paid_amount,
        buyer_user_id=config.ALIPAY_BUYER_ID,
    )
    if paid:
        assert trade.paid_at is not None  # trade_pay() stamps every paid trade
        node["send_pay_date"] = beijing_text(trade.paid_at)
        if "fund_bill_list" in query_options(call.biz):
            node["fund_bill_list"] = _fund_bill_list(trade)
    return node


def trade_close_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    """Unpaid -> closed; paid -> ACQ.TRADE_STATUS_ERROR; never created ->
    ACQ.TRADE_NOT_EXIST, and that number can never be paid afterwards."""
    trade = biz_trade(call.biz)
    out_trade_no = biz_text(call.biz, "out_trade_no", required=False)
    if trade is None:
        if out_trade_no:
            trade_void_unknown(provider="alipay", out_trade_no=out_trade_no)
        raise business_error("ACQ.TRADE_NOT_EXIST")
    try:
        trade = trade_close(trade)
    except TradeAlreadyPaid:
        raise business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法: 交易已支付") from None
    if not trade.exists_at_provider:
        raise business_error("ACQ.TRADE_NOT_EXIST")
    return _success(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no)


def _refund_detail_item_list(refund: Refund) -> list[dict[str, str]]:
    amount = yuan_text(refund.amount_minor)
    return [{"fund_channel": FUND_CHANNEL, "amount": amount, "real_amount": amount}]


def trade_refund_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    """A10: idempotent by out_request_no; fund_change=Y only when money moved now."""
    biz = call.biz
    trade = _existing_trade(biz)
    amount_minor = biz_amount(biz, "refund_amount")
    out_request_no = biz_text(biz, "out_request_no", required=False)
    if not out_request_no:
        # Without a request number Alipay treats the refund as full and uses
        # the out_trade_no as its number (A7).
        if amount_minor != trade.amount_minor:
            raise business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "部分退款必须提供out_request_no")
        out_request_no = trade.out_trade_no
    if fault is not None and fault.mode == "processing":
        processing_queries = fault.params["queries"]
    else:
        processing_queries = refund_processing_queries("alipay")
    try:
        with transaction.atomic():
            refund, created = refund_request(
                trade,
                out_refund_no=out_request_no,
                amount_minor=amount_minor,
                reason=biz_text(biz, "refund_reason", max_length=256, required=False),
                processing_queries=processing_queries,
            )
            trade.refresh_from_db()
            moved_now = created and refund.status == Refund.Status.SUCCEEDED
            if moved_now:
                alipay_notify_refund(trade, refund)
            elif created:
                # It may settle by time (refund_settle_after_seconds): the
                # dispatcher counts from now.
                transaction.on_commit(dispatcher_wake)
    except RefundConflict:
        raise business_error("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致: 相同out_request_no的退款金额不同") from None
    except TradeNotRefundable:
        raise business_error("ACQ.TRADE_STATUS_ERROR", "交易状态不合法: 交易未支付或已全额退款") from None
    except RefundExceedsRefundable:
        raise business_error("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超过可退金额") from None
    node = _success(
        trade_no=trade.trade_no,
        out_trade_no=trade.out_trade_no,
        buyer_logon_id=config.ALIPAY_BUYER_LOGON_ID,
        buyer_user_id=config.ALIPAY_BUYER_ID,
        fund_change="Y" if moved_now else "N",
        refund_fee=yuan_text(trade.refunded_minor),
    )
    if refund.status == Refund.Status.SUCCEEDED:
        assert refund.succeeded_at is not None  # services._settle() stamps every success
        node["gmt_refund_pay"] = beijing_text(refund.succeeded_at)
    if "refund_detail_item_list" in query_options(biz):
        node["refund_detail_item_list"] = _refund_detail_item_list(refund)
    return node


def trade_refund_query_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    """REFUND_SUCCESS when settled; no refund data when unknown or not settled."""
    biz = call.biz
    trade = _existing_trade(biz)
    out_request_no = biz_text(biz, "out_request_no")
    node = _success(trade_no=trade.trade_no, out_trade_no=trade.out_trade_no, out_request_no=out_request_no)
    refund = trade.refunds.filter(out_refund_no=out_request_no).first()
    if refund is None:
        return node
    refund = alipay_refund_note_query(refund)
    if refund.status != Refund.Status.SUCCEEDED:
        return node
    node.update(
        total_amount=yuan_text(trade.amount_minor),
        refund_amount=yuan_text(refund.amount_minor),
        refund_status="REFUND_SUCCESS",
    )
    if refund.reason:
        node["refund_reason"] = refund.reason
    options = query_options(biz)
    if "gmt_refund_pay" in options:
        assert refund.succeeded_at is not None  # SUCCEEDED (checked above): stamped by _settle()
        node["gmt_refund_pay"] = beijing_text(refund.succeeded_at)
    if "refund_detail_item_list" in options:
        node["refund_detail_item_list"] = _refund_detail_item_list(refund)
    return node


def _invalid_bill_argument(detail: str) -> AlipayError:
    return AlipayError("40002", "isv.invalid-parameter", f"参数无效: {detail}")


def bill_downloadurl_query_method(call: AlipayCall, fault: FaultRule | None) -> dict[str, Any]:
    """A7/A11: a URL (valid 30 s, scaled) of the day's trade bill."""
    bill_type = biz_text(call.biz, "bill_type", max_length=16)
    if bill_type != "trade":
        raise _invalid_bill_argument(f"沙箱只提供trade账单, 不支持{bill_type}")
    text = biz_text(call.biz, "bill_date", max_length=10)
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise _invalid_bill_argument(f"bill_date格式错误(yyyy-MM-dd): {text}") from None
    today: date = provider_now().astimezone(BEIJING).date()
    if day >= today:
        raise _invalid_bill_argument("只能查询昨天及以前的账单")
    if not bill_has_lines(day):
        raise business_error("isp.bill_not_exist")
    link = bill_link_create(day, fault=fault)
    url = call.request.build_absolute_uri(reverse("alipay-bill-download", args=[link.token, bill_zip_name(day)]))
    return _success(bill_download_url=url)
