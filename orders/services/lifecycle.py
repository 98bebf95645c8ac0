"""Every order status move, each a named service.

Each one locks the order row, checks the move against ORDER_TRANSITIONS,
writes one OrderEvent in the same transaction, and is idempotent: asking
for the status the order already has returns it unchanged without a new
event. Anything else illegal raises InvalidOrderTransition.

Other apps never name an order status to move to: payments calls
`order_mark_paid`, the expiry sweep `order_close`, refunds reports its
totals to `order_follow_refunds`, which decides the refund state.
"""
from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders.exceptions import InvalidOrderTransition, ShippingDetailsMissing
from orders.lock_objects import order_for_update
from orders.models import ORDER_TRANSITIONS, SHIPPABLE_STATUSES, Carrier, Order, OrderEvent, OrderStatus
from orders.selectors import order_status_before_refund_pending
from shop.actors import Actor
from shop.lifecycle import Lifecycle
from shop.lock_objects import skus_for_update
from shop.models import Sku

ORDER_LIFECYCLE: Lifecycle[Order] = Lifecycle(
    transitions=ORDER_TRANSITIONS,
    event_model=OrderEvent,
    subject="order",
    error=InvalidOrderTransition,
    reference=lambda order: order.order_no,
)


# The status whose arrival each timestamp records (the first arrival: an
# order back from a pending refund keeps when it was paid or shipped).
_STAMPS: dict[str, str] = {
    OrderStatus.PAID: "paid_at",
    OrderStatus.CLOSED: "closed_at",
    OrderStatus.SHIPPED: "shipped_at",
    OrderStatus.COMPLETED: "completed_at",
}


def _move(order: Order, *, to_status: str, actor: Actor, reason: str, reference: str,
          extra_fields: dict[str, object] | None = None) -> bool:
    """Move a locked order, stamping the time it was paid, closed, shipped or completed."""
    extra_fields = dict(extra_fields or {})
    stamp = _STAMPS.get(to_status)
    if stamp and getattr(order, stamp) is None and order.status != to_status:
        extra_fields[stamp] = timezone.now()
    return ORDER_LIFECYCLE.move(order, to_status=to_status, actor=actor, reason=reason,
                                extra_fields=extra_fields, reference=reference)


def order_transition(
    *, order_id: int, to_status: str, actor: Actor, reason: str = "", reference: str = ""
) -> Order:
    """Move an order to `to_status` under a row lock; see the module docstring.

    The named services below are what other apps call; they add the side
    effects that belong to a move (stock release) and choose the status.
    """
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        _move(order, to_status=to_status, actor=actor, reason=reason, reference=reference)
    return order


def order_mark_paid(*, order_id: int, actor: Actor, reason: str = "", reference: str = "") -> Order:
    """pending_payment → paid. A repeat is a no-op; a closed order raises."""
    return order_transition(
        order_id=order_id, to_status=OrderStatus.PAID, actor=actor, reason=reason, reference=reference
    )


def order_mark_paid_locked(order: Order, *, actor: Actor, reason: str = "", reference: str = "") -> bool:
    """pending_payment → paid for an order the caller has locked (`order_for_update`, or
    payments' lock of order and payment together); False when it was paid already.

    The same move as `order_mark_paid`, without a second lock and savepoint
    inside the caller's transaction. A closed order raises.
    """
    return _move(order, to_status=OrderStatus.PAID, actor=actor, reason=reason, reference=reference)


def order_close(*, order_id: int, actor: Actor, reason: str, reference: str = "") -> Order:
    """pending_payment → closed, releasing the stock the order reserved.

    A repeat is a no-op (stock is released once); a paid order raises.
    """
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        if _move(order, to_status=OrderStatus.CLOSED, actor=actor, reason=reason, reference=reference):
            _release_stock(order)
    return order


def _release_stock(order: Order) -> None:
    quantities = dict(order.lines.values_list("sku_code", "quantity"))
    # Lock the SKU rows in pk order, as checkout does, before adding back.
    for sku in skus_for_update(codes=quantities):
        Sku.objects.filter(pk=sku.pk).update(stock=F("stock") + quantities[sku.code])


def order_ship(*, order_id: int, actor: Actor, carrier: str, tracking_number: str, reason: str = "shipped",
               reference: str = "") -> Order:
    """paid (or partially refunded) → shipped, with the courier and its tracking number.

    The shopper sees both on the order page. A repeat is a no-op that keeps
    the first carrier and number; an order with a refund pending, or not
    paid, raises InvalidOrderTransition; a carrier not in `Carrier` or an
    empty tracking number raises ShippingDetailsMissing.
    """
    tracking_number = (tracking_number or "").strip()
    if carrier not in Carrier.values or not tracking_number:
        raise ShippingDetailsMissing(f"order {order_id}: carrier {carrier!r}, tracking number {tracking_number!r}")
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        # The table also lets a pending refund end back in "shipped"; only a
        # paid order with no refund open is shipped by hand.
        if order.status not in SHIPPABLE_STATUSES and order.status != OrderStatus.SHIPPED:
            raise InvalidOrderTransition(order.order_no, order.status, OrderStatus.SHIPPED)
        _move(order, to_status=OrderStatus.SHIPPED, actor=actor, reason=reason, reference=reference,
              extra_fields={} if order.status == OrderStatus.SHIPPED else {
                  "shipping_carrier": carrier, "tracking_number": tracking_number})
    return order


def order_complete(*, order_id: int, actor: Actor, reason: str = "", reference: str = "") -> Order:
    """shipped → completed: the shopper confirmed receipt, staff marked it, or the sweep
    (orders.services.completion) found it shipped long enough ago. A repeat is a no-op."""
    return order_transition(
        order_id=order_id, to_status=OrderStatus.COMPLETED, actor=actor, reason=reason, reference=reference
    )


def order_follow_refunds(
    *, order_id: int, refund_open: bool, refunded_minor: int, paid_minor: int, actor: Actor,
    reason: str = "refunds changed",
) -> Order:
    """Move the order to the refund state that its payment's refunds imply.

    The refunds app reports what it knows: whether a refund of the order's
    accepted payment is still open (applied for, approved, in flight), how
    much came back, and how much was paid. An open refund means "refund
    pending"; everything back means "refunded"; part of it "partially
    refunded"; nothing back and nothing open returns a pending order to
    where it was before (paid, shipped or completed). A state the table does
    not reach from here (a closed order, say) is left as it is.
    """
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        target: str
        if refund_open:
            target = OrderStatus.REFUND_PENDING
        elif refunded_minor >= paid_minor:
            target = OrderStatus.REFUNDED
        elif refunded_minor > 0:
            target = OrderStatus.PARTIALLY_REFUNDED
        elif order.status == OrderStatus.REFUND_PENDING:
            target = order_status_before_refund_pending(order)
        else:
            return order
        if target != order.status and target in ORDER_TRANSITIONS[order.status]:
            _move(order, to_status=target, actor=actor, reason=reason, reference="")
    return order
