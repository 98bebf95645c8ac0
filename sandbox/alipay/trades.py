"""Alipay's view of the core trades: its trade numbers, statuses and the
changes that must also queue a notification (one transaction for both).

Status mapping (A7): unpaid and opened -> WAIT_BUYER_PAY; paid ->
TRADE_SUCCESS, or TRADE_CLOSED once refunded in full; failed, closed or
expired -> TRADE_CLOSED; announced or voided -> no trade (ACQ.TRADE_NOT_EXIST).
"""
from __future__ import annotations

import secrets

from django.db import transaction

from sandbox.alipay.formats import BEIJING
from sandbox.alipay.notifications import alipay_notify_payment, alipay_notify_refund
from sandbox.models import Refund, Trade
from sandbox.runtime import provider_now
from sandbox.services import refund_end, refund_note_query, trade_fail, trade_open, trade_pay

PROVIDER = "alipay"


def new_trade_no() -> str:
    """28 digits like Alipay's: the Beijing date, a channel code, a random tail."""
    day = provider_now().astimezone(BEIJING).strftime("%Y%m%d")
    return day + "22001" + "".join(secrets.choice("0123456789") for _ in range(15))


def wire_trade_status(trade: Trade) -> str | None:
    """The trade_status Alipay reports, or None when Alipay has no such trade."""
    if not trade.exists_at_provider:
        return None
    if trade.status == Trade.Status.PENDING:
        return "WAIT_BUYER_PAY"
    if trade.status == Trade.Status.PAID and not trade.fully_refunded:
        return "TRADE_SUCCESS"
    return "TRADE_CLOSED"


def alipay_trade_open(trade: Trade) -> Trade:
    return trade_open(trade, trade_no=new_trade_no())


def alipay_trade_pay(trade: Trade) -> Trade:
    """Pay the trade and queue its TRADE_SUCCESS notification, together."""
    with transaction.atomic():
        trade = trade_pay(trade, trade_no=new_trade_no())
        alipay_notify_payment(trade)
        return trade


def alipay_trade_fail(trade: Trade) -> Trade:
    # No notification: a failed payment is a TRADE_CLOSED, and whether
    # Alipay notifies those depends on the product (A8).
    return trade_fail(trade, trade_no=new_trade_no())


def alipay_refund_note_query(refund: Refund) -> Refund:
    """Count a refund query; a processing refund that settles now notifies."""
    with transaction.atomic():
        refund, settled = refund_note_query(refund)
        if settled:
            alipay_notify_refund(Trade.objects.get(pk=refund.trade_id), refund)
        return refund


def alipay_refund_settle(refund: Refund) -> Refund:
    """Settle a processing refund now (the money moves) and queue the
    notification it triggers, as a refund query that settles it does.
    Raises InvalidTransition when it has already ended."""
    with transaction.atomic():
        refund = refund_end(refund, status=Refund.Status.SUCCEEDED)
        alipay_notify_refund(Trade.objects.get(pk=refund.trade_id), refund)
        return refund
