"""What the shopper sees: UnionPay's cashier page, and the way back to the merchant.

A verified front consume sends the browser to /unionpay/cashier/<token>/
(docs/gateways-alipay-unionpay.md B6). Buttons (data-testid sandbox-pay,
sandbox-fail, sandbox-cancel):
- Pay: the consume is paid, its back notification queued, and the browser
  returns to frontUrl with the signed front notification (B6): a page whose
  form (`sandbox-return-form`) posts the fields and submits itself;
- Fail: the card is declined (respCode 01, no back notification); the page
  posts a signed front notification with respCode 01 back to frontUrl;
- Cancel: nothing happens at UnionPay (a query still says 34); a sandbox
  liberty, since real UnionPay leaves the shopper on its page: the page
  posts back signed fields with respCode 01 and no queryId.
The form submits itself by a script file (/unionpay/autosubmit.js), never
an inline one; its button is there for a browser without scripts.
Past payTimeout the page says "expired" and paying is refused (409).
"""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import mark_safe

from sandbox import config
from sandbox.exceptions import TradeAlreadyPaid, TradeClosed
from sandbox.models import Trade
from sandbox.services import UNPAID, trade_past_deadline
from sandbox.unionpay.trades import unionpay_trade_fail, unionpay_trade_pay
from sandbox.unionpay.wire import FAILED_CODE, PROVIDER, common_fields, consume_fields, signed

AUTOSUBMIT_JS = """document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("sandbox-return-form");
  if (form) { form.submit(); }
});
"""


def _trade_for(token: str) -> Trade:
    trade = Trade.objects.filter(provider=PROVIDER, token=token).first()
    if trade is None:
        raise Http404("no such payment")
    return trade


def page_state(trade: Trade) -> str:
    if trade.status == Trade.Status.ANNOUNCED and trade_past_deadline(trade):
        return "expired"
    return trade.status


def _cashier(request: HttpRequest, trade: Trade, *, status: int = 200) -> HttpResponse:
    trade.refresh_from_db()
    context = {
        "trade": trade,
        "amount": f"{trade.amount_minor // 100}.{trade.amount_minor % 100:02d}",
        "state": page_state(trade),
        "payable": trade.status in UNPAID and not trade_past_deadline(trade),
        "mer_id": config.UNIONPAY_MER_ID,
        "channel": trade.wire.get("channelType", ""),
        "txn_time": trade.wire.get("txnTime", ""),
        "pay_timeout": trade.wire.get("payTimeout", ""),
    }
    return render(request, "sandbox/unionpay/cashier.html", context, status=status)


def _attribute(value: str) -> str:
    # signPubKeyCert's CRLF must reach the merchant byte for byte (B3): as
    # character references they survive the HTML parser's newline folding.
    return mark_safe(escape(value).replace("\r", "&#13;").replace("\n", "&#10;"))


def _back_to_merchant(request: HttpRequest, trade: Trade, fields: dict[str, str], state: str) -> HttpResponse:
    shown = {name: _attribute(value) for name, value in signed(fields).items()}
    context = {"trade": trade, "fields": shown, "state": state, "front_url": trade.return_url}
    return render(request, "sandbox/unionpay/return.html", context)


def cancel_fields(trade: Trade) -> dict[str, str]:
    return {**common_fields(trade.wire.get("encoding", "UTF-8")), "bizType": trade.wire.get("bizType", "000201"),
            "txnType": "01", "txnSubType": "01", "orderId": trade.out_trade_no, "txnTime": trade.wire["txnTime"],
            "txnAmt": str(trade.amount_minor), "currencyCode": "156", "respCode": FAILED_CODE,
            "respMsg": "用户取消支付"}


def cashier_view(request: HttpRequest, token: str) -> HttpResponse:
    trade = _trade_for(token)
    if request.method != "POST":
        return _cashier(request, trade)
    action = request.POST.get("action", "")
    if action == "cancel":
        return _back_to_merchant(request, trade, cancel_fields(trade), "cancelled")
    try:
        if action == "pay":
            trade = unionpay_trade_pay(trade)
            return _back_to_merchant(request, trade, consume_fields(trade), "paid")
        if action == "fail":
            trade = unionpay_trade_fail(trade)
            return _back_to_merchant(request, trade, consume_fields(trade, resp_code=FAILED_CODE), "failed")
    except (TradeAlreadyPaid, TradeClosed):
        return _cashier(request, trade, status=409)
    return HttpResponse("unknown action", status=400, content_type="text/plain")


def autosubmit_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(AUTOSUBMIT_JS, content_type="text/javascript; charset=utf-8")


