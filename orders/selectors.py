"""Reads about orders that more than one place needs."""
from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from orders.models import Order, OrderEvent, OrderStatus


def order_list_expired_unpaid(*, now: datetime, limit: int) -> QuerySet[Order]:
    """Orders still awaiting payment past their deadline, oldest deadline first."""
    return Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, expires_at__lte=now).order_by(
        "expires_at", "pk"
    )[:limit]


def order_status_before_refund_pending(order: Order) -> str:
    """Where an order goes back to when no refund came of it: a shipped order stays shipped."""
    entered = (
        OrderEvent.objects.filter(order=order, to_status=OrderStatus.REFUND_PENDING)
        .exclude(from_status=OrderStatus.REFUND_PENDING)
        .order_by("-created_at", "-pk")
        .values_list("from_status", flat=True)
        .first()
    )
    if entered in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
        return entered
    return OrderStatus.PAID
