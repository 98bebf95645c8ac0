"""Refunds follow the gateway's capabilities and references, played by the
in-memory gateway: submission times kept across retries, failed numbers
renumbered where the gateway keeps them, refund notifications through the
inbox (and none where a gateway sends none)."""
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import OrderStatus
from payments.exceptions import GatewayRejected, GatewayUnavailable
from payments.gateways.base import GatewayRefundStatus
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome
from refunds.models import RefundEvent, RefundStatus
from refunds.services import refund_apply_notification, refund_approve, refund_retry, refund_submit
from refunds.services.execution import refund_reference
from tests.concurrency import run_in_parallel
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def processing_refund(gateway, amount_minor=4000):
    gateway.refund_outcome = GatewayRefundStatus.PROCESSING
    order, payment = paid_order()
    refund = apply_for_refund(order, amount_minor)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    refund = reload(refund)
    assert refund.status == RefundStatus.PROCESSING
    return order, payment, refund


class TestSubmissionTime:
    def test_the_first_submission_fixes_the_time_every_retry_sends(self, gateway):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        with mock.patch("refunds.services.review.enqueue_submit"):
            refund_approve(refund_id=refund.pk, reviewer=reviewer())
        assert reload(refund).submitted_at is None
        gateway.fail_next["refund"] = GatewayUnavailable("read timeout")
        with pytest.raises(GatewayUnavailable):
            refund_submit(refund_id=refund.pk)
        first = reload(refund).submitted_at
        assert first is not None and first.microsecond == 0

        refund_submit(refund_id=refund.pk)

        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert refund.submitted_at == first
        assert gateway.refund_times[refund.out_refund_no] == first
        assert refund_reference(refund).submitted_at == first

    def test_a_poll_names_the_refund_by_number_and_submission_time(self, gateway):
        _, payment, refund = processing_refund(gateway)
        reference = refund_reference(refund)
        assert (reference.out_refund_no, reference.submitted_at) == (refund.out_refund_no, refund.submitted_at)
        assert reference.payment.out_trade_no == payment.out_trade_no
        assert reference.payment.gateway_trade_no == payment.gateway_trade_no
        assert gateway.query_refund(reference).status == GatewayRefundStatus.SUCCEEDED


class TestRenumberingAfterFailure:
    def fail(self, gateway):
        gateway.fail_next["refund"] = GatewayRejected("declined by the issuer", code="01")
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        refund = reload(refund)
        assert refund.status == RefundStatus.FAILED
        return order, refund

    def test_where_numbers_are_kept_after_failure_a_retry_gets_a_new_number_and_time(self, gateway):
        gateway.with_capabilities(refund_number_reusable_after_failure=False)
        order, refund = self.fail(gateway)
        failed_no, failed_at = refund.out_refund_no, refund.submitted_at

        refund_retry(refund_id=refund.pk, staff=reviewer("retrier"))

        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert refund.out_refund_no == f"{failed_no}T2"
        assert refund.submitted_at is not None and refund.submitted_at >= failed_at
        assert [ref for name, ref in gateway.calls if name == "refund"] == [failed_no, refund.out_refund_no]
        event = RefundEvent.objects.get(refund=refund, reason="retry by staff")
        assert event.detail == {"closed_out_refund_no": failed_no}
        assert reload(order).status == OrderStatus.PARTIALLY_REFUNDED

    def test_where_numbers_are_reusable_a_retry_sends_the_same_one(self, gateway):
        _, refund = self.fail(gateway)
        failed_no = refund.out_refund_no

        refund_retry(refund_id=refund.pk, staff=reviewer("retrier"))

        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert refund.out_refund_no == failed_no
        assert [ref for name, ref in gateway.calls if name == "refund"] == [failed_no, failed_no]


class TestRefundNotifications:
    def notify_url(self, gateway_code="fake"):
        return reverse("refunds:notify", kwargs={"gateway": gateway_code})

    def post(self, raw, gateway_code="fake"):
        return Client().post(self.notify_url(gateway_code), data=raw.body, content_type="application/json",
                             HTTP_X_FAKE_SIGNATURE=raw.header("X-Fake-Signature"))

    def test_a_refund_notification_settles_the_refund_once(self, gateway):
        order, _, refund = processing_refund(gateway, amount_minor=10000)

        response = self.post(gateway.refund_notification(refund.out_refund_no))

        assert (response.status_code, response.content) == (200, b"ok")
        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert reload(order).status == OrderStatus.REFUNDED
        notification = GatewayNotification.objects.get(kind=NotificationKind.REFUND)
        assert notification.outcome == NotificationOutcome.APPLIED
        assert RefundEvent.objects.get(refund=refund, to_status=RefundStatus.SUCCEEDED).notification == notification

    def test_thirty_copies_at_once_settle_it_once(self, gateway):
        _, _, refund = processing_refund(gateway)
        raw = gateway.refund_notification(refund.out_refund_no)

        results = run_in_parallel(lambda i: refund_apply_notification(gateway_code="fake", raw=raw).status, 30)

        assert results == [("ok", 200)] * 30
        assert RefundEvent.objects.filter(refund=refund, to_status=RefundStatus.SUCCEEDED).count() == 1
        outcomes = sorted(GatewayNotification.objects.filter(kind=NotificationKind.REFUND)
                          .values_list("outcome", flat=True))
        assert outcomes.count(NotificationOutcome.APPLIED) == 1
        assert outcomes.count(NotificationOutcome.DUPLICATE) == 29

    @pytest.mark.parametrize("tamper, detail", [
        ({"forged": True}, "bad signature"),
        ({"amount_minor": 1}, "amount 1"),
        ({"out_trade_no": "SOMEONEELSEP01"}, "not SOMEONEELSEP01"),
    ])
    def test_lies_are_refused_and_change_nothing(self, gateway, tamper, detail):
        _, _, refund = processing_refund(gateway)

        ack = refund_apply_notification(gateway_code="fake", raw=gateway.refund_notification(
            refund.out_refund_no, **tamper))

        assert ack.status == 400
        notification = GatewayNotification.objects.get(kind=NotificationKind.REFUND)
        assert notification.outcome == NotificationOutcome.REJECTED
        assert detail in notification.outcome_detail
        assert reload(refund).status == RefundStatus.PROCESSING

    def test_a_notification_of_the_number_at_another_time_is_refused(self, gateway):
        _, _, refund = processing_refund(gateway)
        gateway.refund_times[refund.out_refund_no] = refund.submitted_at - timedelta(hours=1)

        ack = refund_apply_notification(gateway_code="fake",
                                        raw=gateway.refund_notification(refund.out_refund_no))

        assert ack.status == 400
        assert "submitted at" in GatewayNotification.objects.get(kind=NotificationKind.REFUND).outcome_detail
        assert reload(refund).status == RefundStatus.PROCESSING

    def test_a_gateway_that_sends_no_refund_notifications_has_no_endpoint(self, gateway):
        gateway.with_capabilities(notifies_refunds=False)
        _, _, refund = processing_refund(gateway)

        response = self.post(gateway.refund_notification(refund.out_refund_no))

        assert response.status_code == 404
        assert not GatewayNotification.objects.filter(kind=NotificationKind.REFUND).exists()
        assert reload(refund).status == RefundStatus.PROCESSING

    def test_a_refund_named_only_by_the_gateways_trade_number_is_applied(self, gateway):
        """UnionPay names the payment by its own number (origQryId), not ours."""
        _, payment, refund = processing_refund(gateway)
        raw = gateway.refund_notification(refund.out_refund_no, out_trade_no="",
                                          gateway_trade_no=payment.gateway_trade_no)

        assert refund_apply_notification(gateway_code="fake", raw=raw).status == 200

        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert GatewayNotification.objects.get(kind=NotificationKind.REFUND).out_trade_no == payment.out_trade_no

    @pytest.mark.parametrize("gateway_trade_no, detail", [("FAKEOTHER", "not 'FAKEOTHER'"),
                                                          ("", "names no payment")])
    def test_a_refund_naming_another_or_no_payment_is_refused(self, gateway, gateway_trade_no, detail):
        _, _, refund = processing_refund(gateway)
        raw = gateway.refund_notification(refund.out_refund_no, out_trade_no="", gateway_trade_no=gateway_trade_no)

        assert refund_apply_notification(gateway_code="fake", raw=raw).status == 400

        assert detail in GatewayNotification.objects.get(kind=NotificationKind.REFUND).outcome_detail
        assert reload(refund).status == RefundStatus.PROCESSING
