"""Row locks for payments. Lock order everywhere: the order, then its payments."""
from orders.lock_objects import order_for_update
from orders.models import Order
from payments.models import Payment


def payment_and_order_for_update(*, payment_id: int) -> tuple[Payment, Order]:
    order_id = Payment.objects.values_list("order_id", flat=True).get(pk=payment_id)
    order = order_for_update(order_id=order_id)
    payment = Payment.objects.select_for_update(of=("self",)).get(pk=payment_id)
    return payment, order
