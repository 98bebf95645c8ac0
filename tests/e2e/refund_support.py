"""Helpers for the refund end-to-end tests: orders paid for real through the
sandbox process, applications made as the demo shopper, the demo reviewers,
and what the sandbox says it refunded."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from orders.models import Order, OrderStatus
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from refunds.models import Refund, RefundEvent, RefundStatus
from refunds.services import refund_approve, refund_request, refunds_poll_processing
from tests.e2e.shop_client import ShopClient
from tests.polling import wait_for
from tests.sandbox_process import SandboxProcess

PROVIDER_PATHS = {"alipay": "alipay", "wechatpay": "wechatpay"}


def user(username: str):
    """A fresh instance (permission caches live on the instance)."""
    return get_user_model().objects.get(username=username)


def trade(sandbox: SandboxProcess, payment: Payment) -> dict:
    """The sandbox's own record of the payment's trade, its refunds included."""
    return sandbox.control("GET", f"{PROVIDER_PATHS[payment.gateway]}/trades/{payment.out_trade_no}")


def payment_notification_applied(payment: Payment) -> bool:
    return GatewayNotification.objects.filter(
        out_trade_no=payment.out_trade_no, kind=NotificationKind.PAYMENT,
        outcome=NotificationOutcome.APPLIED).exists()


def start(shop: ShopClient, items: dict[str, int], choice: str) -> tuple[Order, Payment]:
    """Check out and choose a QR method at the cashier; returns the order and the new attempt."""
    order = shop.place_order(items)
    return order, start_attempt(shop, order, choice)


def start_attempt(shop: ShopClient, order: Order, choice: str) -> Payment:
    before = set(Payment.objects.filter(order=order).values_list("pk", flat=True))
    page = shop.choose(order, choice)
    assert page.status_code == 200, page.text[:500]
    return Payment.objects.filter(order=order).exclude(pk__in=before).get()


def pay_at_sandbox(sandbox: SandboxProcess, payment: Payment) -> Payment:
    """The shopper scans and pays on the phone; waits until the shop applied the notification."""
    base = f"{PROVIDER_PATHS[payment.gateway]}/trades/{payment.out_trade_no}"
    sandbox.control("POST", f"{base}/scan")
    sandbox.control("POST", f"{base}/pay")
    wait_for(lambda: payment_notification_applied(payment), what=f"{payment.out_trade_no}'s notification")
    return Payment.objects.get(pk=payment.pk)


def paid_order(shop: ShopClient, sandbox: SandboxProcess, items: dict[str, int],
               gateway: str = "alipay") -> tuple[Order, Payment]:
    """An order of the demo shopper paid through the sandbox (QR, paid on the 'phone')."""
    order, payment = start(shop, items, f"{gateway}:qr")
    payment = pay_at_sandbox(sandbox, payment)
    order.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert order.status == OrderStatus.PAID
    return order, payment


def apply(order: Order, amount_minor: int, reason: str = "damaged") -> Refund:
    """The shopper's application (as the form submits it, with a one-time token)."""
    return refund_request(order_id=order.pk, shopper=order.shopper, amount_minor=amount_minor, reason=reason,
                          reason_text="e2e", application_token=uuid.uuid4())


def approve(refund: Refund, reviewer: str = "service") -> Refund:
    """A customer-service approval; Celery is eager, so the gateway call happens on commit."""
    refund_approve(refund_id=refund.pk, reviewer=user(reviewer), note="ok")
    return Refund.objects.get(pk=refund.pk)


def poll_until_settled(refund: Refund, *, since: datetime | None = None, limit: int = 20) -> int:
    """Run the janitor (`refunds_poll_processing`) at ever later times until the
    refund leaves processing; returns how many polls of this refund it took."""
    moment = since or timezone.now()
    for polls in range(1, limit + 1):
        # Far enough ahead that the backoff (capped at an hour) has run out.
        moment += timedelta(hours=2)
        assert refunds_poll_processing(now=moment) == 1
        if Refund.objects.get(pk=refund.pk).status != RefundStatus.PROCESSING:
            return polls
    raise AssertionError(f"{refund.out_refund_no} still processing after {limit} polls")


def succeeded_events(refund: Refund) -> int:
    return RefundEvent.objects.filter(refund=refund, to_status=RefundStatus.SUCCEEDED).exclude(
        from_status=RefundStatus.SUCCEEDED).count()


def refund_notifications(refund: Refund, outcome: str | None = None):
    found = GatewayNotification.objects.filter(kind=NotificationKind.REFUND, out_trade_no=refund.payment.out_trade_no)
    return found.filter(outcome=outcome) if outcome else found


def sandbox_refund_notifications(sandbox: SandboxProcess, payment: Payment) -> list[dict]:
    return sandbox.control("GET", f"notifications?out_trade_no={payment.out_trade_no}&kind=refund")["notifications"]


STAFF_PASSWORDS = {"service": "service-demo-1", "service2": "service-demo-2"}


def staff_client(base_url: str, username: str = "service") -> ShopClient:
    """A customer-service session (the demo account) against the live shop and its /admin/."""
    client = ShopClient(base_url)
    client.sign_in(username, STAFF_PASSWORDS[username])
    return client
