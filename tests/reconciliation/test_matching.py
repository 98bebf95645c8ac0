"""Matching a day's bill against our payments and refunds: every discrepancy kind, nothing else.

Against the in-memory gateway, whose bill lists what it was paid that day
unless a test writes the bill itself. The same tests run on PostgreSQL
(lines loaded with COPY) and on SQLite (the portable path).
"""
from dataclasses import replace

import pytest

from payments.exceptions import GatewayUnavailable
from payments.gateways.base import StatementLineKind
from payments.lock_objects import payment_and_order_for_update
from payments.models import PaymentStatus
from payments.services import payment_move, payment_sync
from reconciliation.models import Discrepancy, DiscrepancyStatus, StatementLine, StatementStatus
from refunds.models import Refund
from tests.orders.factories import place_order
from tests.reconciliation.support import (
    DAY,
    TEST,
    at,
    found,
    open_payment,
    paid_payment,
    reconcile,
    refunded,
    stranger_line,
)

pytestmark = pytest.mark.django_db


def test_a_clean_day_matches_every_line_and_finds_nothing(fake):
    first = paid_payment(fake, paid_at=at(DAY, 9), price_minor=8800)
    second = paid_payment(fake, paid_at=at(DAY, 14, 30), price_minor=1999)
    paid_payment(fake, paid_at=at(DAY, 18), price_minor=3990)
    refunded(fake, first, amount_minor=800, refunded_at=at(DAY, 20))

    run, statement = reconcile()

    assert (run.outcome, statement.status) == ("matched", StatementStatus.MATCHED)
    assert found(statement) == set()
    assert (statement.line_count, statement.matched_count) == (4, 4)
    assert (statement.bill_payment_count, statement.bill_payment_minor) == (3, 8800 + 1999 + 3990)
    assert (statement.bill_refund_count, statement.bill_refund_minor) == (1, 800)
    assert (statement.local_payment_count, statement.local_payment_minor) == (3, 8800 + 1999 + 3990)
    assert (statement.local_refund_count, statement.local_refund_minor) == (1, 800)
    assert StatementLine.objects.filter(statement=statement).count() == 4
    assert second.out_trade_no in set(StatementLine.objects.values_list("out_trade_no", flat=True))
    assert statement.sha256 and statement.file_name.startswith("fake/2026/11/2026-11-30_")


def test_a_line_we_never_had_is_missing_here_and_waits_for_finance(fake):
    paid_payment(fake, paid_at=at(DAY, 9))
    fake.bills[DAY] = [*fake.recorded_lines(DAY), stranger_line("STRANGER1", 4200, at(DAY, 12))]

    _run, statement = reconcile()

    assert found(statement) == {("missing_here", "STRANGER1", "open")}
    (discrepancy,) = Discrepancy.objects.all()
    assert (discrepancy.bill_amount_minor, discrepancy.payment_id, discrepancy.heal_action) == (4200, None, "")
    assert statement.matched_count == 1


def test_a_payment_the_bill_lacks_is_missing_at_the_gateway(fake):
    kept = paid_payment(fake, paid_at=at(DAY, 9))
    lost = paid_payment(fake, paid_at=at(DAY, 15), price_minor=1234)
    fake.bills[DAY] = [line for line in fake.recorded_lines(DAY) if line.out_trade_no != lost.out_trade_no]

    _run, statement = reconcile()

    assert found(statement) == {("missing_at_gateway", lost.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert (discrepancy.payment_id, discrepancy.order_id, discrepancy.local_amount_minor) == (
        lost.pk, lost.order_id, 1234)
    assert kept.out_trade_no not in {d.reference for d in Discrepancy.objects.all()}


def test_an_amount_the_bill_disagrees_with(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9), price_minor=8800)
    fake.bills[DAY] = [replace(line, amount_minor=8801) for line in fake.recorded_lines(DAY)]

    _run, statement = reconcile()

    assert found(statement) == {("amount_mismatch", payment.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert (discrepancy.bill_amount_minor, discrepancy.local_amount_minor) == (8801, 8800)
    assert statement.matched_count == 0


def test_a_currency_the_bill_disagrees_with(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    fake.bills[DAY] = [replace(line, currency="USD") for line in fake.recorded_lines(DAY)]

    _run, statement = reconcile()

    assert found(statement) == {("currency_mismatch", payment.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert (discrepancy.bill_currency, discrepancy.local_currency) == ("USD", "CNY")


def test_the_same_trade_twice_in_one_bill_is_a_duplicate(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    other = paid_payment(fake, paid_at=at(DAY, 10))
    lines = fake.recorded_lines(DAY)
    fake.bills[DAY] = [*lines, *(line for line in lines if line.out_trade_no == payment.out_trade_no)]

    _run, statement = reconcile()

    assert found(statement) == {("duplicate", payment.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert (discrepancy.occurrences, discrepancy.payment_id) == (2, payment.pk)
    assert other.out_trade_no not in {d.reference for d in Discrepancy.objects.all()}
    # One of the two lines matched; the other is the duplicate.
    assert (statement.line_count, statement.matched_count) == (3, 2)


def test_two_paid_attempts_for_one_order_are_a_duplicate(fake):
    order = place_order(price_minor=5000)
    first, second = open_payment(fake, order=order), open_payment(fake, order=order)
    for payment, minute in ((first, 0), (second, 1)):
        fake.pay(payment.out_trade_no, paid_at=at(DAY, 9, minute))
        payment_sync(payment_id=payment.pk, actor=TEST)

    _run, statement = reconcile()

    assert found(statement) == {("duplicate", second.out_trade_no, "open")}
    assert first.out_trade_no not in {d.reference for d in Discrepancy.objects.all()}


def test_a_paid_line_for_a_payment_we_closed_is_a_status_mismatch(fake):
    payment = open_payment(fake)
    fake.pay(payment.out_trade_no, paid_at=at(DAY, 11))
    locked, _order = payment_and_order_for_update(payment_id=payment.pk)
    payment_move(locked, to_status=PaymentStatus.CLOSED, actor=TEST, reason="closed here before the money came")
    fake.fail_next["query_payment"] = GatewayUnavailable("down")

    _run, statement = reconcile()

    assert found(statement) == {("status_mismatch", payment.out_trade_no, "open")}
    discrepancy = Discrepancy.objects.get()
    assert (discrepancy.local_status, discrepancy.heal_action) == ("closed", "payment_sync")
    assert discrepancy.evidence["error_type"] == "GatewayUnavailable"


def test_a_refund_the_bill_lists_that_we_never_made_is_missing_here(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    refund_line = replace(stranger_line(payment.out_trade_no, 500, at(DAY, 12)), kind=StatementLineKind.REFUND,
                          out_refund_no=f"{payment.order.order_no}R99")
    fake.bills[DAY] = [*fake.recorded_lines(DAY), refund_line]

    _run, statement = reconcile()

    assert found(statement) == {("missing_here", f"{payment.order.order_no}R99", "open")}


def test_a_refund_retried_under_a_new_number_matches_under_either(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9), price_minor=8800)
    refund = refunded(fake, payment, amount_minor=1000, refunded_at=at(DAY, 16))
    old_number = refund.out_refund_no
    Refund.objects.filter(pk=refund.pk).update(out_refund_no=f"{old_number}T2")
    # The bill still carries the number the refund was first asked under.
    fake.refunds[f"{old_number}T2"] = fake.refunds.pop(old_number)

    _run, statement = reconcile()
    assert found(statement) == set()

    fake.bills[DAY] = [replace(line, out_refund_no=f"{old_number}T2") if line.kind == StatementLineKind.REFUND
                       else line for line in fake.recorded_lines(DAY)]
    _run, statement = reconcile(force=True)
    assert found(statement) == set()


def test_an_empty_bill_makes_every_success_of_the_day_a_discrepancy(fake):
    first = paid_payment(fake, paid_at=at(DAY, 9))
    second = paid_payment(fake, paid_at=at(DAY, 13))
    fake.bills[DAY] = []

    _run, statement = reconcile()

    assert statement.status == StatementStatus.MATCHED and statement.line_count == 0
    assert found(statement) == {("missing_at_gateway", first.out_trade_no, "open"),
                                ("missing_at_gateway", second.out_trade_no, "open")}


def test_discrepancies_are_not_counted_as_open_once_cleared(fake):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    fake.bills[DAY] = [replace(line, amount_minor=1) for line in fake.recorded_lines(DAY)]
    _run, statement = reconcile()
    assert found(statement) == {("amount_mismatch", payment.out_trade_no, "open")}

    del fake.bills[DAY]
    run, statement = reconcile(force=True)
    assert found(statement) == {("amount_mismatch", payment.out_trade_no, "cleared")}
    assert run.cleared == 1 and statement.matched_count == 1
    assert Discrepancy.objects.get().status == DiscrepancyStatus.CLEARED
