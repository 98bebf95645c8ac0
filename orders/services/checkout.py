"""Checkout: an order, its line snapshots and its stock reservation, at once."""
from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from orders.exceptions import (
    CheckoutAlreadyPlaced,
    CheckoutError,
    EmptyCart,
    InsufficientStock,
    InvalidQuantity,
    UnknownSku,
)
from orders.models import Order, OrderEvent, OrderLine
from shop.actors import Actor
from shop.claims import row_insert_unless_taken
from shop.lock_objects import skus_for_update
from shop.models import Sku

logger = logging.getLogger(__name__)

BEIJING = ZoneInfo("Asia/Shanghai")
ORDER_NO_ATTEMPTS = 5


@dataclass(frozen=True)
class Consignee:
    """Who receives the order, and where: the address in its parts.

    `address` alone (the whole address on one line) is what callers from
    before the structured checkout pass; with the parts, the one-line
    address is made from them.
    """

    name: str
    phone: str
    address: str = ""
    province: str = ""
    city: str = ""
    district: str = ""
    street: str = ""
    postal_code: str = ""

    def one_line(self) -> str:
        if not self.street:
            return self.address
        parts = (self.province, self.city, self.district, self.street, self.postal_code)
        return " ".join(part for part in parts if part)


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
    shopper: Any,
    items: Sequence[tuple[str, int]],
    consignee: Consignee,
    checkout_token: uuid.UUID | None = None,
    language: str = "",
) -> Order:
    """Create an order from (SKU code, quantity) pairs and reserve its stock.

    Prices and the total come from the locked SKU rows, never from the
    caller. `language` is the shopper's at checkout; their emails about
    the order speak it. Runs in one durable transaction: either the order, its lines and
    the stock reservation all exist, or none do.

    Raises EmptyCart, InvalidQuantity, UnknownSku or InsufficientStock (all
    CheckoutError, with a message for the shopper), and CheckoutAlreadyPlaced
    when `checkout_token` was already used.
    """
    wanted = _merge_items(items)
    if not wanted:
        # A resubmit after the first submit emptied the cart: that order stands.
        if checkout_token is not None:
            _raise_if_checkout_placed(checkout_token)
        raise EmptyCart()

    try:
        with transaction.atomic(durable=True):
            skus = {sku.code: sku for sku in skus_for_update(codes=wanted)}
            try:
                lines = _reserve_stock(skus=skus, wanted=wanted)
            except CheckoutError:
                # The same form submitted again after the first took the
                # stock: that order stands (checked under the SKU locks, so
                # a concurrent first submit has committed by now).
                if checkout_token is not None:
                    _raise_if_checkout_placed(checkout_token)
                raise
            order = _order_create(
                shopper=shopper,
                consignee=consignee,
                lines=lines,
                checkout_token=checkout_token,
                language=language,
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
    # One UPDATE for every line: the rows are locked (in pk order) already.
    taken = {skus[code].pk: quantity for code, quantity in wanted.items()}
    Sku.objects.filter(pk__in=taken).update(
        stock=F("stock") - Case(*(When(pk=pk, then=Value(quantity)) for pk, quantity in taken.items()))
    )
    for code, quantity in wanted.items():
        sku = skus[code]
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


def _order_create(
    *, shopper: Any, consignee: Consignee, lines: list[OrderLine], checkout_token: uuid.UUID | None,
    language: str,
) -> Order:
    now = timezone.now()
    total_minor = sum(line.line_total_minor for line in lines)
    for attempt in range(ORDER_NO_ATTEMPTS):
        order = Order(
            order_no=new_order_no(now),
            shopper=shopper,
            total_minor=total_minor,
            currency=settings.SHOP_CURRENCY,
            consignee_name=consignee.name,
            consignee_phone=consignee.phone,
            consignee_address=consignee.one_line(),
            address_province=consignee.province,
            address_city=consignee.city,
            address_district=consignee.district,
            address_street=consignee.street,
            address_postal_code=consignee.postal_code,
            language=language,
            checkout_token=checkout_token,
            expires_at=now + timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES),
        )
        # One INSERT that skips a taken order number or checkout token (no
        # savepoint): a token taken means this form was placed already, a
        # number taken is a collision, drawn again.
        if not row_insert_unless_taken(order):
            if checkout_token is not None:
                _raise_if_checkout_placed(checkout_token)
            if attempt == ORDER_NO_ATTEMPTS - 1:
                raise IntegrityError(f"no free order number after {ORDER_NO_ATTEMPTS} draws")
            logger.warning("order number collision, drawing another (attempt %d)", attempt + 1)
            continue
        for line in lines:
            line.order = order
        OrderLine.objects.bulk_create(lines)
        return order
    raise AssertionError("unreachable")
