"""The services follow each gateway's declared capabilities and references,
played by the in-memory gateway: no closing where a gateway cannot close,
returns by POST where the gateway posts, trades named by number and time."""
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from orders.models import OrderStatus
from orders.services import order_expire
from payments.gateways.base import ReturnMethod, TradeState, TradeStatus
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentStatus
from payments.services import (
    payment_apply_notification,
    payment_close_at_gateway,
    payment_reference,
    payment_sync,
    payments_query_stale,
)
from shop.actors import Actor
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db

ACTOR = Actor.system("test")


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def past_deadline(payment):
    return payment.expires_at + timedelta(seconds=1)


class TestReferences:
    def test_an_attempt_keeps_the_whole_second_it_was_requested_and_sends_it(self, fake_gateway):
        payment, _ = start_payment()
        assert payment.requested_at.microsecond == 0
        assert abs(payment.requested_at - payment.created_at) < timedelta(seconds=1)
        assert fake_gateway.requests[payment.out_trade_no].requested_at == payment.requested_at

    def test_every_query_names_the_attempt_by_number_and_request_time(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        assert payment_reference(payment).requested_at == payment.requested_at
        # The fake, like UnionPay, knows the trade only under that time.
        Payment.objects.filter(pk=payment.pk).update(requested_at=payment.requested_at + timedelta(seconds=1))
        assert payment_sync(payment_id=payment.pk, actor=ACTOR).status == PaymentStatus.PENDING
        Payment.objects.filter(pk=payment.pk).update(requested_at=payment.requested_at)
        assert payment_sync(payment_id=payment.pk, actor=ACTOR).status == PaymentStatus.SUCCEEDED

    def test_a_notification_naming_another_request_time_is_refused(self, fake_gateway):
        """The same number at another time is another transaction, not ours."""
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        other_time = payment.requested_at - timedelta(days=1)
        raw = fake_gateway.notification(payment.out_trade_no, requested_at=other_time)

        ack = payment_apply_notification(gateway_code="fake", raw=raw)

        assert ack.status == 400
        notification = GatewayNotification.objects.get()
        assert (notification.outcome, notification.verified) == (NotificationOutcome.REJECTED, True)
        assert "requested at" in notification.outcome_detail
        assert reload(payment).status == PaymentStatus.PENDING
        assert reload(payment.order).status == OrderStatus.PENDING_PAYMENT


class TestGatewayThatCannotClose:
    @pytest.fixture(autouse=True)
    def no_closing(self, fake_gateway):
        fake_gateway.with_capabilities(closes_trades=False)

    def test_an_expired_order_is_settled_by_a_query_not_a_close(self, fake_gateway):
        payment, _ = start_payment(quantity=2, stock=5)

        order = order_expire(order_id=payment.order_id, now=past_deadline(payment))

        assert order.status == OrderStatus.CLOSED
        payment = reload(payment)
        assert (payment.status, payment.gateway_status) == (PaymentStatus.CLOSED, TradeStatus.NOT_FOUND)
        assert "deadline" in payment.events.get(to_status=PaymentStatus.CLOSED).reason
        assert [name for name, _ in fake_gateway.calls if name.endswith("_payment")] == [
            "start_payment", "query_payment"]

    def test_an_attempt_still_in_flight_keeps_the_order_open(self, fake_gateway):
        payment, _ = start_payment()
        fake_gateway.trades[payment.out_trade_no] = TradeState(out_trade_no=payment.out_trade_no,
                                                               status=TradeStatus.PENDING)

        order = order_expire(order_id=payment.order_id, now=past_deadline(payment))

        assert order.status == OrderStatus.PENDING_PAYMENT
        assert reload(payment).status == PaymentStatus.PENDING

        fake_gateway.pay(payment.out_trade_no)
        order = order_expire(order_id=payment.order_id, now=past_deadline(payment) + timedelta(minutes=1))
        assert order.status == OrderStatus.PAID
        assert reload(payment).status == PaymentStatus.SUCCEEDED

    def test_before_its_deadline_an_unknown_attempt_stays_open(self, fake_gateway):
        """The shopper may still submit it: nothing is final before the deadline."""
        payment, _ = start_payment()
        payment = payment_close_at_gateway(payment_id=payment.pk, actor=ACTOR, reason="superseded")
        assert payment.status == PaymentStatus.PENDING
        assert ("close_payment", payment.out_trade_no) not in fake_gateway.calls

    def test_the_janitor_closes_an_abandoned_attempt_once_its_deadline_passed(self, fake_gateway):
        payment, _ = start_payment()
        assert payments_query_stale(now=payment.created_at + timedelta(minutes=5)) == 1
        assert reload(payment).status == PaymentStatus.PENDING

        assert payments_query_stale(now=past_deadline(payment) + timedelta(hours=1)) == 1
        assert reload(payment).status == PaymentStatus.CLOSED

    def test_a_payment_after_that_close_is_still_taken_and_flagged_late(self, fake_gateway):
        payment, _ = start_payment()
        order_expire(order_id=payment.order_id, now=past_deadline(payment))
        fake_gateway.pay(payment.out_trade_no)

        payment_apply_notification(gateway_code="fake", raw=fake_gateway.notification(payment.out_trade_no))

        payment = reload(payment)
        assert payment.status == PaymentStatus.SUCCEEDED
        assert payment.refund_required == "paid_after_close"
        assert reload(payment.order).status == OrderStatus.CLOSED

    def test_a_closing_gateway_is_still_asked_to_close(self, fake_gateway):
        fake_gateway.with_capabilities(closes_trades=True)
        payment, _ = start_payment()
        fake_gateway.trades[payment.out_trade_no] = TradeState(out_trade_no=payment.out_trade_no,
                                                               status=TradeStatus.PENDING)
        order = order_expire(order_id=payment.order_id, now=past_deadline(payment))
        assert order.status == OrderStatus.CLOSED
        assert ("close_payment", payment.out_trade_no) in fake_gateway.calls


class TestReturnByPost:
    @pytest.fixture(autouse=True)
    def only_fake(self, settings):
        settings.PAYMENT_GATEWAYS = ["fake"]

    def return_url(self):
        return reverse("payments:return", kwargs={"gateway": "fake"})

    def test_a_gateway_that_posts_the_shopper_back_needs_no_csrf_token(self, fake_gateway):
        fake_gateway.with_capabilities(return_method=ReturnMethod.POST)
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)
        browser = Client(enforce_csrf_checks=True)

        response = browser.post(self.return_url(), fake_gateway.return_params(payment.out_trade_no))

        assert response.status_code == 302
        assert response.url == reverse("payments:result", kwargs={"out_trade_no": payment.out_trade_no})
        payment = reload(payment)
        assert payment.returned_at is not None
        # Paid because the query said so, not because the browser came back.
        assert payment.status == PaymentStatus.SUCCEEDED
        assert ("query_payment", payment.out_trade_no) in fake_gateway.calls

    def test_a_forged_post_is_refused_before_anything_is_believed(self, fake_gateway):
        fake_gateway.with_capabilities(return_method=ReturnMethod.POST)
        payment, _ = start_payment()
        fake_gateway.pay(payment.out_trade_no)

        response = Client(enforce_csrf_checks=True).post(
            self.return_url(), fake_gateway.return_params(payment.out_trade_no, forged=True))

        assert response.status_code == 400
        payment = reload(payment)
        assert (payment.returned_at, payment.status) == (None, PaymentStatus.PENDING)
        assert ("query_payment", payment.out_trade_no) not in fake_gateway.calls

    def test_a_post_to_a_gateway_that_returns_by_get_is_refused(self, fake_gateway):
        payment, _ = start_payment()
        response = Client(enforce_csrf_checks=True).post(self.return_url(),
                                                         fake_gateway.return_params(payment.out_trade_no))
        assert response.status_code == 405
        assert response["Allow"] == "GET"
        assert reload(payment).returned_at is None

    def test_a_get_to_a_gateway_that_returns_by_post_is_refused(self, fake_gateway):
        fake_gateway.with_capabilities(return_method=ReturnMethod.POST)
        payment, _ = start_payment()
        response = Client().get(self.return_url(), fake_gateway.return_params(payment.out_trade_no))
        assert response.status_code == 405
        assert reload(payment).returned_at is None

    def test_a_get_return_still_works(self, fake_gateway):
        payment, _ = start_payment()
        response = Client().get(self.return_url(), fake_gateway.return_params(payment.out_trade_no))
        assert response.status_code == 302
        assert reload(payment).returned_at is not None


class TestStatements:
    def test_the_fake_bill_round_trips_and_a_day_without_one_is_a_clear_refusal(self, fake_gateway):
        from payments.exceptions import NoStatement, NoStatementReason
        from payments.gateways.base import StatementLine, StatementLineKind

        day = timezone.localdate() - timedelta(days=1)
        line = StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no="X1", gateway_trade_no="FAKEX1",
                             amount_minor=100, fee_minor=1)
        fake_gateway.bills[day] = [line]

        (parsed,) = fake_gateway.parse_statement(fake_gateway.fetch_statement(day))
        assert (parsed.kind, parsed.out_trade_no, parsed.amount_minor, parsed.fee_minor) == (
            StatementLineKind.PAYMENT, "X1", 100, 1)
        with pytest.raises(NoStatement) as refused:
            fake_gateway.fetch_statement(day - timedelta(days=1))
        assert refused.value.reason == NoStatementReason.NONE
