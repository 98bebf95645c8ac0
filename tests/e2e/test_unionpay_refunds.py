"""UnionPay refunds end to end: asynchronous at UnionPay (accepted, then a back
notification or a query tells), numbered by orderId + txnTime, renumbered
after a failure. Orders are paid for real on the sandbox's UnionPay page."""
from __future__ import annotations

import pytest

from orders.models import Order, OrderStatus
from payments.gateways.unionpay.formats import format_txn_time
from payments.models import NotificationOutcome
from refunds.models import Refund, RefundEvent, RefundStatus
from refunds.services import refund_retry
from tests.e2e.refund_support import (
    apply,
    approve,
    poll_until_settled,
    refund_notifications,
    succeeded_events,
    user,
)
from tests.e2e.unionpay_flows import sandbox_trade, unionpay_paid_order
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def order_status(order: Order) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order.pk)


def test_a_full_refund_is_accepted_and_its_back_notification_settles_it(shop, sandbox):
    order, payment = unionpay_paid_order(shop, sandbox, {"TEA-LJ-250": 1})

    refund = approve(apply(order, 8800))

    # Accepted only (B9): the result comes later.
    assert (refund.status, refund.gateway_status) == (RefundStatus.PROCESSING, "processing")
    assert refund.submitted_at is not None and refund.gateway_refund_id
    at_sandbox = sandbox_trade(sandbox, payment)
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["status"]) == (refund.out_refund_no, "processing")
    assert sandbox_refund["txn_time"] == format_txn_time(refund.submitted_at)

    sandbox.control("POST", f"unionpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    wait_for(lambda: Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED, what="the notification")
    notification = refund_notifications(refund).get()
    assert (notification.outcome, notification.verified) == (NotificationOutcome.APPLIED, True)
    assert RefundEvent.objects.get(refund=refund, to_status=RefundStatus.SUCCEEDED).notification == notification
    assert order_status(order) == OrderStatus.REFUNDED
    assert sandbox_trade(sandbox, payment)["refunded_minor"] == 8800
    assert succeeded_events(refund) == 1


def test_a_partial_refund_is_settled_by_the_janitors_query(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "unionpay.refund_notify", "mode": "drop"})
    order, payment = unionpay_paid_order(shop, sandbox, {"TEA-LJ-250": 1})

    refund = approve(apply(order, 3000))
    polls = poll_until_settled(refund)

    refund.refresh_from_db()
    assert polls == 2  # in flight (05) at the first query, succeeded (00) at the second
    assert (refund.status, refund.refunded_at is not None) == (RefundStatus.SUCCEEDED, True)
    assert order_status(order) == OrderStatus.PARTIALLY_REFUNDED
    assert not refund_notifications(refund).exists()
    at_sandbox = sandbox_trade(sandbox, payment)
    assert (at_sandbox["refunded_minor"], at_sandbox["refund_count"]) == (3000, 1)
    assert succeeded_events(refund) == 1


def test_a_failed_refund_is_retried_under_a_new_number_and_time(shop, sandbox):
    order, payment = unionpay_paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "fail", "queries": 0})
    refund = approve(apply(order, 8800))
    failed_no, failed_at = refund.out_refund_no, refund.submitted_at

    poll_until_settled(refund)

    refund.refresh_from_db()
    assert (refund.status, refund.gateway_status) == (RefundStatus.FAILED, "closed")
    assert "a retry needs a new number" in refund.last_error
    assert order_status(order) == OrderStatus.PAID

    refund_retry(refund_id=refund.pk, staff=user("service"))

    refund.refresh_from_db()
    assert refund.out_refund_no == f"{failed_no}T2"
    assert refund.status == RefundStatus.PROCESSING and refund.submitted_at >= failed_at
    poll_until_settled(refund)
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = sandbox_trade(sandbox, payment)
    numbers = {item["out_refund_no"]: item["status"] for item in at_sandbox["refunds"]}
    assert numbers == {failed_no: "closed", refund.out_refund_no: "succeeded"}
    # The money went back once.
    assert at_sandbox["refunded_minor"] == 8800
    event = RefundEvent.objects.get(refund=refund, reason="retry by staff")
    assert event.detail == {"closed_out_refund_no": failed_no}


def test_a_refund_refused_at_once_fails_and_is_retried_under_a_new_number(shop, sandbox):
    order, payment = unionpay_paid_order(shop, sandbox, {"NOTE-A5": 2})
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "error", "code": "35"})

    refund = approve(apply(order, 1000))

    assert refund.status == RefundStatus.FAILED
    refund_retry(refund_id=refund.pk, staff=user("service"))
    refund.refresh_from_db()
    assert refund.out_refund_no.endswith("T2") and refund.status == RefundStatus.PROCESSING
    poll_until_settled(refund)
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert sandbox_trade(sandbox, payment)["refunded_minor"] == 1000
