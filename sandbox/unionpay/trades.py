"""UnionPay changes to the core trades and refunds that also queue a
notification (one transaction for both), and its trade lifecycle rules.

A front consume is recorded ANNOUNCED: UnionPay has no transaction until
the shopper submits on its cashier page (a query answers 34). Submitting
makes it PENDING (in flight: origRespCode 05) and gives it its queryId and
traceNo; Pay makes it PAID (00) and sends the back notification; Fail makes
it FAILED (01), without a notification (B7: back notifications are sent for
successes). Refunds end SUCCEEDED (notified to their backUrl) or, when a
fault rule or the control API fails them, CLOSED: failed for good under
their orderId + txnTime (no notification; the query tells).
"""
from __future__ import annotations

from django.db import transaction

from sandbox.exceptions import InvalidTransition
from sandbox.models import Refund, Trade
from sandbox.runtime import provider_now
from sandbox.services import refund_end, refund_note_query, trade_fail, trade_open, trade_pay
from sandbox.unionpay.messages import new_query_id, new_trace_no, short_time
from sandbox.unionpay.notifications import unionpay_notify_payment, unionpay_notify_refund
from sandbox.unionpay.wire import FAILED_CODE


def _traced(trade: Trade) -> Trade:
    """Give the transaction its traceNo and traceTime once it exists at UnionPay."""
    if not trade.wire.get("traceNo"):
        trade.wire = {**trade.wire, "traceNo": new_trace_no(), "traceTime": short_time(provider_now())}
        trade.save(update_fields=["wire"])
    return trade


def unionpay_trade_submit(trade: Trade) -> Trade:
    """The shopper submitted the card: the consume is in flight (origRespCode 05)."""
    with transaction.atomic():
        return _traced(trade_open(trade, trade_no=new_query_id(provider_now())))


def unionpay_trade_pay(trade: Trade) -> Trade:
    """Pay the consume and queue its back notification, together."""
    with transaction.atomic():
        trade = _traced(trade_pay(trade, trade_no=new_query_id(provider_now())))
        unionpay_notify_payment(trade)
        return trade


def unionpay_trade_fail(trade: Trade) -> Trade:
    """The card was declined: failed (01), no back notification."""
    with transaction.atomic():
        trade = _traced(trade_fail(trade, trade_no=new_query_id(provider_now())))
        trade.wire = {**trade.wire, "origRespCode": FAILED_CODE}
        trade.save(update_fields=["wire"])
        return trade


def unionpay_refund_note_query(refund: Refund) -> Refund:
    """Count a query of a processing refund; when its count runs out it ends:
    SUCCEEDED and notified, or CLOSED when a fault rule made it fail."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("trade").get(pk=refund.pk)
        if refund.status == Refund.Status.PROCESSING and refund.wire.get("fails"):
            left = int(refund.wire.get("fail_after_queries", 0))
            if left > 0:
                refund.wire = {**refund.wire, "fail_after_queries": left - 1}
                refund.save(update_fields=["wire"])
                return refund
            return refund_end(refund, status=Refund.Status.CLOSED)
        refund, settled = refund_note_query(refund)
        if settled:
            unionpay_notify_refund(refund)
        return refund


def unionpay_refund_end(refund: Refund, *, succeeded: bool) -> Refund:
    """End a processing refund now: SUCCEEDED (notified) or CLOSED (failed, not notified)."""
    with transaction.atomic():
        refund = refund_end(refund, status=Refund.Status.SUCCEEDED if succeeded else Refund.Status.CLOSED)
        if succeeded:
            unionpay_notify_refund(Refund.objects.select_related("trade").get(pk=refund.pk))
        return refund


def unionpay_refund_settle(refund: Refund) -> Refund:
    """A processing refund due by time (refund_settle_after_seconds) ends, as
    UnionPay ends it: SUCCEEDED and notified, or CLOSED when a fault rule made
    it fail. Raises InvalidTransition when it has already ended."""
    fails = Refund.objects.filter(pk=refund.pk).values_list("wire", flat=True).first()
    if fails is None:
        raise InvalidTransition("the refund is gone")
    return unionpay_refund_end(refund, succeeded=not dict(fails).get("fails"))
