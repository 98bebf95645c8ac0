"""Refunds the shop starts itself: duplicate payments and payments after close."""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from orders.lock_objects import order_for_update
from payments.models import Payment, PaymentStatus
from refunds.lock_objects import balance_for_update
from refunds.models import Refund, RefundReason, RefundStatus
from refunds.services.applications import gateway_reason, next_refund_no
from refunds.services.execution import enqueue_submit
from refunds.services.lifecycle import SYSTEM, balance_reserve, refund_move, refund_record_event

logger = logging.getLogger(__name__)


def refund_create_automatic(*, payment_id: int) -> Refund | None:
    """Give back a payment that succeeded when its order could not take it.

    Duplicate payments and payments after close (Payment.refund_required)
    are refunded in full without review. At most one such refund exists per
    payment (a repeat returns it). Returns None if nothing is to be refunded.
    """
    with transaction.atomic():
        payment = Payment.objects.get(pk=payment_id)
        if payment.status != PaymentStatus.SUCCEEDED or not payment.refund_required:
            return None
        order = order_for_update(order_id=payment.order_id)
        balance = balance_for_update(payment=payment)
        existing = Refund.objects.filter(payment=payment, automatic=True).first()
        if existing is not None:
            return existing
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            out_refund_no=next_refund_no(order),
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            reason=payment.refund_required,
            reason_text=f"automatic: {RefundReason(payment.refund_required).label}",
            gateway_reason=gateway_reason(payment.refund_required),
            automatic=True,
            approvals_required=0,
        )
        refund_record_event(refund, from_status="", actor=SYSTEM,
                            reason=f"automatic refund: {payment.refund_required}")
        balance_reserve(balance, refund)
        refund_move(refund, to_status=RefundStatus.APPROVED, actor=SYSTEM, reason="automatic: no review needed",
                    extra_fields={"reviewed_at": timezone.now()})
        enqueue_submit(refund.pk)
    logger.warning("refund %s: automatic refund of %s (%s)", refund.out_refund_no, payment.out_trade_no,
                   payment.refund_required)
    return refund


def refunds_create_automatic_pending() -> int:
    """Sweep: start automatic refunds for flagged payments that have none yet."""
    flagged = (
        Payment.objects.filter(status=PaymentStatus.SUCCEEDED)
        .exclude(refund_required="")
        .exclude(refunds__automatic=True)
        .values_list("pk", flat=True)
    )
    created = 0
    for payment_id in flagged:
        if refund_create_automatic(payment_id=payment_id) is not None:
            created += 1
    return created
