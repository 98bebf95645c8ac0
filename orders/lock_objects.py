"""Row locks on orders. Lock order everywhere: the order before its payments,
refund balances and refunds (payments/lock_objects.py, refunds/lock_objects.py)."""
from orders.models import Order


def order_for_update(*, order_id: int) -> Order:
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)
