from django.utils.translation import gettext_lazy as _


class OrderError(Exception):
    """Root of the orders app's errors."""


class InvalidTransition(OrderError):
    def __init__(self, order_no: str, from_status: str, to_status: str) -> None:
        super().__init__(f"order {order_no}: {from_status} → {to_status} is not allowed")
        self.order_no = order_no
        self.from_status = from_status
        self.to_status = to_status


class CheckoutError(OrderError):
    """A checkout the shopper can fix; the message is shown on the page."""

    message = _("The order could not be placed.")

    def __init__(self, message=None) -> None:
        super().__init__(str(message or self.message))
        self.user_message = message or self.message


class EmptyCart(CheckoutError):
    message = _("Your cart is empty.")


class UnknownSku(CheckoutError):
    def __init__(self, code: str) -> None:
        super().__init__(_("%(sku)s is no longer available; remove it from your cart.") % {"sku": code})
        self.code = code


class InvalidQuantity(CheckoutError):
    def __init__(self, code: str) -> None:
        super().__init__(_("The quantity of %(sku)s is not valid.") % {"sku": code})
        self.code = code


class InsufficientStock(CheckoutError):
    def __init__(self, code: str, name: str, available: int) -> None:
        super().__init__(
            _("Only %(available)d of %(name)s left; lower the quantity.")
            % {"available": available, "name": name}
        )
        self.code = code
        self.available = available


class CheckoutAlreadyPlaced(OrderError):
    """The same checkout form was submitted twice; the first order stands."""

    def __init__(self, order_no: str) -> None:
        super().__init__(f"checkout already placed as order {order_no}")
        self.order_no = order_no
