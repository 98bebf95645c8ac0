"""Reads about payments that more than one place needs."""
from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from orders.models import Order
from payments.models import Payment, PaymentStatus

OPEN_STATUSES = (PaymentStatus.CREATED, PaymentStatus.PENDING)


def payment_list_stale_open(*, created_before: datetime, now: datetime, limit: int) -> QuerySet[Payment]:
    """Open attempts old enough to ask the gateway about, whose backoff has run out."""
    return (
        Payment.objects.filter(status__in=OPEN_STATUSES, created_at__lte=created_before)
        .filter(Q(next_query_at__isnull=True) | Q(next_query_at__lte=now))
        .order_by("next_query_at", "pk")[:limit]
    )


def payment_accepted_for_order(order: Order) -> Payment | None:
    """The payment that paid the order (never a duplicate or late one)."""
    return order.payments.filter(status=PaymentStatus.SUCCEEDED, refund_required="").first()
