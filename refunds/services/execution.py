"""Executing an approved refund at its gateway, and applying what comes back.

Execution is idempotent at the gateway: a refund's `out_refund_no` is made
once and sent on every attempt, so a retry after a crash, a timeout or a
lost answer can never refund twice. No gateway call happens inside a
transaction: move to processing and commit, call, then apply the answer.
The answer comes from the response, a notification (notifications.py) or
a poll (polling.py); all of them end in `refund_apply_state`.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from orders.models import REASON_REFUND_FAILED
from payments.exceptions import AmountMismatch, GatewayRejected, GatewayUnavailable
from payments.gateways import get_gateway
from payments.gateways.base import GatewayRefundStatus, RefundReference, RefundRequest, RefundState
from payments.models import GatewayNotification
from payments.services import payment_reference
from refunds import metrics
from refunds.exceptions import InvalidRefundTransition, RejectNoteRequired
from refunds.lock_objects import refund_for_update
from refunds.models import Refund, RefundStatus
from refunds.permissions import require_independent_reviewer, require_reviewer
from refunds.services.emails import enqueue_shopper_email
from refunds.services.lifecycle import (
    SYSTEM,
    balance_count_refunded,
    balance_release,
    balance_reserve,
    order_refund_state_sync,
    refund_move,
    refund_record_event,
)
from shop.actors import Actor
from shop.outbox import outbox_enqueue

logger = logging.getLogger(__name__)


def poll_delay(poll_count: int) -> timedelta:
    """Back off between polls of one refund: base × 2^n, capped."""
    base = settings.REFUND_POLL_AFTER_SECONDS
    return timedelta(seconds=min(base * (2 ** poll_count), settings.REFUND_POLL_MAX_INTERVAL_SECONDS))


def refund_submit(*, refund_id: int) -> Refund:
    """Send an approved refund to its gateway, or send a processing one again.

    The same out_refund_no and submission time every time, so the gateway
    refunds at most once. Raises GatewayUnavailable when the outcome is
    unknown (the caller retries with backoff); a final refusal marks the
    refund failed.
    """
    with transaction.atomic():
        refund, _balance, _order = refund_for_update(refund_id=refund_id)
        if refund.status == RefundStatus.APPROVED:
            refund_move(refund, to_status=RefundStatus.PROCESSING, actor=SYSTEM, reason="sent to the gateway")
        elif refund.status != RefundStatus.PROCESSING:
            return refund
        if refund.submitted_at is None:
            # Committed before the call, like the number: a retry after a
            # crash sends the same time.
            refund.submitted_at = timezone.now().replace(microsecond=0)
        Refund.objects.filter(pk=refund.pk).update(
            submit_count=F("submit_count") + 1,
            next_poll_at=timezone.now() + poll_delay(0),
            submitted_at=refund.submitted_at,
        )
    payment = refund.payment
    gateway = get_gateway(payment.gateway)
    try:
        state = gateway.refund(_refund_request(refund))
    except GatewayUnavailable as exc:
        note_gateway_error(refund, f"unavailable: {exc}")
        raise
    except (GatewayRejected, AmountMismatch) as exc:
        return refund_fail(refund_id=refund.pk, message=str(exc), actor=Actor.gateway(payment.gateway))
    return refund_apply_state(refund_id=refund.pk, state=state, actor=Actor.gateway(payment.gateway))


def _refund_request(refund: Refund) -> RefundRequest:
    payment = refund.payment
    return RefundRequest(
        out_trade_no=payment.out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount_minor=refund.amount_minor,
        total_minor=payment.amount_minor,
        currency=refund.currency,
        reason=refund.gateway_reason,
        notify_url=f"{settings.SITE_URL}/refunds/{payment.gateway}/notify/",
        gateway_trade_no=payment.gateway_trade_no,
        requested_at=refund.submitted_at,
    )


def refund_reference(refund: Refund) -> RefundReference:
    """The refund as the gateway knows it: number, submission time, payment."""
    return RefundReference(
        out_refund_no=refund.out_refund_no,
        # A refund polled before it was ever sent is unknown at the gateway
        # under any time; the poll then submits it (refund_poll).
        submitted_at=refund.submitted_at or refund.created_at.replace(microsecond=0),
        payment=payment_reference(refund.payment),
    )


def note_gateway_error(refund: Refund, message: str) -> None:
    Refund.objects.filter(pk=refund.pk).update(last_error=message[:2000], updated_at=timezone.now())
    refund_record_event(refund, actor=SYSTEM, reason=message[:2000])
    logger.warning("refund %s: %s", refund.out_refund_no, message)


def refund_fail(*, refund_id: int, message: str, actor: Actor, gateway_status: str = "") -> Refund:
    """processing or abnormal → failed: the money stays with the shop, the reservation is released."""
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        if refund.status not in (RefundStatus.PROCESSING, RefundStatus.ABNORMAL):
            return refund
        extra_fields = {"last_error": message[:2000], "next_poll_at": None}
        if gateway_status:
            extra_fields["gateway_status"] = gateway_status
        refund_move(refund, to_status=RefundStatus.FAILED, actor=actor, reason=f"failed: {message}"[:2000],
                    extra_fields=extra_fields)
        balance_release(balance, refund)
        order_refund_state_sync(order, actor=actor, reason=REASON_REFUND_FAILED)
        enqueue_shopper_email(refund.pk, "failed")
    metrics.refunds_finished.labels(gateway=refund.payment.gateway, status="failed").inc()
    return refund


def refund_apply_state(*, refund_id: int, state: RefundState, actor: Actor,
                       notification: GatewayNotification | None = None) -> Refund:
    """Apply what the gateway says about a refund (answer, notification or poll).

    Idempotent: a repeated SUCCEEDED adds nothing. Raises AmountMismatch when
    the gateway reports another amount (nothing applied).
    """
    if state.amount_minor is not None and state.status == GatewayRefundStatus.SUCCEEDED:
        expected = Refund.objects.values_list("amount_minor", flat=True).get(pk=refund_id)
        if state.amount_minor != expected:
            raise AmountMismatch(f"refund {refund_id}: gateway says {state.amount_minor}, ours is {expected}")
    if state.status == GatewayRefundStatus.CLOSED:
        return refund_fail(refund_id=refund_id, message=state.message or "closed by the gateway", actor=actor,
                           gateway_status=GatewayRefundStatus.CLOSED)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        refund.gateway_status = state.status
        refund.save(update_fields=["gateway_status", "updated_at"])
        event: dict[str, Any] = {
            "notification": notification,
            "detail": {"gateway_status": str(state.status), "gateway_refund_id": state.gateway_refund_id},
        }
        gateway_refund_id = state.gateway_refund_id or refund.gateway_refund_id
        if state.status == GatewayRefundStatus.SUCCEEDED and refund.status in (RefundStatus.PROCESSING,
                                                                               RefundStatus.ABNORMAL):
            refund_move(refund, to_status=RefundStatus.SUCCEEDED, actor=actor, reason="money returned", **event,
                        extra_fields={"gateway_refund_id": gateway_refund_id, "next_poll_at": None,
                                      "refunded_at": state.refunded_at or timezone.now(), "last_error": ""})
            balance_count_refunded(balance, refund)
            order_refund_state_sync(order, actor=actor)
            enqueue_shopper_email(refund.pk, "succeeded")
            metrics.refunds_finished.labels(gateway=refund.payment.gateway, status="succeeded").inc()
        elif state.status == GatewayRefundStatus.ABNORMAL and refund.status == RefundStatus.PROCESSING:
            refund_move(refund, to_status=RefundStatus.ABNORMAL, actor=actor,
                        reason="the gateway could not return the money by the original route", **event,
                        extra_fields={"gateway_refund_id": gateway_refund_id, "next_poll_at": None})
            logger.error("refund %s is ABNORMAL at %s: staff must handle it", refund.out_refund_no,
                         refund.payment.gateway)
            metrics.refunds_finished.labels(gateway=refund.payment.gateway, status="abnormal").inc()
        elif state.status in (GatewayRefundStatus.PROCESSING, GatewayRefundStatus.NOT_FOUND) and \
                state.gateway_refund_id and not refund.gateway_refund_id:
            refund.gateway_refund_id = state.gateway_refund_id
            refund.save(update_fields=["gateway_refund_id", "updated_at"])
    return refund


def _retry_refund_no(refund: Refund) -> str:
    # `<out_refund_no>T<n>`: never one of next_refund_no's `<order_no>R<nn>`.
    # Called under the order's lock, like every numbering of its refunds.
    base = refund.out_refund_no.partition("T")[0]
    attempt = 2
    while Refund.objects.filter(out_refund_no=f"{base}T{attempt}").exists():
        attempt += 1
    return f"{base}T{attempt}"


def refund_retry(*, refund_id: int, staff: Any) -> Refund:
    """Staff retry a failed refund, under the same out_refund_no where the gateway allows.

    Reserves the amount again (refused if meanwhile no longer available).
    A refund the gateway CLOSED (WeChat Pay) is over for good under its
    number, and a gateway whose capabilities say failed refund numbers are
    not reusable (UnionPay) keeps every failed one: the gateway would only
    answer the failed refund again. It is retried under a new number with a
    new submission time (no money moved under the old one); the event
    records the old number.
    """
    require_reviewer(staff)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        require_independent_reviewer(staff, shopper_id=order.shopper_id, applicant_id=refund.requested_by_id,
                                     reference=refund.out_refund_no)
        if refund.status != RefundStatus.FAILED:
            raise InvalidRefundTransition(refund.out_refund_no, refund.status, RefundStatus.PROCESSING)
        balance_reserve(balance, refund)
        extra_fields: dict[str, Any] = {"gave_up_at": None, "poll_count": 0}
        detail = {}
        reusable = get_gateway(refund.payment.gateway).capabilities.refund_number_reusable_after_failure
        if refund.gateway_status == GatewayRefundStatus.CLOSED or not reusable:
            detail = {"closed_out_refund_no": refund.out_refund_no}
            extra_fields.update(out_refund_no=_retry_refund_no(refund), gateway_status="", gateway_refund_id="",
                                submitted_at=None)
        refund_move(refund, to_status=RefundStatus.PROCESSING, actor=Actor.staff(staff), reason="retry by staff",
                    detail=detail, extra_fields=extra_fields)
        order_refund_state_sync(order, actor=Actor.staff(staff))
        enqueue_submit(refund.pk)
    return refund


def refund_settle_abnormal(*, refund_id: int, staff: Any, succeeded: bool, note: str) -> Refund:
    """Staff record how an abnormal refund was settled outside the shop."""
    require_reviewer(staff)
    if not (note or "").strip():
        raise RejectNoteRequired(f"refund {refund_id}: settled without a note")
    target = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    with transaction.atomic():
        refund, _balance, order = refund_for_update(refund_id=refund_id)
        require_independent_reviewer(staff, shopper_id=order.shopper_id, applicant_id=refund.requested_by_id,
                                     reference=refund.out_refund_no)
        if refund.status != RefundStatus.ABNORMAL:
            raise InvalidRefundTransition(refund.out_refund_no, refund.status, target)
    if not succeeded:
        return refund_fail(refund_id=refund_id, message=note, actor=Actor.staff(staff))
    state = RefundState(out_refund_no="", status=GatewayRefundStatus.SUCCEEDED, message=note)
    return refund_apply_state(refund_id=refund_id, state=state, actor=Actor.staff(staff))


def enqueue_submit(refund_id: int) -> None:
    """In the caller's transaction: the outbox intent to send the refund to its gateway."""
    outbox_enqueue("refunds.tasks.refund_submit_task", refund_id)
