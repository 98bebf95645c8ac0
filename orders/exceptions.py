"""Errors of the orders app (the convention is shop.exceptions.ShopError).

    OrderError
    ├── InvalidOrderTransition   an order status move ORDER_TRANSITIONS forbids
    ├── CheckoutError            a checkout the shopper can fix (message on the page)
    │   ├── EmptyCart
    │   ├── UnknownSku
    │   ├── InvalidQuantity
    │   └── InsufficientStock
    ├── CheckoutAlreadyPlaced    the same checkout form came twice; the first order stands
    └── ShippingDetailsMissing   shipping without a known carrier or a tracking number
"""
from django.utils.translation import gettext_lazy as _

from shop.exceptions import InvalidTransition, ShopError


class OrderError(ShopError):
    """Root of the orders app's errors."""

    user_message = _("The order could not be changed.")


class InvalidOrderTransition(InvalidTransition, OrderError):
    pass


class CheckoutError(OrderError):
    user_message = _("The order could not be placed.")


class EmptyCart(CheckoutError):
    user_message = _("Your cart is empty.")


class UnknownSku(CheckoutError):
    def __init__(self, code: str) -> None:
        super().__init__(
            f"SKU {code} is unknown, inactive or priced in another currency",
            user_message=_("%(sku)s is no longer available; remove it from your cart.") % {"sku": code},
        )
        self.code = code


class InvalidQuantity(CheckoutError):
    def __init__(self, code: str) -> None:
        super().__init__(
            f"quantity of SKU {code} is not a positive integer within the line limit",
            user_message=_("The quantity of %(sku)s is not valid.") % {"sku": code},
        )
        self.code = code


class InsufficientStock(CheckoutError):
    def __init__(self, code: str, name: str, available: int) -> None:
        super().__init__(
            f"SKU {code}: only {available} in stock",
            user_message=_("Only %(available)d of %(name)s left; lower the quantity.")
            % {"available": available, "name": name},
        )
        self.code = code
        self.available = available


class CheckoutAlreadyPlaced(OrderError):
    def __init__(self, order_no: str) -> None:
        super().__init__(f"checkout already placed as order {order_no}")
        self.order_no = order_no


class ShippingDetailsMissing(OrderError):
    user_message = _("Choose the carrier and enter the tracking number.")
