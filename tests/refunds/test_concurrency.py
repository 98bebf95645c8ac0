"""Refund approvals racing each other, on real PostgreSQL row locks."""
import pytest

from refunds.exceptions import InvalidRefundAmount
from refunds.models import Refund, RefundBalance, RefundStatus
from refunds.services import refund_approve
from tests.concurrency import run_in_parallel
from tests.refunds.factories import paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


def make_requested(order, payment, amount_minor, number):
    """A second application can only exist beside the first if it was
    created before the first was approved, e.g. by staff: make both directly."""
    return Refund.objects.create(order=order, payment=payment, out_refund_no=f"{order.order_no}R{number:02d}",
                                 amount_minor=amount_minor, reason="damaged", requested_by=order.shopper)


def test_two_approvals_whose_sum_exceeds_the_payment_let_one_through(fake_gateway):
    order, payment = paid_order(price_minor=10000)
    first = make_requested(order, payment, 6000, 1)
    second = make_requested(order, payment, 6000, 2)
    reviewers = [reviewer("alice-cs"), reviewer("bob-cs")]

    results = run_in_parallel(
        lambda i: refund_approve(refund_id=(first, second)[i].pk, reviewer=reviewers[i]), 2)

    kinds = sorted(kind for kind, _ in results)
    assert kinds == ["error", "ok"]
    (error,) = [value for kind, value in results if kind == "error"]
    assert isinstance(error, InvalidRefundAmount)
    statuses = sorted(Refund.objects.values_list("status", flat=True))
    assert statuses == [RefundStatus.REQUESTED, RefundStatus.SUCCEEDED]
    balance = RefundBalance.objects.get(payment=payment)
    assert (balance.reserved_minor, balance.refunded_minor) == (6000, 6000)
    assert sum(fake_gateway.refunds_executed.values()) == 6000


def test_the_same_refund_approved_twice_in_parallel_refunds_once(fake_gateway):
    order, payment = paid_order(price_minor=10000)
    refund = make_requested(order, payment, 10000, 1)
    reviewers = [reviewer(f"cs{i}") for i in range(4)]

    results = run_in_parallel(lambda i: refund_approve(refund_id=refund.pk, reviewer=reviewers[i]), 4)

    assert all(kind == "ok" for kind, _ in results), results
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert fake_gateway.refunds_executed == {refund.out_refund_no: 10000}
    assert [name for name, _ in fake_gateway.calls].count("refund") == 1
    assert RefundBalance.objects.get(payment=payment).refunded_minor == 10000
