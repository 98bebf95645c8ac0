"""How pages of apps below refunds (the order page) show an order's refunds."""
from __future__ import annotations

from dataclasses import dataclass

from django import template

from orders.models import Order
from refunds.models import Refund, RefundStatus

register = template.Library()


@dataclass(frozen=True)
class OrderRefunds:
    refunds: list[Refund]

    @property
    def under_review(self) -> bool:
        """An application waits for customer service: the shopper is not offered another."""
        return any(refund.status == RefundStatus.REQUESTED for refund in self.refunds)


@register.simple_tag
def order_refunds(order: Order) -> OrderRefunds:
    return OrderRefunds(list(order.refunds.select_related("payment")))
