"""What a fresh notification's row says once its transaction commits (payments/services/inbox.py).

A success notification is stored by its claim with the outcome it nearly
always has (applied: payment succeeded, order paid) and its payment; when
the apply does something else, the row says what it did instead.
"""
import pytest

from orders.models import OrderStatus
from orders.services import order_close
from payments.gateways.base import PayMethod
from payments.models import GatewayNotification, NotificationOutcome, PaymentStatus, RefundRequired
from payments.services import payment_apply_notification
from shop.actors import Actor
from tests.orders.factories import place_order
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("test")


def _notify(fake_gateway, out_trade_no, **kwargs):
    return payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(out_trade_no, **kwargs))


def _row(**filters):
    row = GatewayNotification.objects.get(**filters)
    return row.outcome, row.outcome_detail, row.payment_id


def test_a_success_that_pays_the_order_is_applied(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)

    assert _notify(fake_gateway, payment.out_trade_no).status == 200

    assert _row() == (NotificationOutcome.APPLIED, "payment succeeded, order paid", payment.pk)


def test_a_late_payment_on_a_closed_order_says_so_and_goes_to_its_refund(fake_gateway):
    payment, _ = start_payment()
    order_close(order_id=payment.order_id, actor=SYSTEM, reason="timeout")
    fake_gateway.pay(payment.out_trade_no)

    assert _notify(fake_gateway, payment.out_trade_no).status == 200

    assert _row() == (NotificationOutcome.APPLIED, "payment succeeded, order closed", payment.pk)
    payment.refresh_from_db()
    assert (payment.status, payment.refund_required) == (PaymentStatus.SUCCEEDED, RefundRequired.LATE)


def test_a_second_success_for_a_paid_attempt_is_unchanged(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    _notify(fake_gateway, payment.out_trade_no, notification_id="first")

    assert _notify(fake_gateway, payment.out_trade_no, notification_id="second").status == 200

    assert _row(dedupe_key__isnull=False, outcome=NotificationOutcome.UNCHANGED) == (
        NotificationOutcome.UNCHANGED, "payment succeeded, order paid", payment.pk)
    assert GatewayNotification.objects.filter(outcome=NotificationOutcome.APPLIED).count() == 1


def test_a_second_attempt_paid_after_the_first_is_flagged_as_a_duplicate_payment(fake_gateway):
    order = place_order()
    first, _ = start_payment(order=order)
    second, _ = start_payment(order=order, method=PayMethod.PAGE)
    for payment in (first, second):
        fake_gateway.pay(payment.out_trade_no)
        _notify(fake_gateway, payment.out_trade_no)

    assert _row(payment=second) == (NotificationOutcome.APPLIED, "payment succeeded, order paid", second.pk)
    second.refresh_from_db()
    assert second.refund_required == RefundRequired.DUPLICATE


def test_a_copy_is_a_duplicate_of_the_first_with_its_payment(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    _notify(fake_gateway, payment.out_trade_no, notification_id="same")

    assert _notify(fake_gateway, payment.out_trade_no, notification_id="same").status == 200

    first, copy = GatewayNotification.objects.order_by("pk")
    assert (copy.outcome, copy.duplicate_of_id, copy.payment_id, copy.dedupe_key) == (
        NotificationOutcome.DUPLICATE, first.pk, payment.pk, None)


def test_an_unknown_trade_is_rejected_and_names_no_payment(fake_gateway):
    ack = _notify(fake_gateway, "NOT-OURS", amount_minor=100)

    assert ack.status == 400
    outcome, _, payment_id = _row()
    assert (outcome, payment_id) == (NotificationOutcome.REJECTED, None)


def test_a_wrong_amount_is_rejected_and_applies_nothing(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)

    assert _notify(fake_gateway, payment.out_trade_no, amount_minor=1).status == 400

    outcome, _, payment_id = _row()
    assert (outcome, payment_id) == (NotificationOutcome.REJECTED, None)
    payment.refresh_from_db()
    assert payment.status != PaymentStatus.SUCCEEDED
    assert payment.order.status == OrderStatus.PENDING_PAYMENT
