"""Row locks on orders, always taken in primary-key order."""
from django.db.models import QuerySet

from orders.models import Order


def order_for_update(*, order_id: int) -> Order:
    return Order.objects.select_for_update().get(pk=order_id)


def orders_for_update(*, order_ids: list[int]) -> QuerySet[Order]:
    return Order.objects.select_for_update().filter(pk__in=order_ids).order_by("pk")
