"""Orders: placing them at checkout and every status transition after that.

Each transition is one function here. It locks the order row, checks the
move against `ORDER_TRANSITIONS`, writes one `OrderEvent` in the same
transaction, and is idempotent: asking for the status the order already has
returns it unchanged without a new event. Anything else illegal raises
`InvalidTransition`.
"""
from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from orders.exceptions import (
    CheckoutAlreadyPlaced,
    EmptyCart,
    InsufficientStock,
    InvalidQuantity,
    InvalidTransition,
    UnknownSku,
)
from orders.lock_objects import order_for_update
from orders.models import ORDER_TRANSITIONS, Order, OrderEvent, OrderLine, OrderStatus
from shop.actors import Actor
from shop.lock_objects import skus_for_update
from shop.models import Sku

logger = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
ORDER_NO_ATTEMPTS = 5


@dataclass(frozen=True)
class Consignee:
    name: str
    phone: str
    address: str


def new_order_no(now: datetime) -> str:
    """`YYYYMMDD` (Beijing date) + 8 random digits: readable, not guessable.

    Uniqueness is the database's job (unique constraint); a collision is
    retried by `order_place`.
    """
    return f"{now.astimezone(BEIJING):%Y%m%d}{secrets.randbelow(10**8):08d}"


def _merge_items(items: Sequence[tuple[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    limit = settings.CART_MAX_QUANTITY_PER_LINE
    for code, quantity in items:
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
            raise InvalidQuantity(code)
        merged[code] = merged.get(code, 0) + quantity
        if merged[code] > limit:
            raise InvalidQuantity(code)
    return merged


def order_place(
    *,
    shopper,
    items: Sequence[tuple[str, int]],
    consignee: Consignee,
    checkout_token: uuid.UUID | None = None,
) -> Order:
    """Create an order from (SKU code, quantity) pairs and reserve its stock.

    Prices and the total come from the locked SKU rows, never from the
    caller. Runs in one durable transaction: either the order, its lines and
    the stock reservation all exist, or none do.

    Raises EmptyCart, InvalidQuantity, UnknownSku or InsufficientStock (all
    CheckoutError, with a message for the shopper), and CheckoutAlreadyPlaced
    when `checkout_token` was already used.
    """
    wanted = _merge_items(items)
    if not wanted:
        raise EmptyCart()

    try:
        with transaction.atomic(durable=True):
            skus = {sku.code: sku for sku in skus_for_update(codes=wanted)}
            # Checked under the SKU locks: a concurrent submit of the same
            # form has committed by now, so its order is visible.
            if checkout_token is not None:
                _raise_if_checkout_placed(checkout_token)
            lines = _reserve_stock(skus=skus, wanted=wanted)
            order = _order_create(
                shopper=shopper,
                consignee=consignee,
                lines=lines,
                checkout_token=checkout_token,
            )
            OrderEvent.objects.create(
                order=order,
                from_status="",
                to_status=order.status,
                **Actor.shopper(shopper).stamp(),
                reason="checkout",
            )
    except IntegrityError:
        if checkout_token is not None:
            _raise_if_checkout_placed(checkout_token)
        raise
    logger.info("order %s placed: %s fen", order.order_no, order.total_minor)
    return order


def _raise_if_checkout_placed(checkout_token: uuid.UUID) -> None:
    existing = Order.objects.filter(checkout_token=checkout_token).values_list(
        "order_no", flat=True
    ).first()
    if existing:
        raise CheckoutAlreadyPlaced(existing)


def _reserve_stock(*, skus: dict[str, Sku], wanted: dict[str, int]) -> list[OrderLine]:
    lines = []
    for code, quantity in wanted.items():
        sku = skus.get(code)
        if sku is None or not sku.is_active or not sku.product.is_active:
            raise UnknownSku(code)
        if sku.currency != settings.SHOP_CURRENCY:
            raise UnknownSku(code)
        if sku.stock < quantity:
            raise InsufficientStock(code, sku.display_name, sku.stock)
    for code, quantity in wanted.items():
        sku = skus[code]
        Sku.objects.filter(pk=sku.pk).update(stock=F("stock") - quantity)
        lines.append(
            OrderLine(
                sku=sku,
                sku_code=sku.code,
                name=sku.display_name,
                unit_price_minor=sku.price_minor,
                quantity=quantity,
            )
        )
    return lines


def _order_create(*, shopper, consignee: Consignee, lines: list[OrderLine], checkout_token) -> Order:
    now = timezone.now()
    total_minor = sum(line.line_total_minor for line in lines)
    for attempt in range(ORDER_NO_ATTEMPTS):
        try:
            with transaction.atomic():
                order = Order.objects.create(
                    order_no=new_order_no(now),
                    shopper=shopper,
                    total_minor=total_minor,
                    currency=settings.SHOP_CURRENCY,
                    consignee_name=consignee.name,
                    consignee_phone=consignee.phone,
                    consignee_address=consignee.address,
                    checkout_token=checkout_token,
                    expires_at=now + timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES),
                )
        except IntegrityError:
            if checkout_token is not None:
                _raise_if_checkout_placed(checkout_token)
            if attempt == ORDER_NO_ATTEMPTS - 1:
                raise
            logger.warning("order number collision, drawing another (attempt %d)", attempt + 1)
            continue
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        return order
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def _apply_transition(
    order: Order, *, to_status: str, actor: Actor, reason: str, reference: str
) -> bool:
    """Move a locked order; True if it moved, False if it was already there."""
    if order.status == to_status:
        return False
    if to_status not in ORDER_TRANSITIONS[order.status]:
        raise InvalidTransition(order.order_no, order.status, to_status)
    from_status = order.status
    order.status = to_status
    now = timezone.now()
    update_fields = ["status", "updated_at"]
    if to_status == OrderStatus.PAID and order.paid_at is None:
        order.paid_at = now
        update_fields.append("paid_at")
    if to_status == OrderStatus.CLOSED:
        order.closed_at = now
        update_fields.append("closed_at")
    order.save(update_fields=update_fields)
    OrderEvent.objects.create(
        order=order,
        from_status=from_status,
        to_status=to_status,
        **actor.stamp(),
        reason=reason,
        reference=reference,
    )
    logger.info("order %s: %s → %s (%s)", order.order_no, from_status, to_status, reason)
    return True


def order_transition(
    *, order_id: int, to_status: str, actor: Actor, reason: str = "", reference: str = ""
) -> Order:
    """Move an order to `to_status` under a row lock; see the module docstring.

    The named services below are what callers use; they add the side
    effects that belong to a transition (timestamps, stock release).
    """
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        _apply_transition(order, to_status=to_status, actor=actor, reason=reason, reference=reference)
    return order


def order_mark_paid(*, order_id: int, actor: Actor, reason: str = "", reference: str = "") -> Order:
    """pending_payment → paid. A repeat is a no-op; a closed order raises."""
    return order_transition(
        order_id=order_id, to_status=OrderStatus.PAID, actor=actor, reason=reason, reference=reference
    )


def order_close(*, order_id: int, actor: Actor, reason: str, reference: str = "") -> Order:
    """pending_payment → closed, releasing the stock the order reserved.

    A repeat is a no-op (stock is released once); a paid order raises.
    """
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        moved = _apply_transition(
            order, to_status=OrderStatus.CLOSED, actor=actor, reason=reason, reference=reference
        )
        if moved:
            _release_stock(order)
    return order


def _release_stock(order: Order) -> None:
    quantities = dict(order.lines.values_list("sku_code", "quantity"))
    # Lock the SKU rows in pk order, as checkout does, before adding back.
    for sku in skus_for_update(codes=quantities):
        Sku.objects.filter(pk=sku.pk).update(stock=F("stock") + quantities[sku.code])


def order_ship(*, order_id: int, actor: Actor, reason: str = "", reference: str = "") -> Order:
    """paid (or partially refunded) → shipped."""
    return order_transition(
        order_id=order_id, to_status=OrderStatus.SHIPPED, actor=actor, reason=reason, reference=reference
    )


def order_complete(*, order_id: int, actor: Actor, reason: str = "", reference: str = "") -> Order:
    """shipped → completed."""
    return order_transition(
        order_id=order_id, to_status=OrderStatus.COMPLETED, actor=actor, reason=reason, reference=reference
    )
