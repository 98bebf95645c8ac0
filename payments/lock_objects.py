"""Row locks for payments. Lock order everywhere: the order, then its payments.

Each helper takes both locks with one SELECT: `FOR UPDATE OF` lists the
order first, and PostgreSQL locks the rows of one statement in the order of
that list, so the lock order holds and a round trip is saved.
"""
from orders.models import Order
from payments.models import Payment

# The order's row, then the payment's: the lock order, in one statement.
_LOCK_ORDER_THEN_PAYMENT = ("order", "self")


def payment_and_order_for_update(*, payment_id: int) -> tuple[Payment, Order]:
    payment = Payment.objects.select_related("order").select_for_update(of=_LOCK_ORDER_THEN_PAYMENT).get(pk=payment_id)
    return payment, payment.order


def payment_and_order_for_update_by_number(*, gateway: str, out_trade_no: str) -> tuple[Payment, Order] | None:
    """The attempt a gateway names by our number, locked with its order; None when there is none."""
    found = list(
        Payment.objects.select_related("order").select_for_update(of=_LOCK_ORDER_THEN_PAYMENT)
        .filter(out_trade_no=out_trade_no, gateway=gateway).order_by()[:1]
    )
    if not found:
        return None
    return found[0], found[0].order
