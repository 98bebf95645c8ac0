"""A shopper's application for a refund of (part of) their order's payment."""
from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import translation

from orders.lock_objects import order_for_update
from orders.models import Order
from payments.models import Payment
from payments.selectors import payment_accepted_for_order
from refunds import metrics
from refunds.exceptions import InvalidRefundAmount, RefundNotAllowed
from refunds.lock_objects import balance_for_update
from refunds.models import Refund, RefundBalance, RefundReason, RefundStatus
from refunds.services.lifecycle import order_refund_state_sync, refund_record_event
from shop.actors import Actor


def refundable_minor(*, payment: Payment) -> int:
    """What a new application may still ask for: paid − reserved − open requests."""
    balance = RefundBalance.objects.filter(payment=payment).first()
    reserved = balance.reserved_minor if balance else 0
    requested = Refund.objects.filter(payment=payment, status=RefundStatus.REQUESTED).aggregate(
        total=Sum("amount_minor"))["total"] or 0
    return payment.amount_minor - reserved - requested


def next_refund_no(order: Order) -> str:
    # Letters and digits only, like out_trade_no: fits every provider.
    count = Refund.objects.filter(order=order).count()
    return f"{order.order_no}R{count + 1:02d}"


def gateway_reason(reason: str) -> str:
    """The text sent to the gateway with the refund, fixed when the refund is made.

    In the shop's own language (the one the gateway's merchant back office
    shows), never the language of whichever process happens to send it,
    so every retry sends the same words.
    """
    with translation.override(settings.LANGUAGE_CODE):
        return str(RefundReason(reason).label)[:80] if reason else ""


def refund_request(*, order_id: int, shopper: Any, amount_minor: int, reason: str, reason_text: str = "",
                   application_token: uuid.UUID | None = None) -> Refund:
    """A shopper applies for a refund of (part of) their order's payment.

    Runs under the order and balance locks, so a double submit or two tabs
    cannot ask for more than remains refundable. The order shows "refund
    pending". The same `application_token` twice returns the first refund.
    Raises RefundNotAllowed (not theirs, not paid) or InvalidRefundAmount
    (zero, negative, above what is refundable).
    """
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise InvalidRefundAmount(f"amount {amount_minor!r} is not a positive number of fen")
    try:
        return _refund_request(order_id=order_id, shopper=shopper, amount_minor=amount_minor, reason=reason,
                               reason_text=reason_text, application_token=application_token)
    except IntegrityError:
        existing = Refund.objects.filter(application_token=application_token).first() if application_token else None
        if existing is None:
            raise
        return existing


def _refund_request(*, order_id: int, shopper: Any, amount_minor: int, reason: str, reason_text: str,
                    application_token: uuid.UUID | None) -> Refund:
    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        if order.shopper_id != shopper.pk or not order.accepts_refund_applications:
            raise RefundNotAllowed(f"order {order.order_no} ({order.status}) takes no application from {shopper.pk}")
        payment = payment_accepted_for_order(order)
        if payment is None:
            raise RefundNotAllowed(f"order {order.order_no} has no accepted payment")
        balance_for_update(payment=payment)
        # Under the locks a concurrent submit of the same form has committed.
        if application_token and Refund.objects.filter(application_token=application_token).exists():
            return Refund.objects.get(application_token=application_token)
        if amount_minor > refundable_minor(payment=payment):
            raise InvalidRefundAmount(f"order {order.order_no}: {amount_minor} fen is above what is refundable")
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            out_refund_no=next_refund_no(order),
            amount_minor=amount_minor,
            currency=payment.currency,
            reason=reason,
            reason_text=reason_text,
            gateway_reason=gateway_reason(reason),
            application_token=application_token,
            requested_by=shopper,
            approvals_required=2 if amount_minor > settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR else 1,
        )
        refund_record_event(refund, from_status="", actor=Actor.shopper(shopper), reason=f"applied: {reason}")
        order_refund_state_sync(order, actor=Actor.shopper(shopper))
    metrics.refunds_requested.labels(gateway=payment.gateway).inc()
    return refund
