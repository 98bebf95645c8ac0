"""Alipay end to end: the live shop and the sandbox process, real HTTP, real RSA2."""
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from orders.models import Order, OrderEvent, OrderStatus
from orders.services import order_close, orders_close_expired
from payments.gateways import get_gateway
from payments.gateways.base import PaymentRequest, PayMethod
from payments.models import (
    GatewayNotification,
    NotificationOutcome,
    Payment,
    PaymentEvent,
    PaymentStatus,
    RefundRequired,
)
from payments.services import payments_query_stale
from refunds.models import Refund, RefundStatus
from shop.actors import Actor
from shop.models import Sku
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def paid_events(order: Order) -> int:
    return OrderEvent.objects.filter(order=order, to_status=OrderStatus.PAID).count()


def notifications_settled(payment: Payment, count: int = 1):
    """The shop has processed `count` notifications for this payment."""
    done = GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no).exclude(
        outcome=NotificationOutcome.RECEIVED)
    return done.count() >= count


def test_page_pay_from_checkout_to_success_page(shop, sandbox):
    order = shop.place_order({"TEA-LJ-250": 2})

    redirect_page = shop.choose(order, "alipay:page")
    cashier = shop.sandbox.arrive(shop.submit_gateway_form(redirect_page))
    assert "176.00" in cashier.html
    back = shop.sandbox.press(cashier, "sandbox-pay")
    result = shop.http.get(back.headers["Location"], timeout=20)

    assert shop.result_of(result) == "success"
    assert "¥176.00" in result.text
    payment = Payment.objects.get(order=order)
    assert payment.method == PayMethod.PAGE
    assert payment.status == PaymentStatus.SUCCEEDED
    assert len(payment.gateway_trade_no) == 28
    wait_for(lambda: notifications_settled(payment), what="the notification")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1
    assert GatewayNotification.objects.get(out_trade_no=payment.out_trade_no).verified is True


def test_wap_pay_is_used_for_a_phone(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    redirect_page = shop.choose(order, "alipay:wap", device="mobile")
    cashier = shop.sandbox.arrive(shop.submit_gateway_form(redirect_page))
    back = shop.sandbox.press(cashier, "sandbox-pay")
    assert shop.result_of(shop.http.get(back.headers["Location"], timeout=20)) == "success"
    assert Payment.objects.get(order=order).method == PayMethod.WAP


def test_qr_payment_moves_on_by_itself_when_paid(shop, sandbox):
    order = shop.place_order({"CUP-WHITE": 3})
    qr_page = shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    assert qr_page.url.endswith(f"/payments/{payment.out_trade_no}/qr/")
    assert shop.get(f"/payments/{payment.out_trade_no}/status/").json()["done"] is False

    scan_page = shop.sandbox.open(shop.qr_content(qr_page))
    assert "119.70" in scan_page.html
    shop.sandbox.press(scan_page, "sandbox-pay")

    status = shop.wait_until_done(payment.out_trade_no)
    assert status["payment"] == "succeeded" and status["order"] == "paid"
    assert shop.result_of(shop.get(status["result_url"])) == "success"
    wait_for(lambda: notifications_settled(payment), what="the notification")
    assert paid_events(order) == 1


def test_cancel_on_the_payment_page_shows_the_failure_page(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    cashier = shop.sandbox.arrive(shop.submit_gateway_form(shop.choose(order, "alipay:page")))
    back = shop.sandbox.press(cashier, "sandbox-cancel")
    # No quit_url for page.pay: the sandbox sends the shopper back, unpaid.
    result = shop.http.get(back.headers["Location"], timeout=20)
    assert shop.result_of(result) == "failure"
    assert 'data-testid="pay-again"' in result.text
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT


def test_lost_notification_is_healed_by_the_janitor(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "alipay.notify", "mode": "drop"})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/pay")
    sandbox.wait_for(lambda: sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}")
                     ["notifications"][0]["status"] == "dropped", what="the drop")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT

    assert payments_query_stale(now=timezone.now() + timedelta(minutes=5)) == 1

    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert not GatewayNotification.objects.exists()


def test_unpaid_order_past_its_timeout_is_closed_here_and_at_the_sandbox(shop, sandbox):
    stock_before = Sku.objects.get(code="SCARF-RED").stock
    order = shop.place_order({"SCARF-RED": 2})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before - 2

    assert orders_close_expired(now=order.expires_at + timedelta(seconds=1)) == 1

    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.CLOSED
    assert sandbox.control("GET", f"alipay/trades/{payment.out_trade_no}")["trade_status"] == "TRADE_CLOSED"
    assert Sku.objects.get(code="SCARF-RED").stock == stock_before


def test_an_attempt_never_opened_is_closed_too(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:page")  # the shopper never reaches Alipay
    assert orders_close_expired(now=order.expires_at + timedelta(seconds=1)) == 1
    assert Payment.objects.get(order=order).status == PaymentStatus.CLOSED


def test_the_close_waits_while_the_sandbox_cannot_answer(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", "faults", {"target": "alipay.close", "mode": "error",
                                       "code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"})
    later = order.expires_at + timedelta(seconds=1)
    assert orders_close_expired(now=later) == 0
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PENDING_PAYMENT
    assert orders_close_expired(now=later) == 1


def test_a_payment_after_the_order_closed_is_recorded_and_refunded_automatically(shop, sandbox):
    order = shop.place_order({"NOTE-A5": 1})
    qr_page = shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    order_close(order_id=order.pk, actor=Actor.system("test"), reason="cancelled by staff")

    shop.sandbox.press(shop.sandbox.open(shop.qr_content(qr_page)), "sandbox-pay")

    wait_for(lambda: notifications_settled(payment), what="the notification")
    payment = Payment.objects.get(pk=payment.pk)
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.refund_required == RefundRequired.LATE
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED
    # The money goes back without review, through the sandbox, once; Alipay
    # then tells the payment's notify URL the trade is closed.
    refund = wait_for(lambda: Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).first(),
                      what="the automatic refund")
    assert (refund.automatic, refund.amount_minor) == (True, payment.amount_minor)
    trade = sandbox.control("GET", f"alipay/trades/{payment.out_trade_no}")
    assert (trade["refund_count"], trade["refunded_minor"]) == (1, payment.amount_minor)
    wait_for(lambda: notifications_settled(payment, 2), what="the trade-closed notification")
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CLOSED


def test_forged_and_lying_notifications_are_rejected_and_the_genuine_one_applied(shop, sandbox):
    sandbox.control("POST", "faults", {
        "target": "alipay.notify", "mode": "forge",
        "variants": ["bad_signature", "tampered_amount", "signed_wrong_amount", "wrong_app_id", "wrong_seller"],
    })
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/pay")

    # Rows that failed verification do not know their trade: count them all.
    wait_for(lambda: GatewayNotification.objects.exclude(outcome=NotificationOutcome.RECEIVED).count() >= 6,
             what="six notifications")
    notifications = GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no)
    outcomes = sorted(GatewayNotification.objects.values_list("outcome", flat=True))
    assert outcomes.count(NotificationOutcome.REJECTED) == 5
    assert outcomes.count(NotificationOutcome.APPLIED) == 1
    assert notifications.filter(outcome=NotificationOutcome.APPLIED).count() == 1
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID
    assert paid_events(order) == 1
    # Each forgery was answered with a non-success 4xx, so Alipay would re-send it.
    def deliveries():
        found = [delivery for notification in sandbox.control("GET", "notifications")["notifications"]
                 for delivery in notification["deliveries"]]
        return found if len(found) >= 6 else None

    answers = sorted((d["status_code"], d["body"]) for d in sandbox.wait_for(deliveries, what="the log"))
    assert answers.count((400, "failure")) == 5
    assert answers.count((200, "success")) == 1


def test_thirty_parallel_copies_make_one_transition_and_all_get_success(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "alipay.notify", "mode": "duplicate", "copies": 30})
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/pay")

    wait_for(lambda: notifications_settled(payment, 30), timeout=30, what="thirty notifications")
    def delivered():
        (notification,) = sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}")[
            "notifications"]
        return notification if len(notification["deliveries"]) == 30 else None

    notification = sandbox.wait_for(delivered, what="the delivery log")
    assert [(d["status_code"], d["body"]) for d in notification["deliveries"]] == [(200, "success")] * 30
    assert PaymentEvent.objects.filter(payment=payment, to_status=PaymentStatus.SUCCEEDED,
                                       from_status=PaymentStatus.PENDING).count() == 1
    assert paid_events(order) == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert outcomes.count(NotificationOutcome.APPLIED) == 1
    assert outcomes.count(NotificationOutcome.DUPLICATE) == 29


def test_unknown_trade_and_malformed_bodies_are_rejected_not_errors(shop, sandbox, live_server):
    # A genuine, validly signed notification for a trade the shop never made.
    gateway = get_gateway("alipay")
    gateway.start_payment(PaymentRequest(
        out_trade_no="STRANGER0001", amount_minor=100, currency="CNY", subject="not ours",
        method=PayMethod.QR, notify_url=f"{live_server.url}/payments/alipay/notify/",
        return_url=f"{live_server.url}/payments/alipay/return/", expires_at=timezone.now() + timedelta(hours=1),
    ))
    sandbox.control("POST", "alipay/trades/STRANGER0001/scan")
    sandbox.control("POST", "alipay/trades/STRANGER0001/pay")
    stored = wait_for(lambda: GatewayNotification.objects.filter(out_trade_no="STRANGER0001").exclude(
        outcome=NotificationOutcome.RECEIVED).first(), what="the stranger's notification")
    assert (stored.outcome, stored.verified) == (NotificationOutcome.REJECTED, True)

    notify = f"{live_server.url}/payments/alipay/notify/"
    for body, content_type in [
        (b"", "application/x-www-form-urlencoded"),
        (b"out_trade_no=1&sign=abc", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00garbage", "application/octet-stream"),
        (b'{"json": true}', "application/json"),
    ]:
        response = requests.post(notify, data=body, headers={"Content-Type": content_type}, timeout=10)
        assert (response.status_code, response.text) == (400, "failure")


def test_a_replayed_old_notification_changes_nothing(shop, sandbox, live_server):
    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/pay")
    wait_for(lambda: notifications_settled(payment), what="the notification")
    original = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    events = PaymentEvent.objects.filter(payment=payment).count()

    response = requests.post(f"{live_server.url}/payments/alipay/notify/", data=bytes(original.body),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)

    assert (response.status_code, response.text) == (200, "success")
    replay = GatewayNotification.objects.exclude(pk=original.pk).get()
    assert replay.outcome == NotificationOutcome.DUPLICATE
    assert PaymentEvent.objects.filter(payment=payment).count() == events
    assert paid_events(order) == 1


def test_an_old_success_replayed_after_the_order_was_refunded_and_its_trade_closed_changes_nothing(
        shop, sandbox, live_server):
    from tests.e2e.refund_support import apply, approve

    order = shop.place_order({"NOTE-A5": 1})
    shop.choose(order, "alipay:qr")
    payment = Payment.objects.get(order=order)
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{payment.out_trade_no}/pay")
    wait_for(lambda: notifications_settled(payment), what="the payment notification")
    original = GatewayNotification.objects.get(out_trade_no=payment.out_trade_no)
    approve(apply(Order.objects.get(pk=order.pk), payment.amount_minor))
    # Alipay tells the notify URL the trade is now closed (A8).
    wait_for(lambda: notifications_settled(payment, 2), what="the trade-closed notification")
    assert sandbox.control("GET", f"alipay/trades/{payment.out_trade_no}")["trade_status"] == "TRADE_CLOSED"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    order_events = OrderEvent.objects.filter(order=order).count()
    payment_events = PaymentEvent.objects.filter(payment=payment).count()

    response = requests.post(f"{live_server.url}/payments/alipay/notify/", data=bytes(original.body),
                             headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10)

    # Genuine and already applied: acknowledged, so Alipay stops; nothing re-applied.
    assert (response.status_code, response.text) == (200, "success")
    replay = GatewayNotification.objects.order_by("-pk").first()
    assert replay.outcome == NotificationOutcome.DUPLICATE
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert OrderEvent.objects.filter(order=order).count() == order_events
    assert PaymentEvent.objects.filter(payment=payment).count() == payment_events
