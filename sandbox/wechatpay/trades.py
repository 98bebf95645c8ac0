"""WeChat Pay changes to the core trades and refunds that also queue a
notification (one transaction for both), and its provider numbers.

A prepay records the trade ANNOUNCED (WeChat already says NOTPAY); the
shopper opening the scan or H5 page makes it PENDING (still NOTPAY) and
gives it its transaction_id, which the wire shows once it is paid.
"""
from __future__ import annotations

from django.db import transaction

from sandbox.models import Refund, Trade
from sandbox.runtime import provider_now
from sandbox.services import refund_end, refund_note_query, trade_fail, trade_open, trade_pay
from sandbox.wechatpay.formats import new_transaction_id
from sandbox.wechatpay.notifications import wechatpay_notify_payment, wechatpay_notify_refund


def wechatpay_trade_open(trade: Trade) -> Trade:
    return trade_open(trade, trade_no=new_transaction_id(provider_now()))


def wechatpay_trade_pay(trade: Trade) -> Trade:
    """Pay the trade and queue its TRANSACTION.SUCCESS notification, together."""
    with transaction.atomic():
        trade = trade_pay(trade, trade_no=new_transaction_id(provider_now()))
        wechatpay_notify_payment(trade)
        return trade


def wechatpay_trade_fail(trade: Trade) -> Trade:
    # Basic payments notify only on success (§5.1): no notification.
    return trade_fail(trade, trade_no=new_transaction_id(provider_now()))


def wechatpay_refund_note_query(refund: Refund) -> Refund:
    """Count a refund query; a processing refund that settles now notifies."""
    with transaction.atomic():
        refund, settled = refund_note_query(refund)
        if settled:
            wechatpay_notify_refund(refund)
        return refund


def wechatpay_refund_end(refund: Refund, *, status: str) -> Refund:
    """End a processing refund (SUCCEEDED, ABNORMAL or CLOSED) and notify it."""
    with transaction.atomic():
        refund = refund_end(refund, status=status)
        wechatpay_notify_refund(refund)
        return refund


def wechatpay_refund_settle(refund: Refund) -> Refund:
    """End a processing refund SUCCESS now and queue REFUND.SUCCESS to its
    notify_url, as the control API's settle does. Raises InvalidTransition
    when it has already ended."""
    return wechatpay_refund_end(refund, status=Refund.Status.SUCCEEDED)
