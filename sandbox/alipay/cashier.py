"""What the shopper sees: the cashier page (page/wap pay), the scan page (QR),
and the signed return to the merchant (docs/gateways-alipay-unionpay.md A7, A9).

page.pay / wap.pay: the verified request announces the trade and redirects
the browser to /alipay/cashier/<token>/. The Alipay trade does not exist
until the shopper acts. Buttons (data-testid sandbox-pay/-fail/-cancel):
- Pay: TRADE_SUCCESS, notification queued, browser redirected to return_url
  with the signed return parameters (A9);
- Fail: TRADE_CLOSED; a failure page links back to return_url with signed
  parameters that carry no trade_no;
- Cancel: nothing changes (Alipay still has no trade); the browser goes to
  quit_url, or, a sandbox liberty, to return_url with signed parameters
  without trade_no.

precreate's QR code is /alipay/scan/<token>/: opening it is the scan (the
trade now exists, WAIT_BUYER_PAY); Pay shows "paid" (no return for QR),
Fail closes it, Cancel leaves it waiting like the real app.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from sandbox import config
from sandbox.alipay.biz_fields import biz_amount, biz_expiry, biz_text
from sandbox.alipay.calls import AlipayCall
from sandbox.alipay.errors import AlipayError, announce_error, invalid_parameter
from sandbox.alipay.formats import beijing_text, yuan_text
from sandbox.alipay.keyring import gateway_private_key
from sandbox.alipay.signing import NOTIFICATION_UNSIGNED, sign_params
from sandbox.alipay.trades import alipay_trade_fail, alipay_trade_open, alipay_trade_pay, wire_trade_status
from sandbox.exceptions import TradeAlreadyPaid, TradeClosed, TradeConflict
from sandbox.models import Trade
from sandbox.runtime import provider_now
from sandbox.services import trade_announce, trade_expire_if_due

PRODUCT_CODES = {
    "alipay.trade.page.pay": {"FAST_INSTANT_TRADE_PAY"},
    # A7: QUICK_WAP_WAY is documented; python-alipay-sdk sends QUICK_WAP_PAY.
    "alipay.trade.wap.pay": {"QUICK_WAP_WAY", "QUICK_WAP_PAY"},
}
PAY_METHODS = {"alipay.trade.page.pay": Trade.PayMethod.PAGE, "alipay.trade.wap.pay": Trade.PayMethod.WAP}


def error_page(request: HttpRequest, error: AlipayError) -> HttpResponse:
    """Alipay shows a refused browser request as a page naming the error code."""
    return render(request, "sandbox/alipay/error.html", {"error": error})


def page_pay_start(call: AlipayCall) -> HttpResponse:
    """The browser arrived with a verified page.pay or wap.pay request."""
    try:
        product_code = biz_text(call.biz, "product_code", max_length=32)
        if product_code not in PRODUCT_CODES[call.method]:
            raise invalid_parameter(f"product_code不支持: {product_code}")
        trade = _announce(call)
    except (TradeAlreadyPaid, TradeClosed, TradeConflict) as error:
        return error_page(call.request, announce_error(error))
    except AlipayError as error:
        return error_page(call.request, error)
    return HttpResponseRedirect(reverse("alipay-cashier", args=[trade.token]))


def _announce(call: AlipayCall) -> Trade:
    biz = call.biz
    return trade_announce(
        provider="alipay",
        out_trade_no=biz_text(biz, "out_trade_no"),
        amount_minor=biz_amount(biz, "total_amount"),
        subject=biz_text(biz, "subject", max_length=256),
        body=biz_text(biz, "body", max_length=128, required=False),
        pay_method=PAY_METHODS[call.method],
        notify_url=call.params.get("notify_url", ""),
        return_url=call.params.get("return_url", ""),
        quit_url=biz_text(biz, "quit_url", max_length=1024, required=False),
        expires_at=biz_expiry(biz, provider_now()),
        wire={
            "method": call.method,
            "app_id": call.params["app_id"],
            "passback_params": biz_text(biz, "passback_params", max_length=512, required=False),
        },
    )


def return_params(trade: Trade, *, with_trade_no: bool) -> dict[str, str]:
    """A9: the signed parameters of the browser's return (no trade_status)."""
    params = {
        "charset": "utf-8",
        "out_trade_no": trade.out_trade_no,
        "method": trade.wire.get("method", "alipay.trade.page.pay") + ".return",
        "total_amount": yuan_text(trade.amount_minor),
        "sign_type": "RSA2",
        "app_id": config.ALIPAY_APP_ID,
        "auth_app_id": config.ALIPAY_APP_ID,
        "seller_id": config.ALIPAY_SELLER_ID,
        "version": "1.0",
        "timestamp": beijing_text(provider_now()),
    }
    if with_trade_no and trade.trade_no:
        params["trade_no"] = trade.trade_no
    params["sign"] = sign_params(params, gateway_private_key(), unsigned=NOTIFICATION_UNSIGNED)
    return params


def return_url(trade: Trade, *, with_trade_no: bool) -> str:
    if not trade.return_url:
        return ""
    separator = "&" if "?" in trade.return_url else "?"
    return trade.return_url + separator + urlencode(return_params(trade, with_trade_no=with_trade_no))


def _trade_for(token: str) -> Trade:
    trade = Trade.objects.filter(provider="alipay", token=token).first()
    if trade is None:
        raise Http404("no such payment")
    return trade_expire_if_due(trade)


def _page(request: HttpRequest, trade: Trade, *, template: str, outcome: str = "", status: int = 200,
          link: str = "") -> HttpResponse:  # fmt: skip
    expired = trade.status == Trade.Status.CLOSED and trade.expires_at is not None and trade.closed_at == trade.expires_at
    context = {
        "trade": trade,
        "amount": yuan_text(trade.amount_minor),
        "state": outcome or ("expired" if expired else trade.status),
        "payable": trade.status in (Trade.Status.ANNOUNCED, Trade.Status.PENDING),
        "wire_status": wire_trade_status(trade) or "NOT_EXIST",
        "seller_id": config.ALIPAY_SELLER_ID,
        "expires_at": beijing_text(trade.expires_at) if trade.expires_at else "",
        "link": link,
    }
    return render(request, template, context, status=status)


def _refused(request: HttpRequest, trade: Trade, template: str) -> HttpResponse:
    return _page(request, trade, template=template, status=409)


def cashier_view(request: HttpRequest, token: str) -> HttpResponse:
    trade = _trade_for(token)
    template = "sandbox/alipay/cashier.html"
    if request.method != "POST":
        return _page(request, trade, template=template)
    action = request.POST.get("action", "")
    if action == "pay":
        try:
            trade = alipay_trade_pay(trade)
        except (TradeAlreadyPaid, TradeClosed):
            return _refused(request, trade_expire_if_due(Trade.objects.get(pk=trade.pk)), template)
        target = return_url(trade, with_trade_no=True)
        return HttpResponseRedirect(target) if target else _page(request, trade, template=template)
    if action == "fail":
        try:
            trade = alipay_trade_fail(trade)
        except (TradeAlreadyPaid, TradeClosed):
            return _refused(request, Trade.objects.get(pk=trade.pk), template)
        return _page(request, trade, template=template, link=return_url(trade, with_trade_no=False))
    if action == "cancel":
        target = trade.quit_url or return_url(trade, with_trade_no=False)
        if target:
            return HttpResponseRedirect(target)
        return _page(request, trade, template=template, outcome="cancelled")
    return HttpResponse("unknown action", status=400, content_type="text/plain")


def scan_view(request: HttpRequest, token: str) -> HttpResponse:
    trade = _trade_for(token)
    template = "sandbox/alipay/scan.html"
    if request.method != "POST":
        if trade.status == Trade.Status.ANNOUNCED:
            trade = alipay_trade_open(trade)
        return _page(request, trade, template=template)
    action = request.POST.get("action", "")
    try:
        if action == "pay":
            alipay_trade_pay(trade)
            # Post/redirect/get: a reload must not press Pay again.
            return HttpResponseRedirect(reverse("alipay-scan", args=[token]))
        if action == "fail":
            return _page(request, alipay_trade_fail(trade), template=template)
    except (TradeAlreadyPaid, TradeClosed):
        return _refused(request, Trade.objects.get(pk=trade.pk), template)
    if action == "cancel":
        return _page(request, trade, template=template, outcome="cancelled")
    return HttpResponse("unknown action", status=400, content_type="text/plain")
