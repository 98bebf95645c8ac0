"""How pages of apps below payments (the order page) show an order's payment."""
from django import template

from orders.models import Order
from payments import cashier
from payments.models import Payment
from payments.selectors import payment_accepted_for_order

register = template.Library()


@register.simple_tag
def accepted_payment(order: Order) -> Payment | None:
    """The payment that paid the order; its other attempts stay in admin."""
    return payment_accepted_for_order(order)


@register.filter
def gateway_name(code: str) -> str:
    """The provider's name as shoppers know it ("Alipay", "支付宝")."""
    return cashier.gateway_name(code)
