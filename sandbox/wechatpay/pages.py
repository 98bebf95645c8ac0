"""What the shopper sees: the scan page (Native `code_url`) and the H5 page (`h5_url`).

Both show the description, the amount and three buttons with stable test
ids (sandbox-pay, sandbox-fail, sandbox-cancel), and the state in
`data-testid="sandbox-status" data-status="announced|pending|paid|failed|
closed|voided|expired|cancelled"`. Opening a page is the scan: the order
stays NOTPAY (its control status becomes pending).

- Scan page: Pay -> SUCCESS, notification queued, the page shows "paid";
  Fail -> PAYERROR (no notification); Cancel leaves it waiting, like the
  real app.
- H5 page (`?redirect_url=` appended by the merchant, URL-encoded): Pay ->
  SUCCESS, notification queued, then 302 to redirect_url exactly as given
  (nothing added; without one the page shows "paid"); Fail -> PAYERROR and
  a page linking (sandbox-return-link) to redirect_url; Cancel -> 302 to
  redirect_url, nothing changed.
Past time_expire the pages say "expired" and paying is refused (409), while
the order still reads NOTPAY until the merchant closes it. An API v2
mweb_url older than 5 minutes (sandbox clock) shows
`link-expired` (410) and pays nothing.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from sandbox import config
from sandbox.exceptions import TradeAlreadyPaid, TradeClosed
from sandbox.models import Trade
from sandbox.services import UNPAID, trade_past_deadline
from sandbox.wechatpay.formats import rfc3339, yuan_text
from sandbox.wechatpay.resources import PROVIDER, wire_trade_state
from sandbox.wechatpay.trades import wechatpay_trade_fail, wechatpay_trade_open, wechatpay_trade_pay
from sandbox.wechatpay.v2.calls import mweb_link_expired


def _trade_for(token: str) -> Trade:
    trade = Trade.objects.filter(provider=PROVIDER, token=token).first()
    if trade is None or trade.status == Trade.Status.VOIDED:
        raise Http404("no such payment")
    return trade


def page_state(trade: Trade) -> str:
    return "expired" if trade_past_deadline(trade) else trade.status


def _page(request: HttpRequest, trade: Trade, *, template: str, outcome: str = "", status: int = 200,
          link: str = "") -> HttpResponse:  # fmt: skip
    trade.refresh_from_db()
    state = outcome or page_state(trade)
    context = {
        "trade": trade,
        "amount": yuan_text(trade.amount_minor),
        "state": state,
        "payable": trade.status in UNPAID and not trade_past_deadline(trade),
        "trade_state": wire_trade_state(trade) or "ORDER_NOT_EXIST",
        "trade_type": trade.wire.get("trade_type", ""),
        "mchid": config.WECHATPAY_MCHID,
        "transaction_id": trade.trade_no if trade.status == Trade.Status.PAID else "",
        "expires_at": rfc3339(trade.expires_at) if trade.expires_at else "",
        "link": link,
    }
    return render(request, template, context, status=status)


def _open(trade: Trade) -> Trade:
    if trade.status == Trade.Status.ANNOUNCED and not trade_past_deadline(trade):
        try:
            return wechatpay_trade_open(trade)
        except (TradeAlreadyPaid, TradeClosed):
            pass
    return trade


def _safe_redirect(url: str) -> str:
    """Only an absolute http(s) URL: never javascript: or a path on the sandbox."""
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else ""


def scan_view(request: HttpRequest, token: str) -> HttpResponse:
    trade = _trade_for(token)
    template = "sandbox/wechatpay/scan.html"
    if request.method != "POST":
        return _page(request, _open(trade), template=template)
    action = request.POST.get("action", "")
    try:
        if action == "pay":
            wechatpay_trade_pay(trade)
            # Post/redirect/get: a reload must not press Pay again.
            return HttpResponseRedirect(reverse("wechatpay-scan", args=[token]))
        if action == "fail":
            return _page(request, wechatpay_trade_fail(trade), template=template)
    except (TradeAlreadyPaid, TradeClosed):
        return _page(request, trade, template=template, status=409)
    if action == "cancel":
        return _page(request, trade, template=template, outcome="cancelled")
    return HttpResponse("unknown action", status=400, content_type="text/plain")


def h5_view(request: HttpRequest, token: str) -> HttpResponse:
    trade = _trade_for(token)
    template = "sandbox/wechatpay/h5.html"
    redirect_url = _safe_redirect(request.GET.get("redirect_url", ""))
    if mweb_link_expired(trade) and trade.status in UNPAID:
        # API v2: an mweb_url lives 5 minutes (§10.3); the merchant must ask again.
        return _page(request, trade, template=template, outcome="link-expired", status=410)
    if request.method != "POST":
        return _page(request, _open(trade), template=template)
    action = request.POST.get("action", "")
    try:
        if action == "pay":
            trade = wechatpay_trade_pay(trade)
            if redirect_url:
                return HttpResponseRedirect(redirect_url)
            return _page(request, trade, template=template)
        if action == "fail":
            return _page(request, wechatpay_trade_fail(trade), template=template, link=redirect_url)
    except (TradeAlreadyPaid, TradeClosed):
        return _page(request, trade, template=template, status=409)
    if action == "cancel":
        if redirect_url:
            return HttpResponseRedirect(redirect_url)
        return _page(request, trade, template=template, outcome="cancelled")
    return HttpResponse("unknown action", status=400, content_type="text/plain")
