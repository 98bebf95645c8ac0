"""Each bill day is the gateway's own: a success near midnight may be billed the next day.

A success of ours in the last RECONCILIATION_CARRY_MINUTES of a bill day
that its bill lacks is carried, not a discrepancy; it becomes one only when
the next day's bill has been matched without it.
"""
from dataclasses import replace

import pytest

from reconciliation.models import Discrepancy, DiscrepancyStatus
from tests.reconciliation.support import DAY, at, found, next_day, paid_payment, reconcile

pytestmark = pytest.mark.django_db
NEXT = next_day(DAY)
LATER = at(next_day(NEXT), 10, 5)


def test_a_payment_at_23_59_58_billed_the_next_day_is_carried_then_matched(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 23, 59, 58))
    # The gateway's clock put it on the next day.
    fake.bills[DAY] = []
    fake.bills[NEXT] = [replace(line, occurred_at=at(NEXT, 0, 0, 1)) for line in fake.recorded_lines(DAY)]

    run, statement = reconcile()
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "carried")}
    assert run.carried == 1 and run.opened == 0
    carried = Discrepancy.objects.get()
    assert carried.carried_to.day == NEXT and carried.opened_at is None

    _run, next_statement = reconcile(NEXT, now=LATER)
    assert found(next_statement) == set()
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "cleared")}
    assert Discrepancy.objects.get().events.last().reason == f"billed on {NEXT.isoformat()}"


def test_a_carried_payment_never_billed_is_a_discrepancy_after_the_next_day(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 23, 59, 58))
    fake.bills[DAY] = []
    fake.bills[NEXT] = []

    _run, statement = reconcile()
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "carried")}

    run, _next_statement = reconcile(NEXT, now=LATER)
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert discrepancy.opened_at is not None
    assert discrepancy.events.last().reason == f"not in the bill of {NEXT.isoformat()} either"


def test_a_success_far_from_midnight_that_the_bill_lacks_is_a_discrepancy_at_once(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 23, 40))
    fake.bills[DAY] = []

    _run, statement = reconcile()

    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "open")}


def test_a_payment_billed_the_day_before_ours_is_no_discrepancy_on_our_day(fake):
    # Our clock says 00:00:01 on NEXT; the gateway billed it on DAY.
    payment = paid_payment(fake, paid_at=at(NEXT, 0, 0, 1))
    fake.bills[DAY] = [replace(line, occurred_at=at(DAY, 23, 59, 59)) for line in fake.recorded_lines(NEXT)]
    fake.bills[NEXT] = []

    _run, statement = reconcile()
    _run, next_statement = reconcile(NEXT, now=LATER)

    assert found(statement) == set() and found(next_statement) == set()
    assert statement.matched_count == 1 and payment.out_trade_no


def test_reconciling_the_day_again_after_the_next_one_decides_at_once(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 23, 59, 58))
    fake.bills[DAY] = []
    fake.bills[NEXT] = []
    reconcile()
    reconcile(NEXT, now=LATER)

    _run, statement = reconcile(force=True, now=LATER)

    # The next bill is matched: nothing is carried any more, it stays open.
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "open")}
    assert Discrepancy.objects.count() == 1
    assert Discrepancy.objects.get().status == DiscrepancyStatus.OPEN
