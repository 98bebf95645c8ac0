"""Refund services against the in-memory gateway."""
import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services import order_close, order_transition
from payments.exceptions import GatewayRejected, GatewayUnavailable
from payments.gateways.base import GatewayRefundStatus, PayMethod
from payments.models import Payment, PaymentStatus, RefundRequired
from payments.services import payment_apply_notification
from refunds.exceptions import (
    InvalidRefundAmount,
    RefundNotAllowed,
    RejectNoteRequired,
    ReviewNotAllowed,
    SecondApproverRequired,
)
from refunds.invariants import money_invariants_check
from refunds.models import InvariantViolation, Refund, RefundBalance, RefundStatus
from refunds.services import (
    refund_approve,
    refund_create_automatic,
    refund_reject,
    refund_retry,
    refund_settle_abnormal,
    refund_submit,
    refunds_poll_processing,
)
from shop.actors import Actor
from tests.orders.factories import place_order
from tests.payments.factories import start_payment
from tests.refunds.factories import apply_for_refund, paid_order, reviewer
from tests.shop.factories import UserFactory

# Real commits: approvals enqueue the gateway call on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


def reload(obj):
    return type(obj).objects.get(pk=obj.pk)


def balance(payment) -> RefundBalance:
    return RefundBalance.objects.get(payment=payment)


class TestApplying:
    def test_an_application_marks_the_order_refund_pending(self):
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000, reason="damaged", reason_text="cracked lid")
        assert (refund.status, refund.amount_minor, refund.payment) == (RefundStatus.REQUESTED, 4000, payment)
        assert refund.out_refund_no == f"{order.order_no}R01"
        assert reload(order).status == OrderStatus.REFUND_PENDING
        assert refund.events.get().reason == "applied: damaged"

    @pytest.mark.parametrize("amount", [0, -1, 10001, True, 1.5])
    def test_bad_amounts_are_refused(self, amount):
        order, _ = paid_order()
        with pytest.raises(InvalidRefundAmount):
            apply_for_refund(order, amount)
        assert not Refund.objects.exists()
        assert reload(order).status == OrderStatus.PAID

    def test_applications_never_ask_for_more_than_was_paid(self):
        order, _ = paid_order()
        apply_for_refund(order, 6000)
        with pytest.raises(InvalidRefundAmount):
            apply_for_refund(order, 4001)
        assert apply_for_refund(order, 4000).amount_minor == 4000

    def test_a_double_submit_applies_once(self):
        order, _ = paid_order()
        token = uuid.uuid4()
        first = apply_for_refund(order, 1000, token=token)
        second = apply_for_refund(order, 1000, token=token)
        assert first == second
        assert Refund.objects.count() == 1

    def test_unpaid_and_closed_orders_cannot_be_refunded(self):
        unpaid = place_order()
        with pytest.raises(RefundNotAllowed):
            apply_for_refund(unpaid, 100)
        closed = place_order()
        order_close(order_id=closed.pk, actor=Actor.system("test"), reason="timeout")
        with pytest.raises(RefundNotAllowed):
            apply_for_refund(reload(closed), 100)

    def test_someone_elses_order_is_refused(self):
        order, _ = paid_order()
        with pytest.raises(RefundNotAllowed):
            apply_for_refund(order, 100, shopper=UserFactory(username="mallory"))


class TestReview:
    def test_approval_refunds_at_the_gateway_and_the_order_follows(self, gateway):
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund = refund_approve(refund_id=refund.pk, reviewer=reviewer())

        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert refund.reviewed_by.username == "reviewer" and refund.reviewed_at is not None
        assert gateway.refunds_executed == {refund.out_refund_no: 4000}
        assert (balance(payment).reserved_minor, balance(payment).refunded_minor) == (4000, 4000)
        assert reload(order).status == OrderStatus.PARTIALLY_REFUNDED
        assert [e.to_status for e in refund.events.all()] == ["requested", "approved", "processing", "succeeded"]
        subjects = [message.subject for message in mail.outbox if "refund" in message.subject]
        assert subjects == [f"Your refund of ¥40.00 for order {order.order_no} is approved",
                            f"¥40.00 has been refunded for order {order.order_no}"]

    def test_refunding_everything_marks_the_order_refunded(self):
        order, _ = paid_order()
        first = apply_for_refund(order, 3000)
        refund_approve(refund_id=first.pk, reviewer=reviewer())
        second = apply_for_refund(reload(order), 7000)
        refund_approve(refund_id=second.pk, reviewer=reviewer("reviewer2"))
        assert reload(order).status == OrderStatus.REFUNDED

    def test_a_shipped_order_whose_refund_is_rejected_is_still_shipped(self):
        order, _ = paid_order()
        order_transition(order_id=order.pk, to_status=OrderStatus.SHIPPED, actor=Actor.system("warehouse"),
                         reason="handed to the courier")
        refund = apply_for_refund(reload(order), 4000)
        assert reload(order).status == OrderStatus.REFUND_PENDING
        refund_reject(refund_id=refund.pk, reviewer=reviewer(), note="the parcel is on its way")
        assert reload(order).status == OrderStatus.SHIPPED

    def test_rejection_needs_a_note_and_returns_the_order_to_paid(self):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        with pytest.raises(RejectNoteRequired):
            refund_reject(refund_id=refund.pk, reviewer=reviewer(), note="  ")
        assert reload(refund).status == RefundStatus.REQUESTED

        refund_reject(refund_id=refund.pk, reviewer=reviewer("other"), note="used item")
        refund = reload(refund)
        assert (refund.status, refund.review_note, refund.reviewed_by.username) == (
            RefundStatus.REJECTED, "used item", "other")
        assert reload(order).status == OrderStatus.PAID
        assert any("not approved" in message.subject for message in mail.outbox)

    @pytest.mark.parametrize("staff", [True, False])
    def test_users_without_the_review_permission_cannot_decide(self, gateway, staff):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        user = reviewer("clerk", can_review=False) if staff else order.shopper
        with pytest.raises(ReviewNotAllowed):
            refund_approve(refund_id=refund.pk, reviewer=user)
        with pytest.raises(ReviewNotAllowed):
            refund_reject(refund_id=refund.pk, reviewer=user, note="no")
        assert reload(refund).status == RefundStatus.REQUESTED
        assert gateway.refunds_executed == {}

    def test_large_refunds_need_two_different_reviewers(self, gateway, settings):
        settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
        order, _ = paid_order()
        refund = apply_for_refund(order, 6000)
        maker, checker = reviewer("maker"), reviewer("checker")

        refund_approve(refund_id=refund.pk, reviewer=maker)
        assert reload(refund).status == RefundStatus.REQUESTED
        with pytest.raises(SecondApproverRequired):
            refund_approve(refund_id=refund.pk, reviewer=maker)
        assert gateway.refunds_executed == {}

        refund_approve(refund_id=refund.pk, reviewer=checker)
        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert [a.reviewer.username for a in refund.approvals.all()] == ["maker", "checker"]

    def test_small_refunds_need_one_approval(self, settings):
        settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
        order, _ = paid_order()
        assert apply_for_refund(order, 5000).approvals_required == 1


class TestExecution:
    def test_processing_refunds_are_polled_until_settled(self, gateway, settings):
        gateway.refund_outcome = GatewayRefundStatus.PROCESSING
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        assert reload(refund).status == RefundStatus.PROCESSING
        assert reload(order).status == OrderStatus.REFUND_PENDING

        assert refunds_poll_processing(now=timezone.now() + timedelta(hours=1)) == 1

        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert reload(order).status == OrderStatus.PARTIALLY_REFUNDED
        assert balance(payment).refunded_minor == 4000

    def test_a_closed_refund_fails_releases_the_money_and_can_be_retried(self, gateway):
        gateway.refund_outcome = GatewayRefundStatus.PROCESSING
        gateway.refund_settles_as = GatewayRefundStatus.CLOSED
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        refunds_poll_processing(now=timezone.now() + timedelta(hours=1))

        refund = reload(refund)
        assert refund.status == RefundStatus.FAILED
        assert balance(payment).reserved_minor == 0
        assert reload(order).status == OrderStatus.PAID

        closed_no = refund.out_refund_no
        gateway.refund_outcome = GatewayRefundStatus.SUCCEEDED
        refund_retry(refund_id=refund.pk, staff=reviewer("retrier"))
        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        # The gateway ended that number for good (it would answer CLOSED
        # again): the retry goes out under a new one.
        assert refund.out_refund_no == f"{closed_no}T2"
        assert list(gateway.refunds_executed) == [closed_no, refund.out_refund_no]

    def test_a_final_refusal_fails_the_refund(self, gateway):
        gateway.fail_next["refund"] = GatewayRejected("refund window over", code="40004",
                                                      sub_code="ACQ.TRADE_HAS_FINISHED")
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        refund = reload(refund)
        assert refund.status == RefundStatus.FAILED
        assert "ACQ.TRADE_HAS_FINISHED" in refund.last_error
        assert balance(payment).reserved_minor == 0

        refund_retry(refund_id=refund.pk, staff=reviewer("retrier"))
        refund = reload(refund)
        assert refund.status == RefundStatus.SUCCEEDED
        assert list(gateway.refunds_executed) == [refund.out_refund_no]  # refused, not closed: the same number

    def test_an_abnormal_refund_waits_for_staff(self, gateway):
        gateway.refund_outcome = GatewayRefundStatus.ABNORMAL
        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        assert reload(refund).status == RefundStatus.ABNORMAL
        assert reload(order).status == OrderStatus.REFUND_PENDING

        with pytest.raises(RejectNoteRequired):
            refund_settle_abnormal(refund_id=refund.pk, staff=reviewer("fin"), succeeded=True, note="")
        refund_settle_abnormal(refund_id=refund.pk, staff=reviewer("fin2"), succeeded=True,
                               note="paid to the shopper's new card")
        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert balance(payment).refunded_minor == 4000

    def test_a_timeout_keeps_the_refund_processing_and_the_retry_uses_the_same_number(self, gateway):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        gateway.fail_next["refund"] = GatewayUnavailable("read timeout")
        with pytest.raises(GatewayUnavailable):
            # The task would retry; call the service directly to see one attempt.
            refund_approve_without_submit(refund)
            refund_submit(refund_id=refund.pk)
        assert reload(refund).status == RefundStatus.PROCESSING
        refund_submit(refund_id=refund.pk)
        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert [ref for name, ref in gateway.calls if name == "refund"] == [refund.out_refund_no] * 2
        assert len(gateway.refunds_executed) == 1

    def test_a_crash_after_the_gateway_call_never_refunds_twice(self, gateway, monkeypatch):
        """The worker dies after the gateway refunded but before we recorded it."""
        import refunds.services.execution as services

        order, payment = paid_order()
        refund = apply_for_refund(order, 4000)
        refund_approve_without_submit(refund)
        real_apply = services.refund_apply_state

        def crash(**kwargs):
            raise SystemExit("worker killed")

        monkeypatch.setattr(services, "refund_apply_state", crash)
        with pytest.raises(SystemExit):
            refund_submit(refund_id=refund.pk)
        assert reload(refund).status == RefundStatus.PROCESSING

        monkeypatch.setattr(services, "refund_apply_state", real_apply)
        refund_submit(refund_id=refund.pk)  # the redelivered task

        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert gateway.refunds_executed == {refund.out_refund_no: 4000}
        assert balance(payment).refunded_minor == 4000


def refund_approve_without_submit(refund):
    """Approve, but keep the on-commit submit from running (as if the worker had not picked it up)."""
    from unittest import mock

    with mock.patch("refunds.services.review.enqueue_submit"):
        refund_approve(refund_id=refund.pk, reviewer=reviewer(f"r{refund.pk}"))


class TestAutomatic:
    def test_a_duplicate_payment_is_refunded_without_review(self, gateway):
        order = place_order(price_minor=5000)
        first, _ = start_payment(order=order)
        second, _ = start_payment(order=order, method=PayMethod.PAGE)
        for payment in (first, second):
            gateway.pay(payment.out_trade_no)
            payment_apply_notification(gateway_code="fake", raw=gateway.notification(payment.out_trade_no))

        refund = Refund.objects.get()
        assert (refund.payment, refund.automatic, refund.reason) == (reload(second), True,
                                                                     RefundRequired.DUPLICATE)
        assert refund.status == RefundStatus.SUCCEEDED
        assert gateway.refunds_executed == {refund.out_refund_no: 5000}
        assert reload(order).status == OrderStatus.PAID
        assert refund_create_automatic(payment_id=second.pk) == refund  # once only

    def test_a_late_payment_is_refunded_and_the_order_stays_closed(self, gateway):
        payment, _ = start_payment()
        order_close(order_id=payment.order_id, actor=Actor.system("test"), reason="timeout")
        gateway.pay(payment.out_trade_no)
        payment_apply_notification(gateway_code="fake", raw=gateway.notification(payment.out_trade_no))

        refund = Refund.objects.get()
        assert (refund.reason, refund.status) == (RefundRequired.LATE, RefundStatus.SUCCEEDED)
        assert reload(payment.order).status == OrderStatus.CLOSED

    def test_the_sweep_starts_refunds_whose_trigger_was_lost(self, gateway):
        from refunds.services import refunds_create_automatic_pending

        order, payment = paid_order()
        other, _ = start_payment(order=place_order())
        Payment.objects.filter(pk=other.pk).update(status=PaymentStatus.SUCCEEDED,
                                                   refund_required=RefundRequired.LATE)
        assert refunds_create_automatic_pending() == 1
        assert Refund.objects.get().payment_id == other.pk


class TestInvariants:
    def test_a_clean_shop_has_no_violations(self):
        order, _ = paid_order()
        refund_approve(refund_id=apply_for_refund(order, 1000).pk, reviewer=reviewer())
        assert money_invariants_check() == []
        assert not InvariantViolation.objects.exists()

    def test_a_broken_invariant_raises_an_alarm_until_fixed(self, caplog):
        order, payment = paid_order()
        refund = apply_for_refund(order, 1000)
        refund_approve(refund_id=refund.pk, reviewer=reviewer())
        # Something bypassed the services (a manual SQL fix, a bug).
        Refund.objects.filter(pk=refund.pk).update(amount_minor=20000)

        found = money_invariants_check()

        assert {v.kind for v in found} == {"refunds_exceed_paid", "balance_out_of_step"}
        assert InvariantViolation.objects.filter(resolved_at__isnull=True).count() == 2
        assert "money invariant violated" in caplog.text

        Refund.objects.filter(pk=refund.pk).update(amount_minor=1000)
        assert money_invariants_check() == []
        assert not InvariantViolation.objects.filter(resolved_at__isnull=True).exists()

    def test_the_database_refuses_refunds_above_the_payment(self):
        from django.db import IntegrityError

        _, payment = paid_order()
        RefundBalance.objects.create(payment=payment, paid_minor=payment.amount_minor)
        with pytest.raises(IntegrityError):
            RefundBalance.objects.filter(payment=payment).update(reserved_minor=payment.amount_minor + 1)


def test_order_without_payment_has_nothing_refundable():
    order = place_order()
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID)
    with pytest.raises(RefundNotAllowed):
        apply_for_refund(reload(order), 100)


class TestInProcessTasks:
    """`make run` without Redis runs tasks in the request that enqueued them."""

    def test_an_unreachable_gateway_is_left_to_the_poller_not_retried_inside_the_request(self, gateway, settings):
        settings.CELERY_TASK_EAGER_PROPAGATES = False
        settings.TASK_EAGER_RETRY_INLINE = False
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        gateway.fail_next["refund"] = GatewayUnavailable("read timeout")

        refund_approve(refund_id=refund.pk, reviewer=reviewer())  # the approval's task runs on commit

        refund = reload(refund)
        assert refund.status == RefundStatus.PROCESSING
        assert refund.next_poll_at is not None
        assert [name for name, _ in gateway.calls].count("refund") == 1
        assert refunds_poll_processing(now=refund.next_poll_at + timedelta(seconds=1)) == 1
        assert reload(refund).status == RefundStatus.SUCCEEDED
        assert len(gateway.refunds_executed) == 1


class TestWhatTheGatewayIsSent:
    def test_the_reason_is_fixed_text_stored_on_the_refund_whatever_language_sends_it(self, gateway, settings):
        from django.utils import translation

        from refunds.services.execution import _refund_request

        settings.LANGUAGE_CODE = "zh-hans"
        order, _ = paid_order()
        with translation.override("en"):
            refund = apply_for_refund(order, 4000, reason="damaged")
        assert refund.gateway_reason == "商品到货时已损坏"
        sent = {}
        for language in ("en", "zh-hans"):
            with translation.override(language):
                sent[language] = _refund_request(reload(refund)).reason
        assert sent == {"en": "商品到货时已损坏", "zh-hans": "商品到货时已损坏"}


class TestPollingSurvivesOneBadRefund:
    def test_a_refund_whose_gateway_is_no_longer_configured_does_not_stop_the_sweep(self, gateway, settings):
        gateway.refund_outcome = GatewayRefundStatus.PROCESSING
        first_order, first_payment = paid_order()
        second_order, _ = paid_order()
        stranded = apply_for_refund(first_order, 4000)
        healthy = apply_for_refund(second_order, 4000)
        refund_approve(refund_id=stranded.pk, reviewer=reviewer("a"))
        refund_approve(refund_id=healthy.pk, reviewer=reviewer("b"))
        # The first refund's gateway disappears from the configuration.
        Payment.objects.filter(pk=first_payment.pk).update(gateway="retired")
        Refund.objects.filter(pk=stranded.pk).update(next_poll_at=timezone.now() - timedelta(hours=2))

        assert refunds_poll_processing(now=timezone.now() + timedelta(hours=1)) == 2

        assert reload(healthy).status == RefundStatus.SUCCEEDED
        stranded = reload(stranded)
        assert stranded.status == RefundStatus.PROCESSING
        assert "poll failed" in stranded.last_error and "retired" in stranded.last_error
