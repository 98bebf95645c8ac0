from datetime import datetime

from django.db.models import Q, QuerySet

from orders.models import Order, OrderStatus
from payments.models import Payment, PaymentStatus

OPEN_STATUSES = (PaymentStatus.CREATED, PaymentStatus.PENDING)


def payment_list_stale_open(*, created_before: datetime, now: datetime, limit: int) -> QuerySet[Payment]:
    """Open attempts old enough to ask the gateway about, whose backoff has run out."""
    return (
        Payment.objects.filter(status__in=OPEN_STATUSES, created_at__lte=created_before)
        .filter(Q(next_query_at__isnull=True) | Q(next_query_at__lte=now))
        .order_by("next_query_at", "pk")[:limit]
    )


def order_list_expired_unpaid(*, now: datetime, limit: int) -> QuerySet[Order]:
    return Order.objects.filter(status=OrderStatus.PENDING_PAYMENT, expires_at__lte=now).order_by(
        "expires_at", "pk"
    )[:limit]


def payment_get_for_shopper(*, out_trade_no: str, shopper) -> Payment:
    return Payment.objects.select_related("order").get(out_trade_no=out_trade_no, order__shopper=shopper)
