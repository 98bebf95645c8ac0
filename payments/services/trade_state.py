"""Applying a gateway's verified word about a trade to the attempt and its order.

Every path a result arrives by ends here: a verified notification
(inbox.py), a query (sync.py), a close that came too late. It runs with
the order and the payment locked (always in that order) and is
idempotent.

A payment that succeeds when its order can no longer take it (already paid
through another attempt, or closed) still succeeds: the money is real. It
is flagged with `refund_required`, and the apps built on payments are told
by the `payment_needs_refund` signal to give it back.
"""
from __future__ import annotations

import logging

from django.utils import timezone

from orders.models import Order, OrderStatus
from orders.services import order_mark_paid_locked
from payments import metrics
from payments.exceptions import AmountMismatch
from payments.gateways.base import TradeState, TradeStatus
from payments.models import GatewayNotification, Payment, PaymentStatus, RefundRequired
from payments.services.lifecycle import payment_move, payment_record_event
from payments.signals import payment_needs_refund
from shop.actors import Actor
from shop.outbox import outbox_enqueue

logger = logging.getLogger(__name__)


def trade_state_apply(
    payment: Payment,
    order: Order,
    *,
    state: TradeState,
    actor: Actor,
    notification: GatewayNotification | None = None,
) -> bool:
    """Apply a verified trade state to a locked payment and its locked order.

    Returns True when something changed. Raises AmountMismatch when the
    gateway reports an amount other than the attempt's (nothing applied).
    """
    detail = {"gateway_status": str(state.status), "gateway_trade_no": state.gateway_trade_no}
    # The gateway's word is saved with the move, in its UPDATE; alone only
    # when nothing moves.
    gateway_status: dict[str, str] = {"gateway_status": state.status} if payment.gateway_status != state.status else {}
    moved = _apply(payment, order, state=state, actor=actor, notification=notification, detail=detail,
                   gateway_status=gateway_status)
    if gateway_status and not moved:
        payment.gateway_status = state.status
        payment.save(update_fields=["gateway_status", "updated_at"])
    return moved


def _apply(payment: Payment, order: Order, *, state: TradeState, actor: Actor,
           notification: GatewayNotification | None, detail: dict[str, str], gateway_status: dict[str, str]) -> bool:
    if state.status == TradeStatus.SUCCEEDED:
        return _apply_success(payment, order, state=state, actor=actor, notification=notification, detail=detail,
                              gateway_status=gateway_status)
    if state.status in (TradeStatus.CLOSED, TradeStatus.FAILED) and payment.is_open:
        target = PaymentStatus.CLOSED if state.status == TradeStatus.CLOSED else PaymentStatus.FAILED
        return payment_move(payment, to_status=target, actor=actor, reason=f"gateway: {state.status}",
                            notification=notification, detail=detail, extra_fields=gateway_status)
    if state.status == TradeStatus.PENDING and payment.status == PaymentStatus.CREATED:
        return payment_move(payment, to_status=PaymentStatus.PENDING, actor=actor, reason="gateway: pending",
                            notification=notification, detail=detail, extra_fields=gateway_status)
    return False


def _apply_success(payment: Payment, order: Order, *, state: TradeState, actor: Actor,
                   notification: GatewayNotification | None, detail: dict[str, str],
                   gateway_status: dict[str, str]) -> bool:
    if state.amount_minor is not None and state.amount_minor != payment.amount_minor:
        raise AmountMismatch(
            f"{payment.out_trade_no}: gateway says {state.amount_minor} fen, attempt is {payment.amount_minor}"
        )
    if payment.status == PaymentStatus.SUCCEEDED:
        return False
    # Decided before the move: the database accepts a second succeeded
    # payment for an order only when it carries its refund reason.
    payment_move(
        payment,
        to_status=PaymentStatus.SUCCEEDED,
        actor=actor,
        reason="paid",
        notification=notification,
        detail=detail,
        extra_fields={
            **gateway_status,
            "gateway_trade_no": state.gateway_trade_no or payment.gateway_trade_no,
            "paid_at": state.paid_at or timezone.now(),
            "refund_required": _refund_required_for(order),
        },
    )
    _settle_order(payment, order, actor=actor)
    return True


def _refund_required_for(order: Order) -> str:
    if order.status == OrderStatus.PENDING_PAYMENT:
        return RefundRequired.NO
    return RefundRequired.LATE if order.status == OrderStatus.CLOSED else RefundRequired.DUPLICATE


def _settle_order(payment: Payment, order: Order, *, actor: Actor) -> None:
    """A payment just succeeded: pay the order, or record why it must be refunded."""
    if not payment.refund_required:
        # The order is locked already (trade_state_apply's precondition).
        order_mark_paid_locked(order, actor=actor, reason=f"paid by {payment.gateway}",
                               reference=f"payment:{payment.pk}")
        metrics.payments_succeeded.labels(gateway=payment.gateway).inc()
        outbox_enqueue("payments.tasks.payment_send_confirmation_task", payment.pk)
        return
    reason = RefundRequired(payment.refund_required)
    payment_record_event(payment, actor=actor, reason=f"refund required: {reason.value}")
    # The refunds app builds on payments, not the other way round: this
    # payments task announces it (payment_needs_refund) and refunds listens.
    outbox_enqueue("payments.tasks.payment_announce_refund_needed_task", payment.pk)
    metrics.payments_needing_refund.labels(gateway=payment.gateway, reason=reason.value).inc()
    logger.warning(
        "payment %s succeeded but order %s is %s: %s, to be refunded",
        payment.out_trade_no, order.order_no, order.status, reason.value,
    )


def payment_announce_refund_needed(*, payment_id: int) -> None:
    """Tell the apps built on payments that a flagged payment must be given back.

    Runs in the outbox task written by the commit that flagged it; the
    refunds app's receiver starts the refund (and its periodic sweep starts
    any refund missed here).
    """
    payment_needs_refund.send(sender=Payment, payment_id=payment_id)
