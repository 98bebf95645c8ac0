"""The refund's lifecycle and its money rule.

REFUND_TRANSITIONS moved under a lock, with events; and the payment's
RefundBalance: approved, processing, abnormal and succeeded refunds never
add up to more than was paid. `reserved_minor` holds that sum, changed only
under the balance's row lock, and a check constraint makes the database
refuse anything above `paid_minor`.
"""
from __future__ import annotations

from typing import Any

from django.db.models import Count, F, Q, Sum

from orders.models import Order
from orders.services import order_follow_refunds
from payments.models import GatewayNotification
from payments.selectors import payment_accepted_for_order
from refunds.exceptions import InvalidRefundAmount, InvalidRefundTransition
from refunds.models import OPEN_STATUSES, REFUND_TRANSITIONS, Refund, RefundBalance, RefundEvent, RefundStatus
from shop.actors import Actor
from shop.lifecycle import Lifecycle
from shop.money import Money

REFUND_LIFECYCLE: Lifecycle[Refund] = Lifecycle(
    transitions=REFUND_TRANSITIONS,
    event_model=RefundEvent,
    subject="refund",
    error=InvalidRefundTransition,
    reference=lambda refund: refund.out_refund_no,
)
SYSTEM = Actor.system("refunds")


def refund_move(refund: Refund, *, to_status: str, actor: Actor, reason: str = "",
                notification: GatewayNotification | None = None, detail: dict[str, Any] | None = None,
                extra_fields: dict[str, Any] | None = None) -> bool:
    """Move a locked refund; False when it already had that status."""
    return REFUND_LIFECYCLE.move(refund, to_status=to_status, actor=actor, reason=reason, extra_fields=extra_fields,
                                 notification=notification, detail=detail or {})


def refund_record_event(refund: Refund, *, actor: Actor, reason: str, from_status: str | None = None,
                        notification: GatewayNotification | None = None,
                        detail: dict[str, Any] | None = None) -> None:
    REFUND_LIFECYCLE.record(refund, actor=actor, reason=reason, from_status=from_status,
                            notification=notification, detail=detail or {})


def balance_reserve(balance: RefundBalance, refund: Refund) -> None:
    """Count an approved refund against the payment; refuse going above it."""
    if refund.amount_minor > balance.refundable_minor:
        raise InvalidRefundAmount(
            f"{refund.out_refund_no}: {refund.amount_minor} fen asked, {balance.refundable_minor} left",
            user_message=InvalidRefundAmount.left_message(Money(balance.refundable_minor, refund.currency)),
        )
    RefundBalance.objects.filter(pk=balance.pk).update(reserved_minor=F("reserved_minor") + refund.amount_minor)
    balance.refresh_from_db()


def balance_release(balance: RefundBalance, refund: Refund) -> None:
    RefundBalance.objects.filter(pk=balance.pk).update(reserved_minor=F("reserved_minor") - refund.amount_minor)
    balance.refresh_from_db()


def balance_count_refunded(balance: RefundBalance, refund: Refund) -> None:
    RefundBalance.objects.filter(pk=balance.pk).update(refunded_minor=F("refunded_minor") + refund.amount_minor)


def order_refund_state_sync(order: Order, *, actor: Actor, reason: str = "refunds changed") -> None:
    """Tell a locked order what the refunds of its accepted payment add up to.

    Automatic refunds (of duplicate or late payments) never change the
    order: they give back money the order never counted. `reason` goes on
    the order's event (the shopper's history tells a rejected refund from
    a failed one by it: orders.models.REASON_REFUND_REJECTED, ...).
    """
    payment = payment_accepted_for_order(order)
    if payment is None:
        return
    # What came back and whether one is still open, in one aggregate.
    totals = Refund.objects.filter(payment=payment, automatic=False).aggregate(
        refunded=Sum("amount_minor", filter=Q(status=RefundStatus.SUCCEEDED)),
        open=Count("pk", filter=Q(status__in=OPEN_STATUSES)),
    )
    order_follow_refunds(
        order_id=order.pk,
        refund_open=totals["open"] > 0,
        refunded_minor=totals["refunded"] or 0,
        paid_minor=payment.amount_minor,
        actor=actor,
        reason=reason,
        locked=order,  # locked by the caller: moved in place
    )
