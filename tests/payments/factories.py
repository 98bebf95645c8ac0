from payments.gateways.base import PayMethod
from payments.services import payment_start
from shop.actors import Actor
from tests.orders.factories import place_order


def start_payment(*, order=None, gateway_code="fake", method=PayMethod.QR, **order_kwargs):
    """A real attempt through payment_start; returns (payment, action)."""
    order = order or place_order(**order_kwargs)
    return payment_start(order_no=order.order_no, gateway_code=gateway_code, method=method,
                         actor=Actor.shopper(order.shopper))
