"""The session cart: SKU codes and quantities, nothing else.

Prices and totals are always read from the database when the cart is shown
or checked out; the session never holds an amount.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from shop.models import Sku
from shop.money import Money

SESSION_KEY = "cart"


@dataclass(frozen=True)
class CartLine:
    sku: Sku
    quantity: int

    @property
    def line_total(self) -> Money:
        return self.sku.price * self.quantity


class Cart:
    def __init__(self, session) -> None:
        self._session = session
        raw = session.get(SESSION_KEY)
        # Keep only well-formed lines; the cart must never break a page.
        self._items: dict[str, int] = {
            code: quantity
            for code, quantity in (raw.items() if isinstance(raw, dict) else ())
            if isinstance(code, str)
            and isinstance(quantity, int)
            and not isinstance(quantity, bool)
            and quantity > 0
        }

    def _save(self) -> None:
        self._session[SESSION_KEY] = self._items
        self._session.modified = True

    def add(self, *, code: str, quantity: int) -> int:
        """Add to a line, capped at the per-line maximum; returns the new quantity."""
        new_quantity = min(
            self._items.get(code, 0) + quantity, settings.CART_MAX_QUANTITY_PER_LINE
        )
        self._items[code] = new_quantity
        self._save()
        return new_quantity

    def set(self, *, code: str, quantity: int) -> None:
        if quantity <= 0:
            self.remove(code=code)
            return
        self._items[code] = min(quantity, settings.CART_MAX_QUANTITY_PER_LINE)
        self._save()

    def remove(self, *, code: str) -> None:
        if self._items.pop(code, None) is not None:
            self._save()

    def clear(self) -> None:
        self._items = {}
        self._save()

    def items(self) -> list[tuple[str, int]]:
        """(code, quantity) pairs as stored: what checkout sends to order_place."""
        return list(self._items.items())

    def __len__(self) -> int:
        return sum(self._items.values())

    def __contains__(self, code: str) -> bool:
        return code in self._items

    def lines(self) -> list[CartLine]:
        """Lines for SKUs that still exist, priced from the database."""
        skus = Sku.objects.select_related("product").in_bulk(
            list(self._items), field_name="code"
        )
        return [
            CartLine(sku=skus[code], quantity=quantity)
            for code, quantity in self._items.items()
            if code in skus
        ]

    def line_problems(self, lines: list[CartLine] | None = None) -> dict[str, str]:
        """For each line that checkout would refuse, what the shopper must fix.

        The cart reserves nothing: stock may have sold since a line was
        added, so this is checked again whenever the cart is shown and
        before the checkout form, as checkout itself checks it under locks.
        """
        lines = self.lines() if lines is None else lines
        problems = {}
        for line in lines:
            sku = line.sku
            if not (sku.is_active and sku.product.is_active) or sku.stock <= 0:
                problems[sku.code] = _("No longer available; remove it from your cart.")
            elif line.quantity > sku.stock:
                problems[sku.code] = stock_message(sku.stock)
        return problems

    def unknown_codes(self) -> list[str]:
        known = set(
            Sku.objects.filter(code__in=list(self._items)).values_list("code", flat=True)
        )
        return [code for code in self._items if code not in known]

    def total(self, lines: list[CartLine] | None = None) -> Money:
        lines = self.lines() if lines is None else lines
        total = Money(0, settings.SHOP_CURRENCY)
        for line in lines:
            total = total + line.line_total
        return total


def stock_message(available: int) -> str:
    return _("Only %(available)d left; lower the quantity.") % {"available": available}
