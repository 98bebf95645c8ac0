"""UnionPay ACP 5.1.0 end to end: the live shop and the sandbox process, real HTTP,
certificate signatures both ways, the chain checked on every answer and notification."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import orders_close_expired
from payments.gateways import get_gateway
from payments.gateways.base import PayMethod, StatementLineKind
from payments.gateways.unionpay.formats import BEIJING, format_txn_time
from payments.models import (
    GatewayNotification,
    NotificationOutcome,
    Payment,
    PaymentEvent,
    PaymentStatus,
    RefundRequired,
)
from payments.services import payments_query_stale
from refunds.models import Refund, RefundReason, RefundStatus
from tests.e2e.refund_support import apply, approve, poll_until_settled
from tests.e2e.unionpay_flows import (
    notification_applied,
    press_and_return,
    sandbox_trade,
    to_unionpay,
    unionpay_paid_order,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def paid_events(order: Order) -> int:
    return OrderEvent.objects.filter(order=order, to_status=OrderStatus.PAID).count()


def succeeded_transitions(payment: Payment) -> int:
    return PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED).exclude(
        from_status=PaymentStatus.SUCCEEDED).count()


@pytest.mark.parametrize("device, method, channel", [("desktop", PayMethod.PAGE, "07"),
                                                     ("mobile", PayMethod.WAP, "08")])
def test_paying_on_unionpays_page_ends_on_the_success_page(shop, sandbox, device, method, channel):
    order = shop.place_order({"TEA-LJ-250": 1})

    at = to_unionpay(shop, order, device=device)

    payment = at.payment
    assert (payment.gateway, payment.method, payment.status) == ("unionpay", method, PaymentStatus.PENDING)
    assert at.cashier.state == "announced" and "88.00" in at.cashier.html
    trade = sandbox_trade(sandbox, payment)
    assert (trade["channel_type"], trade["txn_time"]) == (channel, format_txn_time(payment.requested_at))
    assert trade["pay_timeout"] == format_txn_time(order.expires_at)

    result = press_and_return(shop, at, "sandbox-pay")

    # The front return (a POST from UnionPay's page) lands on the result page,
    # which shows what the query or the back notification decided.
    assert result.url.endswith(f"/payments/{payment.out_trade_no}/result/")
    assert shop.result_of(result) == "success"
    assert "¥88.00" in result.text
    wait_for(lambda: notification_applied(payment) or GatewayNotification.objects.filter(
        out_trade_no=payment.out_trade_no, outcome=NotificationOutcome.UNCHANGED).exists(),
        what="the back notification")
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_trade_no) == (PaymentStatus.SUCCEEDED,
                                                          sandbox_trade(sandbox, payment)["query_id"])
    assert payment.returned_at is not None
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert succeeded_transitions(payment) == 1 and paid_events(order) == 1
    notification = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    assert notification.verified is True
    assert notification.dedupe_key == f"01:{payment.gateway_trade_no}:00"


@pytest.mark.parametrize("button", ["sandbox-fail", "sandbox-cancel"])
def test_fail_and_cancel_end_on_the_failure_page_and_the_order_can_be_paid_again(shop, sandbox, button):
    order = shop.place_order({"NOTE-A5": 1})
    first = to_unionpay(shop, order)

    result = press_and_return(shop, first, button)

    assert shop.result_of(result) == "failure"
    first.payment.refresh_from_db()
    expected = {"sandbox-fail": PaymentStatus.FAILED, "sandbox-cancel": PaymentStatus.PENDING}[button]
    assert first.payment.status == expected
    assert first.payment.gateway_status in ("failed", "not_found")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT

    again = to_unionpay(shop, order)
    assert again.payment.out_trade_no.endswith("P02")
    assert shop.result_of(press_and_return(shop, again, "sandbox-pay")) == "success"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    if button == "sandbox-cancel":
        # UnionPay cannot close the abandoned attempt: it stays watched until
        # its deadline, then a query that still finds nothing closes it here.
        assert Payment.objects.get(pk=first.payment.pk).status == PaymentStatus.PENDING
        payments_query_stale(now=order.expires_at + timedelta(minutes=1))
        assert Payment.objects.get(pk=first.payment.pk).status == PaymentStatus.CLOSED


def test_a_lost_back_notification_is_healed_by_the_janitors_query(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "drop"})
    order = shop.place_order({"NOTE-A5": 1})
    at = to_unionpay(shop, order)

    sandbox.control("POST", f"unionpay/trades/{at.payment.out_trade_no}/pay")

    sandbox.wait_for(lambda: sandbox.control("GET", f"notifications?out_trade_no={at.payment.out_trade_no}")
                     ["notifications"][0]["status"] == "dropped", what="the drop")
    assert Payment.objects.get(pk=at.payment.pk).status == PaymentStatus.PENDING
    assert payments_query_stale(now=timezone.now() + timedelta(minutes=5)) == 1
    payment = Payment.objects.get(pk=at.payment.pk)
    assert (payment.status, payment.gateway_trade_no) == (PaymentStatus.SUCCEEDED,
                                                          sandbox_trade(sandbox, payment)["query_id"])
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert not GatewayNotification.objects.exists()


def test_an_attempt_in_flight_at_expiry_keeps_the_order_open_until_it_ends(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    at = to_unionpay(shop, order)
    sandbox.control("POST", f"unionpay/trades/{at.payment.out_trade_no}/submit")

    assert orders_close_expired(now=order.expires_at + timedelta(seconds=1)) == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT

    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "drop"})
    sandbox.control("POST", f"unionpay/trades/{at.payment.out_trade_no}/pay")
    assert orders_close_expired(now=order.expires_at + timedelta(minutes=2)) == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_a_payment_after_expiry_is_refunded_automatically(shop, sandbox):
    order = shop.place_order({"TEA-LJ-250": 1})
    at = to_unionpay(shop, order)

    # No close call exists: at expiry the query finds nothing, so the attempt
    # and the order close in the shop.
    assert orders_close_expired(now=order.expires_at + timedelta(seconds=1)) == 1
    payment = Payment.objects.get(pk=at.payment.pk)
    assert (payment.status, payment.gateway_status) == (PaymentStatus.CLOSED, "not_found")

    # The money comes anyway (a bank payment completing late).
    sandbox.control("POST", f"unionpay/trades/{payment.out_trade_no}/pay")
    # The notification's commit starts the automatic refund, which is then
    # submitted: accepted by UnionPay, so processing.
    wait_for(lambda: Refund.objects.filter(payment=payment, status=RefundStatus.PROCESSING).exists(),
             what="the automatic refund, submitted")

    payment.refresh_from_db()
    assert (payment.status, payment.refund_required) == (PaymentStatus.SUCCEEDED, RefundRequired.LATE)
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED
    refund = Refund.objects.get(payment=payment)
    assert (refund.reason, refund.automatic, refund.amount_minor) == (RefundReason.PAID_AFTER_CLOSE, True, 8800)
    assert refund.status == RefundStatus.PROCESSING
    poll_until_settled(refund)
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    trade = sandbox_trade(sandbox, payment)
    assert (trade["refunded_minor"], trade["refund_count"]) == (8800, 1)


def test_hostile_notifications_from_the_sandbox_are_refused_and_the_real_one_pays(shop, sandbox):
    variants = ["bad_signature", "impostor_chain", "wrong_cn", "expired_certificate", "tampered_amount", "malformed",
                "signed_wrong_amount", "wrong_merchant", "wrong_txn_time", "unknown_order"]
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "forge", "variants": variants})
    order = shop.place_order({"NOTE-A5": 1})
    at = to_unionpay(shop, order)

    sandbox.control("POST", f"unionpay/trades/{at.payment.out_trade_no}/pay")

    def delivered():
        (notification,) = sandbox.control("GET", f"notifications?out_trade_no={at.payment.out_trade_no}")[
            "notifications"]
        deliveries = notification["deliveries"]
        return deliveries if len(deliveries) == len(variants) + 1 else None

    deliveries = sandbox.wait_for(delivered, what="the forgeries and the real notification")
    answers = {delivery["variant"]: delivery["status_code"] for delivery in deliveries}
    assert answers == {**{variant: 400 for variant in variants}, "real": 200}
    rejected = GatewayNotification.objects.filter(outcome=NotificationOutcome.REJECTED)
    assert rejected.count() == len(variants)
    # The lies that are validly signed were verified and still refused on our records.
    assert rejected.filter(verified=True).count() == 3
    payment = Payment.objects.get(pk=at.payment.pk)
    assert payment.status == PaymentStatus.SUCCEEDED and succeeded_transitions(payment) == 1
    assert paid_events(order) == 1


def test_thirty_parallel_copies_make_one_transition_and_all_get_200(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "duplicate", "copies": 30})
    order = shop.place_order({"NOTE-A5": 1})
    at = to_unionpay(shop, order)

    sandbox.control("POST", f"unionpay/trades/{at.payment.out_trade_no}/pay")

    def delivered():
        (notification,) = sandbox.control("GET", f"notifications?out_trade_no={at.payment.out_trade_no}")[
            "notifications"]
        return notification if len(notification["deliveries"]) == 30 else None

    notification = sandbox.wait_for(delivered, timeout=30, what="thirty deliveries")
    assert [(d["status_code"], d["body"]) for d in notification["deliveries"]] == [(200, "ok")] * 30
    payment = Payment.objects.get(pk=at.payment.pk)
    assert succeeded_transitions(payment) == 1 and paid_events(order) == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert (outcomes.count(NotificationOutcome.APPLIED), outcomes.count(NotificationOutcome.DUPLICATE)) == (1, 29)


def test_the_settlement_file_is_fetched_parsed_and_checked_against_its_totals(shop, sandbox, settings):
    # The sandbox clock at noon (Beijing), far from the 23:00 cut-off, up to
    # half a day from the real one: the order stays payable that long.
    settings.ORDER_PAYMENT_TIMEOUT_MINUTES = 2 * 24 * 60
    now = timezone.now().astimezone(BEIJING)
    noon = (now.replace(hour=12, minute=0, second=0, microsecond=0) - now).total_seconds()
    sandbox.control("POST", "settings", {"clock_offset_seconds": noon})
    order, payment = unionpay_paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = approve(apply(order, 3000))
    poll_until_settled(refund)
    refund.refresh_from_db()
    day = (now + timedelta(seconds=noon)).date()
    gateway = get_gateway("unionpay")

    sandbox.control("POST", "settings", {"clock_offset_seconds": noon + 24 * 3600})
    lines = list(gateway.parse_statement(gateway.fetch_statement(day)))

    by_kind = {line.kind: line for line in lines}
    assert len(lines) == 2
    paid_line, refund_line = by_kind[StatementLineKind.PAYMENT], by_kind[StatementLineKind.REFUND]
    assert (paid_line.out_trade_no, paid_line.gateway_trade_no, paid_line.amount_minor) == (
        payment.out_trade_no, payment.gateway_trade_no, payment.amount_minor)
    assert (refund_line.out_refund_no, refund_line.gateway_trade_no, refund_line.gateway_refund_id,
            refund_line.amount_minor) == (refund.out_refund_no, payment.gateway_trade_no, refund.gateway_refund_id,
                                          3000)
    assert (paid_line.fee_minor, refund_line.fee_minor) == (53, -18)
