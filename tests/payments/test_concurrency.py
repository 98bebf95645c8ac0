"""Duplicate and racing results, on real PostgreSQL row locks and unique indexes."""
import pytest

from orders.models import OrderEvent, OrderStatus
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentEvent, PaymentStatus
from payments.services import payment_apply_notification, payment_sync
from shop.actors import Actor
from tests.concurrency import run_in_parallel
from tests.payments.factories import start_payment


def succeeded_events(payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED,
                                       from_status=PaymentStatus.PENDING).count()


@pytest.mark.django_db(transaction=True)
def test_thirty_identical_notifications_in_parallel_make_one_transition(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    raw = fake_gateway.notification(payment.out_trade_no)

    results = run_in_parallel(lambda i: payment_apply_notification(gateway_code="fake", raw=raw), 30)

    assert [(kind, value.status, value.body) for kind, value in results] == [("ok", 200, b"ok")] * 30
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert succeeded_events(payment) == 1
    assert OrderEvent.objects.filter(order_id=payment.order_id, to_status=OrderStatus.PAID).count() == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert outcomes.count(NotificationOutcome.APPLIED) == 1
    assert outcomes.count(NotificationOutcome.DUPLICATE) == 29


@pytest.mark.django_db(transaction=True)
def test_notification_and_janitor_query_racing_make_one_transition(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    raw = fake_gateway.notification(payment.out_trade_no)

    def contender(index: int):
        if index % 2:
            return payment_apply_notification(gateway_code="fake", raw=raw)
        return payment_sync(payment_id=payment.pk, actor=Actor.system("janitor"))

    results = run_in_parallel(contender, 10)

    assert all(kind == "ok" for kind, _ in results), results
    assert succeeded_events(payment) == 1
    assert OrderEvent.objects.filter(order_id=payment.order_id, to_status=OrderStatus.PAID).count() == 1
