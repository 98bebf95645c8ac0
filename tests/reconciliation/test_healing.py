"""Healing through the existing services, never on the bill's word alone."""
from dataclasses import replace

import pytest
from django.db import transaction

from orders.models import OrderStatus
from orders.services import order_close
from payments.gateways.base import GatewayRefundStatus, StatementLine, StatementLineKind
from payments.lock_objects import payment_and_order_for_update
from payments.models import PaymentStatus, RefundRequired
from payments.services import payment_move
from reconciliation.models import Discrepancy, DiscrepancyStatus
from refunds.models import Refund, RefundStatus
from refunds.services import refund_approve
from tests.reconciliation.support import DAY, TEST, at, found, open_payment, paid_payment, reconcile
from tests.refunds.factories import apply_for_refund, reviewer

# Real commits: a healed late payment starts its automatic refund on commit.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_payment_whose_notification_was_lost_is_queried_applied_and_healed(fake):
    payment = open_payment(fake, price_minor=4200)
    fake.pay(payment.out_trade_no, paid_at=at(DAY, 11, 30))
    # No notification came, the janitor has not asked yet: pending here, paid there.
    assert payment.status == PaymentStatus.PENDING

    run, statement = reconcile()

    assert found(statement) == {("missing_here", payment.out_trade_no, "healed")}
    assert run.healed == 1
    # Our side of the day's totals includes the payment the heal applied.
    statement.refresh_from_db()
    assert (statement.local_payment_count, statement.local_payment_minor) == (1, 4200)
    payment.refresh_from_db()
    assert (payment.status, payment.order.status) == (PaymentStatus.SUCCEEDED, OrderStatus.PAID)
    discrepancy = Discrepancy.objects.get()
    assert discrepancy.evidence["asked"] == "payment query"
    assert discrepancy.evidence["gateway_status"] == "succeeded"
    assert discrepancy.evidence["events"][0]["to_status"] == "succeeded"
    assert ("query_payment", payment.out_trade_no) in fake.calls
    healed = discrepancy.events.get(to_status=DiscrepancyStatus.HEALED)
    assert (healed.actor_label, healed.detail["payment_status"]) == ("reconciliation", "succeeded")


def test_the_bill_alone_never_marks_a_payment_paid(fake):
    payment = open_payment(fake)
    # The bill says paid; the gateway's own query does not.
    fake.bills[DAY] = [StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no=payment.out_trade_no,
                                     gateway_trade_no="G1", amount_minor=payment.amount_minor,
                                     occurred_at=at(DAY, 9))]

    _run, statement = reconcile()

    assert found(statement) == {("missing_here", payment.out_trade_no, "open")}
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PENDING
    discrepancy = Discrepancy.objects.get()
    assert discrepancy.evidence["gateway_status"] == "not_found"
    assert discrepancy.next_heal_at is not None and discrepancy.heal_attempts == 1


def test_a_paid_line_for_a_closed_order_runs_the_late_payment_refund_once(fake):
    payment = open_payment(fake, price_minor=3000)
    fake.pay(payment.out_trade_no, paid_at=at(DAY, 10))
    # The order timed out here and was closed; the shopper's money reached
    # the gateway all the same (a close that lost the race).
    with transaction.atomic():
        locked, _order = payment_and_order_for_update(payment_id=payment.pk)
        payment_move(locked, to_status=PaymentStatus.CLOSED, actor=TEST, reason="expired")
    order_close(order_id=payment.order_id, actor=TEST, reason="timeout")

    _run, statement = reconcile()

    assert found(statement) == {("status_mismatch", payment.out_trade_no, "healed")}
    payment.refresh_from_db()
    assert (payment.status, payment.refund_required) == (PaymentStatus.SUCCEEDED, RefundRequired.LATE)
    assert payment.order.status == OrderStatus.CLOSED
    refund = Refund.objects.get()
    assert (refund.automatic, refund.status, refund.amount_minor) == (True, RefundStatus.SUCCEEDED, 3000)
    assert Discrepancy.objects.get().evidence["refund_required"] == RefundRequired.LATE

    # Reconciling again changes nothing and refunds nothing twice.
    reconcile(force=True)
    assert Refund.objects.count() == 1
    assert fake.refunds_executed == {refund.out_refund_no: 3000}
    assert found(statement) == {("status_mismatch", payment.out_trade_no, "healed")}


def test_a_refund_still_processing_here_is_polled_and_healed(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9), price_minor=5000)
    fake.refund_outcome = GatewayRefundStatus.PROCESSING
    refund = apply_for_refund(payment.order, amount_minor=1500)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    refund.refresh_from_db()
    assert refund.status == RefundStatus.PROCESSING
    # The gateway finished it that day; we have not polled yet.
    fake.refunds[refund.out_refund_no] = replace(fake.refunds[refund.out_refund_no],
                                                 status=GatewayRefundStatus.SUCCEEDED, refunded_at=at(DAY, 15))

    _run, statement = reconcile()

    assert found(statement) == {("missing_here", refund.out_refund_no, "healed")}
    refund.refresh_from_db()
    assert refund.status == RefundStatus.SUCCEEDED
    assert Discrepancy.objects.get().evidence["asked"] == "refund query"


def test_a_heal_that_never_ran_is_picked_up_by_the_daily_job(fake, monkeypatch):
    from reconciliation.services import reconciliation_run_due, statements
    from tests.reconciliation.support import NOW

    payment = open_payment(fake, price_minor=4200)
    fake.pay(payment.out_trade_no, paid_at=at(DAY, 11, 30))
    # The run commits its findings, then dies before healing them.
    monkeypatch.setattr(statements, "discrepancies_heal", lambda **kwargs: 0)
    _run, statement = reconcile()
    assert found(statement) == {("missing_here", payment.out_trade_no, "open")}
    monkeypatch.undo()

    done = reconciliation_run_due(now=NOW)

    assert done.healed == 1
    assert found(statement) == {("missing_here", payment.out_trade_no, "healed")}
