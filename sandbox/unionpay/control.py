"""UnionPay routes of the control API (/_control/unionpay/...): read a trade or
refund as the sandbox holds it, act as the shopper without a browser, and
end a processing refund."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import reverse
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
from sandbox.unionpay.trades import (
    unionpay_refund_end,
    unionpay_trade_fail,
    unionpay_trade_pay,
    unionpay_trade_submit,
)
from sandbox.unionpay.wire import PROVIDER, refund_orig_resp_code, trade_orig_resp_code

REFUND_ENDS = {"SUCCESS": True, "FAILED": False}


def refund_find(out_refund_no: str) -> Refund | None:
    return Refund.objects.filter(trade__provider=PROVIDER, out_refund_no=out_refund_no).select_related("trade").first()


def unionpay_refund_as_json(refund: Refund) -> dict[str, Any]:
    return {
        **refund_as_json(refund),
        "out_trade_no": refund.trade.out_trade_no,
        "txn_time": refund.wire.get("txnTime", ""),
        # What a query of the refund says (origRespCode).
        "orig_resp_code": refund_orig_resp_code(refund),
        "fails": bool(refund.wire.get("fails")),
        "ended_at": refund.ended_at.isoformat() if refund.ended_at else None,
    }


def unionpay_trade_as_json(request: HttpRequest, trade: Trade) -> dict[str, Any]:
    refunds = list(trade.refunds.all())
    return {
        **trade_as_json(trade),
        # Refunds accepted under distinct orderIds, whatever their status now.
        "refund_count": len(refunds),
        "refunds": [unionpay_refund_as_json(refund) for refund in refunds],
        "query_id": trade.trade_no,
        "txn_time": trade.wire.get("txnTime", ""),
        "channel_type": trade.wire.get("channelType", ""),
        "pay_timeout": trade.wire.get("payTimeout", ""),
        # What a query says (origRespCode); null: 34, no such transaction.
        "orig_resp_code": trade_orig_resp_code(trade),
        "expired": trade_past_deadline(trade),
        "cashier_url": request.build_absolute_uri(reverse("unionpay-cashier", args=[trade.token])),
    }


@require_http_methods(["GET"])
def trades_view(request: HttpRequest) -> JsonResponse:
    trades = Trade.objects.filter(provider=PROVIDER).prefetch_related("refunds")
    return json_answer({"trades": [unionpay_trade_as_json(request, trade) for trade in trades]})


@require_http_methods(["GET"])
def trade_view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
    trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
    if trade is None:
        return json_error("no such trade", status=404)
    return json_answer(unionpay_trade_as_json(request, trade))


def _shopper_action(action: Callable[[Trade], Trade]) -> Callable[[HttpRequest, str], JsonResponse]:
    @require_http_methods(["POST"])
    def view(request: HttpRequest, out_trade_no: str) -> JsonResponse:
        trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
        if trade is None:
            return json_error("no such trade", status=404)
        try:
            trade = action(trade)
        except TradeAlreadyPaid:
            return json_error("the trade is already paid", status=409)
        except TradeClosed:
            return json_error("the trade failed or is past its payTimeout", status=409)
        return json_answer(unionpay_trade_as_json(request, trade))

    return view


# As if the shopper pressed Pay (back notification queued), submitted the
# card (in flight: origRespCode 05), or pressed Fail.
trade_pay_view = _shopper_action(unionpay_trade_pay)
trade_submit_view = _shopper_action(unionpay_trade_submit)
trade_fail_view = _shopper_action(unionpay_trade_fail)


@require_http_methods(["GET"])
def refund_view(request: HttpRequest, out_refund_no: str) -> JsonResponse:
    refund = refund_find(out_refund_no)
    if refund is None:
        return json_error("no such refund", status=404)
    return json_answer(unionpay_refund_as_json(refund))


@require_http_methods(["POST"])
def refund_settle_view(request: HttpRequest, out_refund_no: str) -> JsonResponse:
    """End a processing refund: `{"status": "SUCCESS"|"FAILED"}` (default SUCCESS);
    a success is notified to the refund's backUrl. 409 when it has already ended."""
    try:
        wanted = json_body(request).get("status", "SUCCESS")
    except ControlInputInvalid as error:
        return json_error(str(error))
    if wanted not in REFUND_ENDS:
        return json_error(f"status must be one of {sorted(REFUND_ENDS)}")
    refund = refund_find(out_refund_no)
    if refund is None:
        return json_error("no such refund", status=404)
    try:
        unionpay_refund_end(refund, succeeded=REFUND_ENDS[wanted])
    except InvalidTransition:
        refund.refresh_from_db()
        return json_error(f"the refund is already {refund.status}", status=409)
    refund = refund_find(out_refund_no)
    assert refund is not None
    return json_answer(unionpay_refund_as_json(refund))
