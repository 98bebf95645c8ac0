"""The payment attempt's lifecycle: PAYMENT_TRANSITIONS moved under a lock, with events."""
from __future__ import annotations

from typing import Any

from payments.exceptions import InvalidPaymentTransition
from payments.models import PAYMENT_TRANSITIONS, GatewayNotification, Payment, PaymentEvent
from shop.actors import Actor
from shop.lifecycle import Lifecycle

PAYMENT_LIFECYCLE: Lifecycle[Payment] = Lifecycle(
    transitions=PAYMENT_TRANSITIONS,
    event_model=PaymentEvent,
    subject="payment",
    error=InvalidPaymentTransition,
    reference=lambda payment: payment.out_trade_no,
)


def payment_move(
    payment: Payment,
    *,
    to_status: str,
    actor: Actor,
    reason: str = "",
    notification: GatewayNotification | None = None,
    detail: dict[str, Any] | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> bool:
    """Move a locked payment; False when it already had that status."""
    return PAYMENT_LIFECYCLE.move(payment, to_status=to_status, actor=actor, reason=reason,
                                  extra_fields=extra_fields, notification=notification, detail=detail or {})


def payment_move_from(
    payment: Payment,
    *,
    from_status: str,
    to_status: str,
    actor: Actor,
    reason: str = "",
    extra_fields: dict[str, Any] | None = None,
) -> bool:
    """Move a payment that is not locked, if it still has `from_status`; False when it has moved on."""
    return PAYMENT_LIFECYCLE.move_from(payment, from_status=from_status, to_status=to_status, actor=actor,
                                       reason=reason, extra_fields=extra_fields, detail={})


def payment_record_event(payment: Payment, *, actor: Actor, reason: str, detail: dict[str, Any] | None = None,
                         notification: GatewayNotification | None = None) -> None:
    """An event that is not a status change (a flag, a gateway exchange)."""
    PAYMENT_LIFECYCLE.record(payment, actor=actor, reason=reason, notification=notification, detail=detail or {})
