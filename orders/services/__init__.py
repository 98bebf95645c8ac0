"""Orders: placing them at checkout, and every status move after that.

    checkout.py   order_place: the order, its lines and the stock reservation
    lifecycle.py  every order transition, each a named service (paid, closed,
                  shipped, completed, and the refund states refunds report)
    expiry.py     closing orders unpaid past their deadline
    completion.py completing orders shipped ORDER_AUTO_COMPLETE_DAYS ago

Callers import from `orders.services`; the modules are the map.
"""
from orders.services.checkout import Consignee, new_order_no, order_place
from orders.services.completion import orders_complete_delivered
from orders.services.expiry import order_expire, order_expiry_step_register, orders_close_expired
from orders.services.lifecycle import (
    ORDER_LIFECYCLE,
    order_close,
    order_complete,
    order_follow_refunds,
    order_mark_paid,
    order_mark_paid_locked,
    order_ship,
    order_transition,
)

__all__ = [
    "ORDER_LIFECYCLE",
    "Consignee",
    "new_order_no",
    "order_close",
    "order_complete",
    "order_expire",
    "order_expiry_step_register",
    "order_follow_refunds",
    "order_mark_paid",
    "order_mark_paid_locked",
    "order_place",
    "order_ship",
    "order_transition",
    "orders_close_expired",
    "orders_complete_delivered",
]
