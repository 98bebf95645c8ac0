"""Refunds for tests come from the real services: paid orders, applications, reviewers."""
import uuid

from django.contrib.auth.models import Permission

from payments.gateways import get_gateway
from payments.gateways.base import PayMethod
from payments.services import payment_apply_notification
from refunds.services import refund_request
from tests.orders.factories import place_order
from tests.payments.factories import start_payment
from tests.shop.factories import UserFactory


def paid_order(*, price_minor=10000, quantity=1, shopper=None):
    """An order paid through the fake gateway; returns (order, payment)."""
    order = place_order(shopper=shopper, quantity=quantity, price_minor=price_minor)
    payment, _ = start_payment(order=order, method=PayMethod.QR)
    gateway = get_gateway("fake")
    gateway.pay(payment.out_trade_no)
    payment_apply_notification(gateway_code="fake", raw=gateway.notification(payment.out_trade_no))
    order.refresh_from_db()
    payment.refresh_from_db()
    return order, payment


def apply_for_refund(order, amount_minor=None, **kwargs):
    return refund_request(
        order_id=order.pk, shopper=kwargs.pop("shopper", order.shopper),
        amount_minor=order.total_minor if amount_minor is None else amount_minor,
        reason=kwargs.pop("reason", "damaged"), application_token=kwargs.pop("token", uuid.uuid4()), **kwargs,
    )


def reviewer(username="reviewer", *, can_review=True):
    user = UserFactory(username=username, is_staff=True)
    if can_review:
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["review_refund", "view_refund", "view_invariantviolation"]))
    # Permission caches live on the instance: fetch a fresh one.
    return type(user).objects.get(pk=user.pk)
