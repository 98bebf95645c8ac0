"""Reconciliation against the sandbox process: trades paid "yesterday" on its clock,
over real HTTP with real signatures, then the real adapters fetch and parse its bill."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta

from django.db import transaction

from orders.services import order_close
from payments.gateways.base import BEIJING, PayMethod
from payments.lock_objects import payment_and_order_for_update
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentStatus
from payments.services import payment_move, payment_start
from reconciliation.models import Statement
from reconciliation.services import statement_reconcile
from refunds.models import Refund, RefundStatus
from refunds.services import refund_approve, refund_request
from shop.actors import Actor
from tests.orders.factories import place_order
from tests.polling import wait_for
from tests.refunds.factories import reviewer
from tests.sandbox_process import SandboxProcess

TEST = Actor.system("test")
GATEWAYS = ["alipay", "wechatpay"]


def yesterday() -> date:
    return datetime.now(BEIJING).date() - timedelta(days=1)


@contextmanager
def on_the_sandbox_day(sandbox: SandboxProcess, day: date, *, at: time = time(12)) -> Iterator[None]:
    """What happens in the block happens on `day` by the sandbox's clock; then back to now,
    at a real time scale so that bill links outlive the download (Alipay's lives 30 s)."""
    moment = datetime.combine(day, at, tzinfo=BEIJING)
    sandbox.control("POST", "settings", {"clock_offset_seconds": (moment - datetime.now(BEIJING)).total_seconds()})
    try:
        yield
    finally:
        sandbox.control("POST", "settings", {"clock_offset_seconds": 0, "time_scale": 1.0})


def started(gateway: str, price_minor: int) -> Payment:
    order = place_order(price_minor=price_minor)
    payment, _action = payment_start(order_no=order.order_no, gateway_code=gateway, method=PayMethod.QR,
                                     actor=Actor.shopper(order.shopper))
    return payment


def pay_at_sandbox(sandbox: SandboxProcess, payment: Payment) -> None:
    base = f"{payment.gateway}/trades/{payment.out_trade_no}"
    sandbox.control("POST", f"{base}/scan")
    sandbox.control("POST", f"{base}/pay")


def paid(sandbox: SandboxProcess, gateway: str, price_minor: int) -> Payment:
    """An attempt paid at the sandbox; waits until the shop applied its notification."""
    payment = started(gateway, price_minor)
    pay_at_sandbox(sandbox, payment)
    wait_for(lambda: GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no,
                                                        outcome=NotificationOutcome.APPLIED).exists(),
             what=f"{payment.out_trade_no}'s notification")
    return Payment.objects.get(pk=payment.pk)


def paid_without_notification(sandbox: SandboxProcess, gateway: str, price_minor: int) -> Payment:
    """An attempt paid at the sandbox whose notification is lost on the way (still open here)."""
    payment = started(gateway, price_minor)
    sandbox.control("POST", "faults", {"target": f"{gateway}.notify", "mode": "drop",
                                       "out_trade_no": payment.out_trade_no})
    pay_at_sandbox(sandbox, payment)
    sandbox.wait_for(lambda: [item for item in sandbox.control("GET", "notifications")["notifications"]
                              if item["out_trade_no"] == payment.out_trade_no and item["status"] == "dropped"],
                     what=f"{payment.out_trade_no}'s notification dropped")
    return Payment.objects.get(pk=payment.pk)


def refunded(sandbox: SandboxProcess, payment: Payment, amount_minor: int) -> Refund:
    """A refund approved and done at the sandbox (WeChat Pay's settled and notified)."""
    refund = refund_request(order_id=payment.order_id, shopper=payment.order.shopper, amount_minor=amount_minor,
                            reason="damaged", application_token=uuid.uuid4())
    refund_approve(refund_id=refund.pk, reviewer=reviewer(f"reviewer{refund.pk}"))
    if payment.gateway == "wechatpay":
        wait_for(lambda: Refund.objects.get(pk=refund.pk).status == RefundStatus.PROCESSING, what="submitted")
        sandbox.control("POST", f"wechatpay/refunds/{Refund.objects.get(pk=refund.pk).out_refund_no}/settle",
                        {"status": "SUCCESS"})
    return wait_for(lambda: Refund.objects.filter(pk=refund.pk, status=RefundStatus.SUCCEEDED).first(),
                    what=f"{refund.out_refund_no} refunded")


def closed_here(payment: Payment) -> None:
    """We closed the attempt and its order (timed out); the shopper's money reached the gateway anyway."""
    with transaction.atomic():
        locked, _order = payment_and_order_for_update(payment_id=payment.pk)
        payment_move(locked, to_status=PaymentStatus.CLOSED, actor=TEST, reason="expired here")
    order_close(order_id=payment.order_id, actor=TEST, reason="timeout")


def reconcile(gateway: str, day: date | None = None, *, force: bool = False, now: datetime | None = None):
    day = day or yesterday()
    run = statement_reconcile(gateway_code=gateway, day=day, actor=TEST, force=force, now=now)
    return run, Statement.objects.get(gateway=gateway, day=day)


def found(statement: Statement) -> set[tuple[str, str, str]]:
    return set(statement.discrepancies.values_list("kind", "reference", "status"))
