"""Alipay routes of the control API (/_control/alipay/...): read a trade as the
sandbox holds it, or act as the shopper without a browser."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from sandbox.alipay.trades import alipay_trade_fail, alipay_trade_open, alipay_trade_pay, wire_trade_status
from sandbox.control import json_answer, json_error, trade_as_json
from sandbox.exceptions import TradeAlreadyPaid, TradeClosed
from sandbox.models import Trade
from sandbox.services import trade_find


def alipay_trade_as_json(request: HttpRequest, trade: Trade) -> dict:
    return {
        **trade_as_json(trade),
        # What alipay.trade.query would say; null when Alipay has no trade.
        "trade_status": wire_trade_status(trade),
        "cashier_url": request.build_absolute_uri(reverse("alipay-cashier", args=[trade.token])),
        "scan_url": request.build_absolute_uri(reverse("alipay-scan", args=[trade.token])),
    }


@require_http_methods(["GET"])
def trades_view(request: HttpRequest) -> JsonResponse:
    trades = Trade.objects.filter(provider="alipay").prefetch_related("refunds")
    return json_answer({"trades": [alipay_trade_as_json(request, trade) for trade in trades]})


@require_http_methods(["GET"])
def trade_view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
    trade = trade_find("alipay", out_trade_no=out_trade_no)
    if trade is None:
        return json_error("no such trade", status=404)
    return json_answer(alipay_trade_as_json(request, trade))


def _shopper_action(action: Callable[[Trade], Trade]) -> Callable[[HttpRequest, str], JsonResponse]:
    @require_http_methods(["POST"])
    def view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
        trade = trade_find("alipay", out_trade_no=out_trade_no)
        if trade is None:
            return json_error("no such trade", status=404)
        try:
            trade = action(trade)
        except TradeAlreadyPaid:
            return json_error("the trade is already paid", status=409)
        except TradeClosed:
            return json_error("the trade is closed", status=409)
        return json_answer(alipay_trade_as_json(request, trade))

    return view


# As if the shopper pressed Pay (notification queued), scanned the QR code,
# or pressed Fail.
trade_pay_view = _shopper_action(alipay_trade_pay)
trade_scan_view = _shopper_action(alipay_trade_open)
trade_fail_view = _shopper_action(alipay_trade_fail)
