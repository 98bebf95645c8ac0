"""Payment services against the in-memory gateway (payments/gateways/fake.py)."""
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_close, order_expire, order_mark_paid
from payments.exceptions import GatewayRejected, GatewayUnavailable, InvalidPaymentTransition, OrderNotPayable
from payments.gateways.base import PayMethod, TradeState, TradeStatus
from payments.models import (
    PAYMENT_TRANSITIONS,
    GatewayNotification,
    NotificationOutcome,
    Payment,
    PaymentEvent,
    PaymentStatus,
    RefundRequired,
)
from payments.services import (
    notification_process,
    payment_apply_notification,
    payment_start,
    payment_sync,
    payment_sync_if_due,
    payments_query_stale,
)
from payments.services import payment_move as _apply_transition
from shop.actors import Actor
from shop.models import Sku
from tests.orders.factories import place_order
from tests.payments.factories import start_payment

SYSTEM = Actor.system("test")


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def paid_events(payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).exclude(
        from_status=PaymentStatus.SUCCEEDED).count()


@pytest.mark.django_db
class TestStart:
    def test_creates_an_attempt_with_its_own_trade_number(self, fake_gateway, django_capture_on_commit_callbacks):
        order = place_order()
        with django_capture_on_commit_callbacks(execute=True):
            payment, action = start_payment(order=order)
        assert payment.out_trade_no == f"{order.order_no}P01"
        assert payment.status == PaymentStatus.PENDING
        assert payment.amount_minor == order.total_minor
        assert payment.qr_content == action.qr_content == f"fake://pay/{payment.out_trade_no}"
        request = fake_gateway.requests[payment.out_trade_no]
        assert request.notify_url == "http://127.0.0.1:8000/payments/fake/notify/"
        assert request.expires_at == order.expires_at
        assert [e.to_status for e in payment.events.all()] == ["created", "pending"]

    def test_a_new_attempt_closes_the_superseded_one(self, fake_gateway, django_capture_on_commit_callbacks):
        order = place_order()
        with django_capture_on_commit_callbacks(execute=True):
            first, _ = start_payment(order=order)
        with django_capture_on_commit_callbacks(execute=True):
            second, _ = start_payment(order=order, method=PayMethod.PAGE)
        assert second.out_trade_no == f"{order.order_no}P02"
        assert reload(first).status == PaymentStatus.CLOSED
        assert ("close_payment", first.out_trade_no) in fake_gateway.calls
        assert reload(second).status == PaymentStatus.PENDING

    @pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.CLOSED])
    def test_a_paid_or_closed_order_cannot_start_an_attempt(self, fake_gateway, status):
        order = place_order()
        Order.objects.filter(pk=order.pk).update(status=status)
        with pytest.raises(OrderNotPayable):
            start_payment(order=reload(order))
        assert not Payment.objects.exists()

    def test_an_expired_order_cannot_start_an_attempt(self, fake_gateway):
        order = place_order()
        Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
        with pytest.raises(OrderNotPayable):
            start_payment(order=reload(order))

    def test_an_unreachable_gateway_fails_the_attempt(self, fake_gateway):
        fake_gateway.fail_next["start_payment"] = GatewayUnavailable("timeout")
        order = place_order()
        with pytest.raises(GatewayUnavailable):
            start_payment(order=order)
        payment = Payment.objects.get()
        assert payment.status == PaymentStatus.FAILED
        assert reload(order).status == OrderStatus.PENDING_PAYMENT


    @pytest.mark.parametrize("attempts_before", [0, 1])
    def test_a_notification_before_the_gateways_answer_leaves_the_attempt_paid(self, fake_gateway, monkeypatch,
                                                                            attempts_before):
        # A shopper can scan and pay before the start call's answer is back;
        # the hand-over must not move the paid attempt back to pending.
        order = place_order()
        for _ in range(attempts_before):
            start_payment(order=order)
        answer = fake_gateway.start_payment

        def paid_before_answering(request):
            action = answer(request)
            fake_gateway.pay(request.out_trade_no)
            payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(request.out_trade_no))
            return action

        monkeypatch.setattr(fake_gateway, "start_payment", paid_before_answering)
        payment, _ = start_payment(order=order)
        assert payment.status == reload(payment).status == PaymentStatus.SUCCEEDED
        assert [e.to_status for e in payment.events.order_by("pk")] == ["created", "succeeded"]
        assert reload(order).status == OrderStatus.PAID

    def test_another_shoppers_order_is_not_found(self, fake_gateway, other_shopper):
        order = place_order()
        with pytest.raises(Order.DoesNotExist):
            payment_start(order_no=order.order_no, shopper_id=other_shopper.pk, gateway_code="fake",
                          method=PayMethod.QR, actor=Actor.shopper(other_shopper))
        assert not Payment.objects.exists()


@pytest.mark.django_db
class TestNotifications:
    def test_success_pays_the_order_once_and_emails_the_shopper(self, fake_gateway, django_capture_on_commit_callbacks):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)

        with django_capture_on_commit_callbacks(execute=True):
            ack = payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))

        assert (ack.status, ack.body) == (200, b"ok")
        payment = reload(payment)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert payment.gateway_trade_no == f"FAKE{payment.out_trade_no}"
        assert payment.order.status == OrderStatus.PAID
        assert OrderEvent.objects.filter(order=payment.order, to_status=OrderStatus.PAID).count() == 1
        notification = GatewayNotification.objects.get()
        assert (notification.outcome, notification.verified, notification.payment) == (
            NotificationOutcome.APPLIED, True, payment)
        assert len(mail.outbox) == 1
        assert payment.order.order_no in mail.outbox[0].subject

    def test_a_duplicate_is_acknowledged_and_changes_nothing(self, fake_gateway, django_capture_on_commit_callbacks):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        with django_capture_on_commit_callbacks(execute=True):
            payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))
            ack = payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))

        assert ack.status == 200
        first, second = GatewayNotification.objects.order_by("pk")
        assert second.outcome == NotificationOutcome.DUPLICATE and second.duplicate_of == first
        assert paid_events(payment) == 1
        assert len(mail.outbox) == 1

    def test_a_forged_notification_is_rejected_and_logged(self, fake_gateway, caplog):
        payment, _ = start_payment()
        ack = payment_apply_notification(
            gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no, forged=True))
        assert ack.status == 400
        assert reload(payment).status == PaymentStatus.PENDING
        assert reload(payment.order).status == OrderStatus.PENDING_PAYMENT
        stored = GatewayNotification.objects.get()
        assert (stored.outcome, stored.verified, stored.dedupe_key) == (NotificationOutcome.REJECTED, False, None)
        assert bytes(stored.body).startswith(b"{")
        assert "rejected: bad signature" in caplog.text

    def test_a_forged_copy_cannot_block_the_genuine_one(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(
            payment.out_trade_no, notification_id="N1", forged=True))
        payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(
            payment.out_trade_no, notification_id="N1"))
        assert reload(payment).status == PaymentStatus.SUCCEEDED

    def test_a_wrong_amount_is_rejected(self, fake_gateway, caplog):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no, amount_minor=1)
        ack = payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))
        assert ack.status == 400
        assert reload(payment).status == PaymentStatus.PENDING
        assert reload(payment.order).status == OrderStatus.PENDING_PAYMENT
        assert GatewayNotification.objects.get().outcome == NotificationOutcome.REJECTED
        assert any(record.levelname == "ERROR" for record in caplog.records)

    def test_an_unknown_trade_is_rejected(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        raw = fake_gateway.notification(payment.out_trade_no)
        Payment.objects.filter(pk=payment.pk).update(out_trade_no="SOMETHINGELSE")
        assert payment_apply_notification(gateway_code="fake", raw=raw).status == 400

    @pytest.mark.parametrize("body", [b"", b"not json", b"{}", b'{"status": "succeeded"}'])
    def test_a_malformed_body_is_rejected_not_an_error(self, fake_gateway, body):
        import hashlib
        import hmac

        from payments.gateways.base import RawNotification
        from payments.gateways.fake import SECRET

        raw = RawNotification(body=body, headers={"X-Fake-Signature": hmac.new(SECRET, body, hashlib.sha256).hexdigest()},
                              received_at=timezone.now())
        assert payment_apply_notification(gateway_code="fake", raw=raw).status == 400
        assert GatewayNotification.objects.get().outcome == NotificationOutcome.REJECTED

    def test_a_second_paid_attempt_is_a_duplicate_payment_to_refund(self, fake_gateway):
        order = place_order()
        first, _ = start_payment(order=order)
        second, _ = start_payment(order=order, method=PayMethod.PAGE)
        for payment in (first, second):
            fake_gateway.pay(payment.out_trade_no)
            payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))

        first, second = reload(first), reload(second)
        assert first.status == second.status == PaymentStatus.SUCCEEDED
        assert (first.refund_required, second.refund_required) == ("", RefundRequired.DUPLICATE)
        assert reload(order).status == OrderStatus.PAID
        assert second.events.filter(reason__startswith="refund required").count() == 1

    def test_a_payment_after_the_order_closed_is_recorded_for_refund(self, fake_gateway):
        payment, _ = start_payment()
        order_close(order_id=payment.order_id, actor=SYSTEM, reason="timeout")
        fake_gateway.pay(payment.out_trade_no)

        ack = payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))

        assert ack.status == 200
        payment = reload(payment)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert payment.refund_required == RefundRequired.LATE
        assert payment.order.status == OrderStatus.CLOSED

    def test_reprocessing_an_applied_notification_applies_nothing(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))
        stored = GatewayNotification.objects.get()

        ack = notification_process(notification=stored)

        assert ack.status == 200
        stored.refresh_from_db()
        # Still the notification that paid: a replay never rewrites that.
        assert stored.outcome == NotificationOutcome.APPLIED
        assert "processed again" in stored.outcome_detail
        assert stored.process_count == 2
        assert paid_events(payment) == 1

    def test_reprocessing_a_duplicate_stays_a_duplicate(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        for _ in range(2):
            payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))
        duplicate = GatewayNotification.objects.order_by("pk").last()
        notification_process(notification=duplicate)
        duplicate.refresh_from_db()
        assert duplicate.outcome == NotificationOutcome.DUPLICATE
        assert paid_events(payment) == 1

    def test_a_pending_status_notification_does_not_pay(self, fake_gateway):
        payment, _ = start_payment()
        payment_apply_notification(
            gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no, status="pending"))
        assert reload(payment).status == PaymentStatus.PENDING
        assert reload(payment.order).status == OrderStatus.PENDING_PAYMENT


@pytest.mark.django_db
class TestQueries:
    def test_sync_applies_a_payment_the_notification_never_brought(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        payment = payment_sync(payment_id=payment.pk, actor=SYSTEM)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert reload(payment.order).status == OrderStatus.PAID

    def test_sync_records_that_the_gateway_never_saw_the_trade(self, fake_gateway):
        payment, _ = start_payment()
        payment = payment_sync(payment_id=payment.pk, actor=SYSTEM)
        assert payment.status == PaymentStatus.PENDING
        assert payment.gateway_status == TradeStatus.NOT_FOUND

    def test_sync_if_due_asks_at_most_once_per_interval(self, fake_gateway):
        payment, _ = start_payment()
        for _ in range(3):
            payment_sync_if_due(payment_id=payment.pk, actor=SYSTEM, min_interval=timedelta(minutes=1))
        assert [name for name, _ in fake_gateway.calls].count("query_payment") == 1

    def test_janitor_heals_a_lost_notification_and_backs_off(self, fake_gateway, settings):
        settings.PAYMENT_QUERY_AFTER_SECONDS = 60
        paid, _ = start_payment()
        unpaid, _ = start_payment()
        fake_gateway.pay(paid.out_trade_no)
        later = timezone.now() + timedelta(minutes=2)

        assert payments_query_stale(now=later) == 2

        assert reload(paid).status == PaymentStatus.SUCCEEDED
        assert reload(paid.order).status == OrderStatus.PAID
        unpaid = reload(unpaid)
        assert unpaid.status == PaymentStatus.PENDING and unpaid.query_count == 1
        assert unpaid.next_query_at >= later + timedelta(seconds=120)
        # Not due again until its backoff has passed.
        assert payments_query_stale(now=later + timedelta(seconds=1)) == 0

    def test_janitor_survives_an_unreachable_gateway(self, fake_gateway, settings):
        settings.PAYMENT_QUERY_AFTER_SECONDS = 60
        payment, _ = start_payment()
        fake_gateway.fail_next["query_payment"] = GatewayUnavailable("timeout")
        assert payments_query_stale(now=timezone.now() + timedelta(minutes=2)) == 1
        assert reload(payment).status == PaymentStatus.PENDING


@pytest.mark.django_db
class TestExpiry:
    def expired(self, order):
        return order.expires_at + timedelta(seconds=1)

    def test_an_unpaid_order_is_closed_at_the_gateway_then_locally(self, fake_gateway):
        payment, _ = start_payment(quantity=2, stock=5)
        fake_gateway.trades[payment.out_trade_no] = TradeState(
            out_trade_no=payment.out_trade_no, status=TradeStatus.PENDING)
        order = order_expire(order_id=payment.order_id, now=self.expired(payment.order))
        assert order.status == OrderStatus.CLOSED
        assert reload(payment).status == PaymentStatus.CLOSED
        assert fake_gateway.trades[payment.out_trade_no].status == TradeStatus.CLOSED
        assert Sku.objects.get(code=order.lines.get().sku_code).stock == 5

    def test_an_order_paid_at_the_last_moment_is_paid_not_closed(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        order = order_expire(order_id=payment.order_id, now=self.expired(payment.order))
        assert order.status == OrderStatus.PAID
        assert reload(payment).status == PaymentStatus.SUCCEEDED

    def test_an_unreachable_gateway_leaves_the_order_open_for_the_next_run(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.fail_next["close_payment"] = GatewayUnavailable("timeout")
        order = order_expire(order_id=payment.order_id, now=self.expired(payment.order))
        assert order.status == OrderStatus.PENDING_PAYMENT
        order = order_expire(order_id=payment.order_id, now=self.expired(payment.order))
        assert order.status == OrderStatus.CLOSED

    def test_a_final_refusal_to_close_is_logged_and_the_order_closes_while_the_attempt_is_watched(
            self, fake_gateway):
        payment, _ = start_payment(quantity=2, stock=5)
        fake_gateway.fail_next["close_payment"] = GatewayRejected("ACQ.TRADE_STATUS_ERROR")
        order = order_expire(order_id=payment.order_id, now=self.expired(payment.order))
        assert order.status == OrderStatus.CLOSED
        assert Sku.objects.get(code=order.lines.get().sku_code).stock == 5
        assert reload(payment).is_open
        assert PaymentEvent.objects.filter(payment=payment, reason__contains="refused to close").count() == 1
        # Paid after all: a late payment, flagged for its automatic refund.
        fake_gateway.pay(payment.out_trade_no)
        payment_sync(payment_id=payment.pk, actor=Actor.system("test"))
        assert reload(payment).refund_required == RefundRequired.LATE
        assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED

    def test_an_order_not_yet_expired_is_left_alone(self, fake_gateway):
        payment, _ = start_payment()
        assert order_expire(order_id=payment.order_id).status == OrderStatus.PENDING_PAYMENT
        assert ("close_payment", payment.out_trade_no) not in fake_gateway.calls


LEGAL = [(src, dst) for src, targets in PAYMENT_TRANSITIONS.items() for dst in sorted(targets)]
ILLEGAL = [(src, dst) for src in PaymentStatus.values for dst in PaymentStatus.values
           if dst != src and dst not in PAYMENT_TRANSITIONS[src]]


@pytest.mark.django_db
@pytest.mark.parametrize("src,dst", LEGAL)
def test_legal_payment_transitions_write_one_event(fake_gateway, src, dst):
    payment, _ = start_payment()
    Payment.objects.filter(pk=payment.pk).update(status=src)
    payment = reload(payment)
    events = payment.events.count()
    assert _apply_transition(payment, to_status=dst, actor=SYSTEM) is True
    assert _apply_transition(payment, to_status=dst, actor=SYSTEM) is False
    assert reload(payment).status == dst
    assert payment.events.count() == events + 1


@pytest.mark.django_db
@pytest.mark.parametrize("src,dst", ILLEGAL)
def test_illegal_payment_transitions_raise(fake_gateway, src, dst):
    payment, _ = start_payment()
    Payment.objects.filter(pk=payment.pk).update(status=src)
    with pytest.raises(InvalidPaymentTransition):
        _apply_transition(reload(payment), to_status=dst, actor=SYSTEM)
    assert reload(payment).status == src


@pytest.mark.django_db
def test_the_database_refuses_a_second_accepted_payment(fake_gateway):
    from django.db import IntegrityError

    order = place_order()
    first, _ = start_payment(order=order)
    second, _ = start_payment(order=order)
    Payment.objects.filter(pk=first.pk).update(status=PaymentStatus.SUCCEEDED)
    with pytest.raises(IntegrityError):
        Payment.objects.filter(pk=second.pk).update(status=PaymentStatus.SUCCEEDED)


@pytest.mark.django_db
def test_confirmation_is_sent_once(fake_gateway):
    from payments.services import payment_send_confirmation

    payment, _ = start_payment()
    order_mark_paid(order_id=payment.order_id, actor=SYSTEM)
    assert payment_send_confirmation(payment_id=payment.pk) is True
    assert payment_send_confirmation(payment_id=payment.pk) is False
    assert len(mail.outbox) == 1
