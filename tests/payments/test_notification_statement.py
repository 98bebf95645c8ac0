"""The common payment notification in one statement writes what the inbox's ORM path writes.

payments/services/notification_statement.py applies a fresh success for an
open attempt of an order awaiting payment with one data-modifying WITH on
PostgreSQL. Each case here sends the same signed notification twice on the
same database state, rolled back in between: once through that statement,
once through the inbox's ORM path, and compares every column of every row
written or changed (ids and the moment of writing aside). What is not the
common case must leave the statement without a trace, for the ORM path to
decide as before.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from payments.gateways.base import PayMethod
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentEvent, PaymentStatus
from payments.services import inbox, payment_apply_notification
from shop.models import OutboxMessage
from tests.concurrency import run_in_parallel
from tests.orders.factories import place_order
from tests.payments.factories import start_payment
from tests.test_query_budget import (
    alipay_notification_body,
    post_alipay,
    real_gateways,
    wechatpay_notification,
)

__all__ = ["real_gateways"]  # a fixture, used by name
pytestmark = pytest.mark.django_db

CREATED_ROWS = (GatewayNotification, PaymentEvent, OrderEvent, OutboxMessage)


@pytest.fixture
def one_statement(monkeypatch):
    """What the one statement answered for each notification (None: it wrote nothing)."""
    answers: list[str | None] = []
    apply = inbox._ONE_STATEMENT["payment"]

    def recorded(*args):
        answers.append(apply(*args))
        return answers[-1]

    monkeypatch.setitem(inbox._ONE_STATEMENT, "payment", recorded)
    return answers


def alipay_sender(payment, options):
    body = alipay_notification_body(payment, options)
    return lambda client: post_alipay(client, body)


def wechatpay_sender(payment, options):
    body, headers = wechatpay_notification(payment)
    return lambda client: client.post(reverse("payments:notify", kwargs={"gateway": "wechatpay"}), body,
                                      content_type="application/json",
                                      **{f"HTTP_{name.upper().replace('-', '_')}": value
                                         for name, value in headers.items()})


def wechatpay_payment(status=PaymentStatus.PENDING) -> Payment:
    order = place_order()
    return Payment.objects.create(
        order=order, attempt_no=1, gateway="wechatpay", method=PayMethod.QR, out_trade_no=f"{order.order_no}P01",
        amount_minor=order.total_minor, currency=order.currency, status=status, expires_at=order.expires_at,
        requested_at=order.created_at.replace(microsecond=0))


def alipay_payment(status=PaymentStatus.PENDING) -> Payment:
    payment, _ = start_payment(gateway_code="alipay", method=PayMethod.PAGE)
    Payment.objects.filter(pk=payment.pk).update(status=status)
    return payment


def written(send, client, payment: Payment, monkeypatch, *, through_orm: bool) -> tuple[int, dict]:
    """Send, note every row written or changed, roll it all back; (status code, rows)."""
    before = {model: set(model.objects.values_list("pk", flat=True)) for model in CREATED_ROWS}
    start = timezone.now()
    with monkeypatch.context() as patched, transaction.atomic():
        if through_orm:
            patched.setattr(inbox, "_ONE_STATEMENT", {})
        response = send(client)
        new_notifications = set(GatewayNotification.objects.values_list("pk", flat=True)) - before[GatewayNotification]
        rows = {model.__name__: sorted((_normal(row, start, new_notifications, new_row=True) for row in
                                        model.objects.exclude(pk__in=before[model]).values()), key=repr)
                for model in CREATED_ROWS}
        rows["Payment"] = [_normal(Payment.objects.filter(pk=payment.pk).values().get(), start, new_notifications)]
        rows["Order"] = [_normal(Order.objects.filter(pk=payment.order_id).values().get(), start, new_notifications)]
        transaction.set_rollback(True)
    return response.status_code, rows


def _normal(row: dict, start: datetime, new_notifications: set[int], *, new_row: bool = False) -> dict:
    normal = {}
    for name, value in row.items():
        if name == "id" and new_row:
            continue  # the sequence's
        if name in ("notification_id", "duplicate_of_id") and value in new_notifications:
            value = "this notification"
        elif isinstance(value, datetime) and abs(value - start) < timedelta(days=1):
            value = f"now + {round((value - start) / timedelta(minutes=1))} min"  # written now, or a lease later
        elif isinstance(value, memoryview):
            value = bytes(value)
        normal[name] = value
    return normal


@pytest.mark.parametrize("status", [PaymentStatus.PENDING, PaymentStatus.CREATED, PaymentStatus.CLOSED,
                                    PaymentStatus.FAILED])
@pytest.mark.parametrize("gateway", ["alipay", "wechatpay"])
def test_the_one_statement_writes_every_row_as_the_orm_path_does(gateway, status, client, real_gateways,
                                                                 one_statement, monkeypatch):
    payment = (alipay_payment if gateway == "alipay" else wechatpay_payment)(status)
    send = (alipay_sender if gateway == "alipay" else wechatpay_sender)(payment, real_gateways)

    one = written(send, client, payment, monkeypatch, through_orm=False)
    orm = written(send, client, payment, monkeypatch, through_orm=True)

    assert one_statement == [NotificationOutcome.APPLIED]
    assert one == orm
    code, rows = one
    assert code in (200, 204)
    assert rows["Payment"][0]["status"] == PaymentStatus.SUCCEEDED and rows["Order"][0]["status"] == OrderStatus.PAID
    assert [row["task"] for row in rows["OutboxMessage"]] == ["payments.tasks.payment_send_confirmation_task"]
    assert len(rows["PaymentEvent"]) == len(rows["OrderEvent"]) == len(rows["GatewayNotification"]) == 1


def test_a_success_on_a_closed_order_is_left_to_the_inbox(client, real_gateways, one_statement):
    payment = alipay_payment()
    Order.objects.filter(pk=payment.order_id).update(status=OrderStatus.CLOSED)

    assert post_alipay(client, alipay_notification_body(payment, real_gateways)).content == b"success"

    assert one_statement == [None]
    payment.refresh_from_db()
    assert (payment.status, payment.refund_required) == (PaymentStatus.SUCCEEDED, "paid_after_close")
    assert GatewayNotification.objects.get().outcome == NotificationOutcome.APPLIED


def test_a_repeat_is_left_to_the_inbox_and_recorded_as_a_duplicate(client, real_gateways, one_statement):
    payment = alipay_payment()
    body = alipay_notification_body(payment, real_gateways)

    assert post_alipay(client, body).content == b"success"
    assert post_alipay(client, body).content == b"success"

    assert one_statement == [NotificationOutcome.APPLIED, None]
    assert sorted(GatewayNotification.objects.values_list("outcome", flat=True)) == [
        NotificationOutcome.APPLIED, NotificationOutcome.DUPLICATE]
    assert PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).count() == 1


def test_a_wrong_amount_and_an_unknown_trade_write_nothing_and_are_refused(client, real_gateways, one_statement):
    payment = alipay_payment()
    body = alipay_notification_body(payment, real_gateways)
    Payment.objects.filter(pk=payment.pk).update(amount_minor=payment.amount_minor + 1)
    other = alipay_payment()
    unknown = alipay_notification_body(other, real_gateways)
    Payment.objects.filter(pk=other.pk).update(out_trade_no=f"{other.out_trade_no}X")

    assert post_alipay(client, body).status_code == 400
    assert post_alipay(client, unknown).status_code == 400

    assert one_statement == [None, None]
    assert set(GatewayNotification.objects.values_list("outcome", flat=True)) == {NotificationOutcome.REJECTED}
    assert not Payment.objects.filter(status=PaymentStatus.SUCCEEDED).exists()
    assert not OutboxMessage.objects.exists()


def test_a_payment_already_succeeded_is_left_to_the_inbox(client, real_gateways, one_statement):
    payment = alipay_payment(PaymentStatus.SUCCEEDED)

    assert post_alipay(client, alipay_notification_body(payment, real_gateways)).content == b"success"

    assert one_statement == [None]
    assert GatewayNotification.objects.get().outcome == NotificationOutcome.UNCHANGED



@pytest.mark.django_db(transaction=True)
def test_thirty_copies_at_once_one_applied_by_the_statement_the_rest_duplicates(fake_gateway, one_statement):
    """Outside any transaction, as in production: the copies wait on the row locks, then leave it to the inbox."""
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    raw = fake_gateway.notification(payment.out_trade_no)

    results = run_in_parallel(lambda i: payment_apply_notification(gateway_code="fake", raw=raw), 30)

    assert [kind for kind, _ in results] == ["ok"] * 30
    assert (one_statement.count(NotificationOutcome.APPLIED), one_statement.count(None)) == (1, 29)
    outcomes = sorted(GatewayNotification.objects.values_list("outcome", flat=True))
    assert outcomes == [NotificationOutcome.APPLIED] + [NotificationOutcome.DUPLICATE] * 29
    assert PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).count() == 1
    assert OrderEvent.objects.filter(order_id=payment.order_id, to_status=OrderStatus.PAID).count() == 1
    assert OutboxMessage.objects.count() == 1
