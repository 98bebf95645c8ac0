"""Customer service's decision on an application: approve (maker-checker
above REFUND_SECOND_APPROVAL_ABOVE_MINOR) or reject with a note."""
from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from orders.models import REASON_REFUND_REJECTED
from refunds.exceptions import InvalidRefundTransition, RejectNoteRequired, SecondApproverRequired
from refunds.lock_objects import refund_for_update
from refunds.models import Refund, RefundApproval, RefundStatus
from refunds.permissions import require_independent_reviewer, require_reviewer
from refunds.services.emails import enqueue_shopper_email
from refunds.services.execution import enqueue_submit
from refunds.services.lifecycle import (
    balance_reserve,
    order_refund_state_sync,
    refund_move,
    refund_record_event,
)
from shop.actors import Actor


def refund_approve(*, refund_id: int, reviewer: Any, note: str = "") -> Refund:
    """Record a reviewer's approval; the last required one sends it to the gateway.

    Refunds above REFUND_SECOND_APPROVAL_ABOVE_MINOR need two approvals by
    different reviewers (maker-checker). The approval reserves the amount
    under the balance lock: two approvals that together exceed the payment
    cannot both pass. Approving again as the same reviewer is a no-op.

    Nobody approves a refund of their own order or one they applied for
    (so both approvers above the threshold differ from the applicant).
    Raises ReviewNotAllowed, SelfReviewNotAllowed, SecondApproverRequired (a
    second approval by the same person), InvalidRefundAmount,
    InvalidRefundTransition.
    """
    require_reviewer(reviewer)
    actor = Actor.staff(reviewer)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        require_independent_reviewer(reviewer, shopper_id=order.shopper_id, applicant_id=refund.requested_by_id,
                                     reference=refund.out_refund_no)
        already = refund.approvals.filter(reviewer=reviewer).exists()
        if refund.status != RefundStatus.REQUESTED:
            if already or refund.status in (RefundStatus.APPROVED, RefundStatus.PROCESSING, RefundStatus.SUCCEEDED):
                return refund
            raise InvalidRefundTransition(refund.out_refund_no, refund.status, RefundStatus.APPROVED)
        if already:
            raise SecondApproverRequired(f"{refund.out_refund_no}: reviewer {reviewer.pk} approved already")
        try:
            with transaction.atomic():
                RefundApproval.objects.create(refund=refund, reviewer=reviewer, note=note)
        except IntegrityError as exc:  # the same reviewer, concurrently
            raise SecondApproverRequired(f"{refund.out_refund_no}: reviewer {reviewer.pk} approved already") from exc
        approvals = refund.approvals.count()
        if approvals < refund.approvals_required:
            refund_record_event(refund, actor=actor, reason=f"approval {approvals} of {refund.approvals_required}",
                                detail={"note": note})
            return refund
        balance_reserve(balance, refund)
        refund_move(refund, to_status=RefundStatus.APPROVED, actor=actor, reason="approved", detail={"note": note},
                    extra_fields={"reviewed_by": reviewer, "reviewed_at": timezone.now(), "review_note": note})
        enqueue_submit(refund.pk)
        enqueue_shopper_email(refund.pk, "approved")
    return refund


def refund_reject(*, refund_id: int, reviewer: Any, note: str) -> Refund:
    """requested → rejected, with the reviewer's reason (required)."""
    require_reviewer(reviewer)
    if not (note or "").strip():
        raise RejectNoteRequired(f"refund {refund_id}: rejected without a note")
    actor = Actor.staff(reviewer)
    with transaction.atomic():
        refund, _balance, order = refund_for_update(refund_id=refund_id)
        if refund.status == RefundStatus.REJECTED:
            return refund
        refund_move(refund, to_status=RefundStatus.REJECTED, actor=actor, reason="rejected", detail={"note": note},
                    extra_fields={"reviewed_by": reviewer, "reviewed_at": timezone.now(),
                                  "review_note": note.strip()})
        order_refund_state_sync(order, actor=actor, reason=REASON_REFUND_REJECTED)
        enqueue_shopper_email(refund.pk, "rejected")
    return refund
