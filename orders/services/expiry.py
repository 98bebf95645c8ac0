"""Closing orders left unpaid past their deadline (ORDER_PAYMENT_TIMEOUT_MINUTES).

An expired order must not close while one of its payment attempts could
still be paid at a gateway: the stock would be released under a payment.
The orders app does not know gateways, so the apps built on it register
what has to happen first (`order_expiry_step_register`; the payments app
closes the order's open attempts at their gateways). A step returns True
when the order may close now, False to keep it open until the next sweep
(a gateway that cannot be reached, a close refused this soon, an attempt
found paid).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from orders.exceptions import InvalidOrderTransition
from orders.models import REASON_PAYMENT_TIMEOUT, Order, OrderStatus
from orders.selectors import order_list_expired_unpaid
from orders.services.lifecycle import order_close
from shop.actors import Actor

logger = logging.getLogger(__name__)

JANITOR = Actor.system("janitor")

ExpiryStep = Callable[[Order, datetime], bool]
_expiry_steps: dict[str, ExpiryStep] = {}


def order_expiry_step_register(name: str, step: ExpiryStep) -> None:
    """Run `step(order, now)` before an expired order closes (once per name)."""
    _expiry_steps[name] = step


def order_expire(*, order_id: int, now: datetime | None = None) -> Order:
    """Close an unpaid order past its deadline, releasing its stock.

    The registered steps run first, in registration order; any of them may
    keep the order open for now. If the order was paid meanwhile, it stays
    paid. Returns the order as it is afterwards.
    """
    now = now or timezone.now()
    order = Order.objects.get(pk=order_id)
    if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at > now:
        return order
    for name, step in _expiry_steps.items():
        if not step(order, now):
            logger.info("order %s: expiry waits for %s", order.order_no, name)
            return Order.objects.get(pk=order_id)
    try:
        return order_close(order_id=order_id, actor=JANITOR, reason=REASON_PAYMENT_TIMEOUT)
    except InvalidOrderTransition:
        # Paid between our check and the close: the payment won.
        return Order.objects.get(pk=order_id)


def orders_close_expired(*, now: datetime | None = None, limit: int = 200) -> int:
    """Run `order_expire` for unpaid orders past their deadline; returns how many closed."""
    now = now or timezone.now()
    closed = 0
    for order in order_list_expired_unpaid(now=now, limit=limit):
        try:
            if order_expire(order_id=order.pk, now=now).status == OrderStatus.CLOSED:
                closed += 1
        except Exception:
            logger.exception("janitor: could not expire order %s", order.order_no)
    return closed
