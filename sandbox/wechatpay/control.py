"""WeChat Pay routes of the control API (/_control/wechatpay/...): read a trade
or refund as the sandbox holds it, act as the shopper without a browser, and
end a processing refund."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_http_methods

from sandbox.control import (
    ControlInputInvalid,
    json_answer,
    json_body,
    json_error,
    refund_as_json,
    trade_as_json,
)
from sandbox.exceptions import InvalidTransition, TradeAlreadyPaid, TradeClosed
from sandbox.models import Refund, Trade
from sandbox.services import trade_find, trade_past_deadline
from sandbox.wechatpay.refunds import refund_find
from sandbox.wechatpay.resources import PROVIDER, REFUND_END_STATUSES, REFUND_STATUSES, wire_trade_state
from sandbox.wechatpay.trades import (
    wechatpay_refund_end,
    wechatpay_trade_fail,
    wechatpay_trade_open,
    wechatpay_trade_pay,
)
from sandbox.wechatpay.transactions import h5_page_url, scan_page_url


def wechatpay_refund_as_json(refund: Refund) -> dict[str, Any]:
    return {
        **refund_as_json(refund),
        "out_trade_no": refund.trade.out_trade_no,
        # What the refund query would say.
        "wire_status": REFUND_STATUSES[refund.status],
        "notify_url": refund.notify_url,
        "ended_at": refund.ended_at.isoformat() if refund.ended_at else None,
    }


def wechatpay_trade_as_json(request: HttpRequest, trade: Trade) -> dict[str, Any]:
    refunds = list(trade.refunds.all())
    return {
        **trade_as_json(trade),
        # Refunds accepted under distinct out_refund_no, whatever their
        # status now: a replayed request adds none.
        "refund_count": len(refunds),
        "refunds": [wechatpay_refund_as_json(refund) for refund in refunds],
        # What the query would say; null when WeChat has no such order.
        "trade_state": wire_trade_state(trade),
        "trade_type": trade.wire.get("trade_type", ""),
        "transaction_id": trade.trade_no if trade.status == Trade.Status.PAID else None,
        "expired": trade_past_deadline(trade),
        "scan_url": scan_page_url(request, trade),
        "h5_url": h5_page_url(request, trade),
    }


@require_http_methods(["GET"])
def trades_view(request: HttpRequest) -> JsonResponse:
    trades = Trade.objects.filter(provider=PROVIDER).prefetch_related("refunds")
    return json_answer({"trades": [wechatpay_trade_as_json(request, trade) for trade in trades]})


@require_http_methods(["GET"])
def trade_view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
    trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
    if trade is None:
        return json_error("no such trade", status=404)
    return json_answer(wechatpay_trade_as_json(request, trade))


def _shopper_action(action: Callable[[Trade], Trade]) -> Callable[[HttpRequest, str], JsonResponse]:
    @require_http_methods(["POST"])
    def view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
        trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
        if trade is None or trade.status == Trade.Status.VOIDED:
            return json_error("no such trade", status=404)
        try:
            trade = action(trade)
        except TradeAlreadyPaid:
            return json_error("the trade is already paid", status=409)
        except TradeClosed:
            return json_error("the trade is closed or past its time_expire", status=409)
        return json_answer(wechatpay_trade_as_json(request, trade))

    return view


# As if the shopper pressed Pay (notification queued), scanned the QR code
# (opened the H5 page), or pressed Fail.
trade_pay_view = _shopper_action(wechatpay_trade_pay)
trade_scan_view = _shopper_action(wechatpay_trade_open)
trade_fail_view = _shopper_action(wechatpay_trade_fail)


@require_http_methods(["GET"])
def refund_view(request: HttpRequest, out_refund_no: str) -> JsonResponse:
    refund = refund_find(out_refund_no)
    if refund is None:
        return json_error("no such refund", status=404)
    return json_answer(wechatpay_refund_as_json(refund))


@require_http_methods(["POST"])
def refund_settle_view(request: HttpRequest, out_refund_no: str) -> JsonResponse:
    """End a PROCESSING refund: `{"status": "SUCCESS"|"ABNORMAL"|"CLOSED"}`
    (default SUCCESS); the refund notification is queued. 409 when it has
    already ended."""
    try:
        wire_status = json_body(request).get("status", "SUCCESS")
    except ControlInputInvalid as error:
        return json_error(str(error))
    if wire_status not in REFUND_END_STATUSES:
        return json_error(f"status must be one of {sorted(REFUND_END_STATUSES)}")
    refund = refund_find(out_refund_no)
    if refund is None:
        return json_error("no such refund", status=404)
    try:
        refund = wechatpay_refund_end(refund, status=REFUND_END_STATUSES[wire_status])
    except InvalidTransition:
        refund.refresh_from_db()
        return json_error(f"the refund is already {REFUND_STATUSES[refund.status]}", status=409)
    return json_answer(wechatpay_refund_as_json(Refund.objects.select_related("trade").get(pk=refund.pk)))
