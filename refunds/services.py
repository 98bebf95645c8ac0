"""Refunds: a shopper's application, its review, its execution at the gateway.

Lifecycle (REFUND_TRANSITIONS): requested → approved | rejected;
approved → processing → succeeded | failed | abnormal. Every transition
locks the order, the payment's RefundBalance and the refund, in that order,
and writes one RefundEvent.

The money rule: approved, processing, abnormal and succeeded refunds of a
payment never add up to more than was paid. `RefundBalance.reserved_minor`
holds that sum, changed only under its row lock, and a check constraint
makes the database refuse anything above `paid_minor`. Applications are
also checked against what other open applications already ask for.

Execution is idempotent at the gateway: a refund's `out_refund_no` is made
once and sent on every attempt, so a retry after a crash, a timeout or a
lost answer can never refund twice. No gateway call happens inside a
transaction: move to processing and commit, call, then apply the answer.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from orders.models import ORDER_TRANSITIONS, Order, OrderEvent, OrderStatus
from orders.services import order_transition
from payments.exceptions import AmountMismatch, GatewayRejected, GatewayUnavailable, InvalidNotification
from payments.gateways import get_gateway
from payments.gateways.base import (
    Acknowledgement,
    GatewayRefundStatus,
    RawNotification,
    RefundRequest,
    RefundState,
)
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from refunds import metrics
from refunds.exceptions import (
    InvalidRefundAmount,
    InvalidTransition,
    RefundNotAllowed,
    RejectNoteRequired,
    ReviewNotAllowed,
    SecondApproverRequired,
)
from refunds.lock_objects import balance_for_update, refund_for_update
from refunds.models import (
    OPEN_STATUSES,
    REFUND_TRANSITIONS,
    Refund,
    RefundApproval,
    RefundBalance,
    RefundEvent,
    RefundReason,
)
from refunds.models import RefundStatus as Status
from shop.actors import Actor

logger = logging.getLogger(__name__)

SYSTEM = Actor.system("refunds")


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def _apply_transition(refund: Refund, *, to_status: str, actor: Actor, reason: str = "",
                      notification: GatewayNotification | None = None, detail: dict | None = None,
                      extra_fields: dict | None = None) -> bool:
    """Move a locked refund; False when it already had that status."""
    if refund.status == to_status:
        return False
    if to_status not in REFUND_TRANSITIONS[refund.status]:
        raise InvalidTransition(refund.out_refund_no, refund.status, to_status)
    from_status = refund.status
    refund.status = to_status
    update_fields = ["status", "updated_at"]
    for name, value in (extra_fields or {}).items():
        setattr(refund, name, value)
        update_fields.append(name)
    refund.save(update_fields=update_fields)
    _record_event(refund, from_status=from_status, actor=actor, reason=reason, notification=notification,
                  detail=detail)
    logger.info("refund %s: %s → %s (%s)", refund.out_refund_no, from_status, to_status, reason)
    return True


def _record_event(refund: Refund, *, actor: Actor, reason: str, from_status: str | None = None,
                  notification: GatewayNotification | None = None, detail: dict | None = None) -> None:
    RefundEvent.objects.create(
        refund=refund,
        from_status=refund.status if from_status is None else from_status,
        to_status=refund.status,
        **actor.stamp(),
        reason=reason,
        notification=notification,
        detail=detail or {},
    )


def _reserve(balance: RefundBalance, refund: Refund) -> None:
    """Count an approved refund against the payment; refuse going above it."""
    if refund.amount_minor > balance.refundable_minor:
        raise InvalidRefundAmount(
            f"{refund.out_refund_no}: {refund.amount_minor} fen asked, {balance.refundable_minor} left"
        )
    RefundBalance.objects.filter(pk=balance.pk).update(reserved_minor=F("reserved_minor") + refund.amount_minor)
    balance.refresh_from_db()


def _release(balance: RefundBalance, refund: Refund) -> None:
    RefundBalance.objects.filter(pk=balance.pk).update(reserved_minor=F("reserved_minor") - refund.amount_minor)
    balance.refresh_from_db()


# ---------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------


def accepted_payment(order: Order) -> Payment | None:
    """The payment that paid the order (never a duplicate or late one)."""
    return order.payments.filter(status=PaymentStatus.SUCCEEDED, refund_required="").first()


def refundable_minor(*, payment: Payment) -> int:
    """What a new application may still ask for: paid − reserved − open requests."""
    balance = RefundBalance.objects.filter(payment=payment).first()
    reserved = balance.reserved_minor if balance else 0
    requested = Refund.objects.filter(payment=payment, status=Status.REQUESTED).aggregate(
        total=Sum("amount_minor"))["total"] or 0
    return payment.amount_minor - reserved - requested


def _next_refund_no(order: Order) -> str:
    # Letters and digits only, like out_trade_no: fits every provider.
    count = Refund.objects.filter(order=order).count()
    return f"{order.order_no}R{count + 1:02d}"


def refund_request(*, order_id: int, shopper, amount_minor: int, reason: str, reason_text: str = "",
                   application_token: uuid.UUID | None = None) -> Refund:
    """A shopper applies for a refund of (part of) their order's payment.

    Runs under the order and balance locks, so a double submit or two tabs
    cannot ask for more than remains refundable. The order shows "refund
    pending". The same `application_token` twice returns the first refund.
    Raises RefundNotAllowed (not theirs, not paid) or InvalidRefundAmount
    (zero, negative, above what is refundable).
    """
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool) or amount_minor <= 0:
        raise InvalidRefundAmount()
    try:
        return _refund_request(order_id=order_id, shopper=shopper, amount_minor=amount_minor, reason=reason,
                               reason_text=reason_text, application_token=application_token)
    except IntegrityError:
        existing = Refund.objects.filter(application_token=application_token).first() if application_token else None
        if existing is None:
            raise
        return existing


def _refund_request(*, order_id, shopper, amount_minor, reason, reason_text, application_token) -> Refund:
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.shopper_id != shopper.pk or not order.accepts_refund_applications:
            raise RefundNotAllowed()
        payment = accepted_payment(order)
        if payment is None:
            raise RefundNotAllowed()
        balance_for_update(payment=payment)
        # Under the locks a concurrent submit of the same form has committed.
        if application_token and Refund.objects.filter(application_token=application_token).exists():
            return Refund.objects.get(application_token=application_token)
        if amount_minor > refundable_minor(payment=payment):
            raise InvalidRefundAmount()
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            out_refund_no=_next_refund_no(order),
            amount_minor=amount_minor,
            currency=payment.currency,
            reason=reason,
            reason_text=reason_text,
            application_token=application_token,
            requested_by=shopper,
            approvals_required=2 if amount_minor > settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR else 1,
        )
        _record_event(refund, from_status="", actor=Actor.shopper(shopper), reason=f"applied: {reason}")
        _order_refund_state_sync(order, actor=Actor.shopper(shopper))
    metrics.refunds_requested.labels(gateway=payment.gateway).inc()
    return refund


def refund_create_automatic(*, payment_id: int) -> Refund | None:
    """Give back a payment that succeeded when its order could not take it.

    Duplicate payments and payments after close (Payment.refund_required)
    are refunded in full without review. At most one such refund exists per
    payment (a repeat returns it). Returns None if nothing is to be refunded.
    """
    with transaction.atomic():
        payment = Payment.objects.select_related("order").get(pk=payment_id)
        if payment.status != PaymentStatus.SUCCEEDED or not payment.refund_required:
            return None
        order = Order.objects.select_for_update().get(pk=payment.order_id)
        balance = balance_for_update(payment=payment)
        existing = Refund.objects.filter(payment=payment, automatic=True).first()
        if existing is not None:
            return existing
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            out_refund_no=_next_refund_no(order),
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            reason=payment.refund_required,
            reason_text=f"automatic: {RefundReason(payment.refund_required).label}",
            automatic=True,
            approvals_required=0,
        )
        _record_event(refund, from_status="", actor=SYSTEM, reason=f"automatic refund: {payment.refund_required}")
        _reserve(balance, refund)
        _apply_transition(refund, to_status=Status.APPROVED, actor=SYSTEM, reason="automatic: no review needed",
                          extra_fields={"reviewed_at": timezone.now()})
        transaction.on_commit(lambda: _enqueue_submit(refund.pk))
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


# ---------------------------------------------------------------------------
# Review
# ---------------------------------------------------------------------------


def _require_reviewer(user) -> None:
    if not (user and user.is_active and user.is_staff and user.has_perm("refunds.review_refund")):
        raise ReviewNotAllowed()


def refund_approve(*, refund_id: int, reviewer, note: str = "") -> Refund:
    """Record a reviewer's approval; the last required one sends it to the gateway.

    Refunds above REFUND_SECOND_APPROVAL_ABOVE_MINOR need two approvals by
    different reviewers (maker-checker). The approval reserves the amount
    under the balance lock: two approvals that together exceed the payment
    cannot both pass. Approving again as the same reviewer is a no-op.

    Raises ReviewNotAllowed, SecondApproverRequired (a second approval by
    the same person), InvalidRefundAmount, InvalidTransition.
    """
    _require_reviewer(reviewer)
    actor = Actor.staff(reviewer)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        already = refund.approvals.filter(reviewer=reviewer).exists()
        if refund.status != Status.REQUESTED:
            if already or refund.status in (Status.APPROVED, Status.PROCESSING, Status.SUCCEEDED):
                return refund
            raise InvalidTransition(refund.out_refund_no, refund.status, Status.APPROVED)
        if already:
            raise SecondApproverRequired()
        try:
            with transaction.atomic():
                RefundApproval.objects.create(refund=refund, reviewer=reviewer, note=note)
        except IntegrityError as exc:  # the same reviewer, concurrently
            raise SecondApproverRequired() from exc
        approvals = refund.approvals.count()
        if approvals < refund.approvals_required:
            _record_event(refund, actor=actor, reason=f"approval {approvals} of {refund.approvals_required}",
                          detail={"note": note})
            return refund
        _reserve(balance, refund)
        _apply_transition(refund, to_status=Status.APPROVED, actor=actor, reason="approved",
                          detail={"note": note},
                          extra_fields={"reviewed_by": reviewer, "reviewed_at": timezone.now(),
                                        "review_note": note})
        transaction.on_commit(lambda: _enqueue_submit(refund.pk))
        transaction.on_commit(lambda: _enqueue_shopper_email(refund.pk, "approved"))
    return refund


def refund_reject(*, refund_id: int, reviewer, note: str) -> Refund:
    """requested → rejected, with the reviewer's reason (required)."""
    _require_reviewer(reviewer)
    if not (note or "").strip():
        raise RejectNoteRequired()
    actor = Actor.staff(reviewer)
    with transaction.atomic():
        refund, _balance, order = refund_for_update(refund_id=refund_id)
        if refund.status == Status.REJECTED:
            return refund
        _apply_transition(refund, to_status=Status.REJECTED, actor=actor, reason="rejected",
                          detail={"note": note},
                          extra_fields={"reviewed_by": reviewer, "reviewed_at": timezone.now(),
                                        "review_note": note.strip()})
        _order_refund_state_sync(order, actor=actor)
        transaction.on_commit(lambda: _enqueue_shopper_email(refund.pk, "rejected"))
    return refund


# ---------------------------------------------------------------------------
# Execution at the gateway
# ---------------------------------------------------------------------------


def refund_submit(*, refund_id: int) -> Refund:
    """Send an approved refund to its gateway, or send a processing one again.

    The same out_refund_no every time, so the gateway refunds at most once.
    Raises GatewayUnavailable when the outcome is unknown (the caller retries
    with backoff); a final refusal marks the refund failed.
    """
    with transaction.atomic():
        refund, _balance, _order = refund_for_update(refund_id=refund_id)
        if refund.status == Status.APPROVED:
            _apply_transition(refund, to_status=Status.PROCESSING, actor=SYSTEM, reason="sent to the gateway")
        elif refund.status != Status.PROCESSING:
            return refund
        Refund.objects.filter(pk=refund.pk).update(
            submit_count=F("submit_count") + 1,
            next_poll_at=timezone.now() + _poll_delay(0),
        )
    payment = refund.payment
    gateway = get_gateway(payment.gateway)
    request = RefundRequest(
        out_trade_no=payment.out_trade_no,
        out_refund_no=refund.out_refund_no,
        amount_minor=refund.amount_minor,
        total_minor=payment.amount_minor,
        currency=refund.currency,
        reason=RefundReason(refund.reason).label[:80] if refund.reason else "",
        notify_url=f"{settings.SITE_URL}/refunds/{payment.gateway}/notify/",
        gateway_trade_no=payment.gateway_trade_no,
    )
    try:
        state = gateway.refund(request)
    except GatewayUnavailable as exc:
        _note_gateway_error(refund, f"unavailable: {exc}")
        raise
    except (GatewayRejected, AmountMismatch) as exc:
        return _refund_fail(refund_id=refund.pk, message=str(exc), actor=Actor.gateway(payment.gateway))
    return refund_apply_state(refund_id=refund.pk, state=state, actor=Actor.gateway(payment.gateway))


def _note_gateway_error(refund: Refund, message: str) -> None:
    Refund.objects.filter(pk=refund.pk).update(last_error=message[:2000], updated_at=timezone.now())
    _record_event(refund, actor=SYSTEM, reason=message[:2000])
    logger.warning("refund %s: %s", refund.out_refund_no, message)


def _refund_fail(*, refund_id: int, message: str, actor: Actor, gateway_status: str = "") -> Refund:
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        if refund.status not in (Status.PROCESSING, Status.ABNORMAL):
            return refund
        extra_fields = {"last_error": message[:2000], "next_poll_at": None}
        if gateway_status:
            extra_fields["gateway_status"] = gateway_status
        _apply_transition(refund, to_status=Status.FAILED, actor=actor, reason=f"failed: {message}"[:2000],
                          extra_fields=extra_fields)
        _release(balance, refund)
        _order_refund_state_sync(order, actor=actor)
        transaction.on_commit(lambda: _enqueue_shopper_email(refund.pk, "failed"))
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
        return _refund_fail(refund_id=refund_id, message=state.message or "closed by the gateway", actor=actor,
                            gateway_status=GatewayRefundStatus.CLOSED)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        detail = {"gateway_status": str(state.status), "gateway_refund_id": state.gateway_refund_id}
        refund.gateway_status = state.status
        refund.save(update_fields=["gateway_status", "updated_at"])
        if state.status == GatewayRefundStatus.SUCCEEDED and refund.status in (Status.PROCESSING, Status.ABNORMAL):
            _apply_transition(
                refund, to_status=Status.SUCCEEDED, actor=actor, reason="money returned",
                notification=notification, detail=detail,
                extra_fields={"gateway_refund_id": state.gateway_refund_id or refund.gateway_refund_id,
                              "refunded_at": state.refunded_at or timezone.now(), "next_poll_at": None,
                              "last_error": ""},
            )
            RefundBalance.objects.filter(pk=balance.pk).update(
                refunded_minor=F("refunded_minor") + refund.amount_minor)
            _order_refund_state_sync(order, actor=actor)
            transaction.on_commit(lambda: _enqueue_shopper_email(refund.pk, "succeeded"))
            metrics.refunds_finished.labels(gateway=refund.payment.gateway, status="succeeded").inc()
        elif state.status == GatewayRefundStatus.ABNORMAL and refund.status == Status.PROCESSING:
            _apply_transition(refund, to_status=Status.ABNORMAL, actor=actor,
                              reason="the gateway could not return the money by the original route",
                              notification=notification, detail=detail,
                              extra_fields={"gateway_refund_id": state.gateway_refund_id or refund.gateway_refund_id,
                                            "next_poll_at": None})
            logger.error("refund %s is ABNORMAL at %s: staff must handle it", refund.out_refund_no,
                         refund.payment.gateway)
            metrics.refunds_finished.labels(gateway=refund.payment.gateway, status="abnormal").inc()
        elif state.status in (GatewayRefundStatus.PROCESSING, GatewayRefundStatus.NOT_FOUND) and state.gateway_refund_id:
            if not refund.gateway_refund_id:
                refund.gateway_refund_id = state.gateway_refund_id
                refund.save(update_fields=["gateway_refund_id", "updated_at"])
    return refund


def _retry_refund_no(refund: Refund) -> str:
    # `<out_refund_no>T<n>`: never one of _next_refund_no's `<order_no>R<nn>`.
    # Called under the order's lock, like every numbering of its refunds.
    base = refund.out_refund_no.partition("T")[0]
    attempt = 2
    while Refund.objects.filter(out_refund_no=f"{base}T{attempt}").exists():
        attempt += 1
    return f"{base}T{attempt}"


def refund_retry(*, refund_id: int, staff) -> Refund:
    """Staff retry a failed refund under the same out_refund_no.

    Reserves the amount again (refused if meanwhile no longer available).
    A refund the gateway CLOSED (WeChat Pay) is over for good under its
    number: the gateway would only answer the closed refund again. It is
    retried under a new number (no money moved under the old one); the
    event records the old number.
    """
    _require_reviewer(staff)
    with transaction.atomic():
        refund, balance, order = refund_for_update(refund_id=refund_id)
        if refund.status != Status.FAILED:
            raise InvalidTransition(refund.out_refund_no, refund.status, Status.PROCESSING)
        _reserve(balance, refund)
        extra_fields = {"gave_up_at": None, "poll_count": 0}
        detail = {}
        if refund.gateway_status == GatewayRefundStatus.CLOSED:
            detail = {"closed_out_refund_no": refund.out_refund_no}
            extra_fields.update(out_refund_no=_retry_refund_no(refund), gateway_status="", gateway_refund_id="")
        _apply_transition(refund, to_status=Status.PROCESSING, actor=Actor.staff(staff), reason="retry by staff",
                          detail=detail, extra_fields=extra_fields)
        _order_refund_state_sync(order, actor=Actor.staff(staff))
        transaction.on_commit(lambda: _enqueue_submit(refund.pk))
    return refund


def refund_settle_abnormal(*, refund_id: int, staff, succeeded: bool, note: str) -> Refund:
    """Staff record how an abnormal refund was settled outside the shop."""
    _require_reviewer(staff)
    if not (note or "").strip():
        raise RejectNoteRequired()
    if not succeeded:
        with transaction.atomic():
            refund, _b, _o = refund_for_update(refund_id=refund_id)
            if refund.status != Status.ABNORMAL:
                raise InvalidTransition(refund.out_refund_no, refund.status, Status.FAILED)
        return _refund_fail(refund_id=refund_id, message=note, actor=Actor.staff(staff))
    state = RefundState(out_refund_no="", status=GatewayRefundStatus.SUCCEEDED, message=note)
    with transaction.atomic():
        refund, _b, _o = refund_for_update(refund_id=refund_id)
        if refund.status != Status.ABNORMAL:
            raise InvalidTransition(refund.out_refund_no, refund.status, Status.SUCCEEDED)
    return refund_apply_state(refund_id=refund_id, state=state, actor=Actor.staff(staff))


# ---------------------------------------------------------------------------
# Polling
# ---------------------------------------------------------------------------


def _poll_delay(poll_count: int) -> timedelta:
    base = settings.REFUND_POLL_AFTER_SECONDS
    return timedelta(seconds=min(base * (2 ** poll_count), settings.REFUND_POLL_MAX_INTERVAL_SECONDS))


def refund_poll(*, refund_id: int) -> Refund:
    """Ask the gateway about a processing refund and apply the answer.

    A refund the gateway does not know is sent again (same number: safe).
    """
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    gateway = get_gateway(refund.payment.gateway)
    state = gateway.query_refund(out_trade_no=refund.payment.out_trade_no, out_refund_no=refund.out_refund_no)
    if state.status == GatewayRefundStatus.NOT_FOUND:
        return refund_submit(refund_id=refund_id)
    return refund_apply_state(refund_id=refund_id, state=state, actor=Actor.system("refund-poll"))


def refunds_poll_processing(*, now: datetime | None = None, limit: int = 200) -> int:
    """Poll processing refunds whose backoff ran out; give up loudly after a while."""
    now = now or timezone.now()
    due = Refund.objects.filter(status=Status.PROCESSING, gave_up_at__isnull=True, next_poll_at__lte=now)
    polled = 0
    for refund in due.order_by("next_poll_at", "pk")[:limit]:
        if refund.poll_count >= settings.REFUND_POLL_GIVE_UP_AFTER:
            Refund.objects.filter(pk=refund.pk).update(gave_up_at=now)
            _note_gateway_error(refund, f"polling gave up after {refund.poll_count} queries: staff must check")
            logger.error("refund %s still processing after %d polls: given up", refund.out_refund_no,
                         refund.poll_count)
            continue
        Refund.objects.filter(pk=refund.pk).update(poll_count=F("poll_count") + 1,
                                                   next_poll_at=now + _poll_delay(refund.poll_count + 1))
        try:
            refund_poll(refund_id=refund.pk)
        except (GatewayUnavailable, GatewayRejected, AmountMismatch) as exc:
            _note_gateway_error(refund, f"poll failed: {exc}")
        polled += 1
    return polled


# ---------------------------------------------------------------------------
# Refund notifications (WeChat Pay; Alipay answers synchronously)
# ---------------------------------------------------------------------------


def refund_apply_notification(*, gateway_code: str, raw: RawNotification) -> Acknowledgement:
    """Store a refund notification raw, verify it, apply it once.

    Answers the provider's acknowledgement when applied, unchanged or a
    duplicate; its rejection (4xx) when it does not verify, names an
    unknown refund or another amount. Unexpected errors propagate (5xx).
    """
    gateway = get_gateway(gateway_code)
    notification = GatewayNotification.objects.create(
        gateway=gateway_code, kind=NotificationKind.REFUND, body=raw.body, headers=dict(raw.headers),
        remote_addr=raw.remote_addr or None, received_at=raw.received_at,
    )
    try:
        parsed = gateway.parse_refund_notification(raw)
    except InvalidNotification as exc:
        _notification_outcome(notification, NotificationOutcome.REJECTED, exc.reason, verified=False)
        logger.warning("%s refund notification #%s rejected: %s", gateway_code, notification.pk, exc.reason)
        return gateway.reject(exc.reason)

    refund = Refund.objects.select_related("payment").filter(
        out_refund_no=parsed.out_refund_no, payment__out_trade_no=parsed.out_trade_no,
        payment__gateway=gateway_code).first()
    problem = ""
    if refund is None:
        problem = f"no refund {parsed.out_refund_no} of {parsed.out_trade_no}"
    elif parsed.amount_minor != refund.amount_minor:
        problem = f"{parsed.out_refund_no}: amount {parsed.amount_minor}, ours {refund.amount_minor}"
    elif parsed.total_minor is not None and parsed.total_minor != refund.payment.amount_minor:
        problem = f"{parsed.out_refund_no}: payment total {parsed.total_minor}, ours {refund.payment.amount_minor}"
    if problem:
        _notification_outcome(notification, NotificationOutcome.REJECTED, problem, verified=True,
                              out_trade_no=parsed.out_trade_no)
        logger.error("%s refund notification #%s rejected: %s", gateway_code, notification.pk, problem)
        return gateway.reject(problem)

    before = refund.status
    state = RefundState(out_refund_no=parsed.out_refund_no, status=parsed.status, amount_minor=parsed.amount_minor,
                        gateway_refund_id=parsed.gateway_refund_id, refunded_at=parsed.refunded_at, raw=parsed.raw)
    try:
        # The claim of the dedupe key and the apply commit together: a crash
        # in between frees the key, and the provider's re-send is applied.
        with transaction.atomic():
            try:
                with transaction.atomic():
                    GatewayNotification.objects.filter(pk=notification.pk).update(
                        dedupe_key=f"refund:{parsed.dedupe_key}", verified=True,
                        out_trade_no=parsed.out_trade_no, payment=refund.payment)
            except IntegrityError:
                duplicate = True
            else:
                duplicate = False
                after = refund_apply_state(refund_id=refund.pk, state=state, actor=Actor.gateway(gateway_code),
                                           notification=notification)
                # Its outcome commits with the apply: whoever sees the refund
                # settled also sees which notification settled it.
                outcome = NotificationOutcome.APPLIED if after.status != before else NotificationOutcome.UNCHANGED
                _notification_outcome(notification, outcome, f"refund {after.status}", verified=True,
                                      out_trade_no=parsed.out_trade_no)
    except Exception as exc:
        _notification_outcome(notification, NotificationOutcome.FAILED, repr(exc), verified=True)
        logger.exception("%s refund notification #%s failed", gateway_code, notification.pk)
        raise
    if duplicate:
        _notification_outcome(notification, NotificationOutcome.DUPLICATE, "repeat of an earlier one",
                              verified=True, out_trade_no=parsed.out_trade_no)
    return gateway.acknowledge()


def _notification_outcome(notification: GatewayNotification, outcome: str, detail: str, *, verified: bool,
                          out_trade_no: str = "") -> None:
    fields = {"outcome": outcome, "outcome_detail": detail[:2000], "verified": verified,
              "processed_at": timezone.now()}
    if out_trade_no:
        fields["out_trade_no"] = out_trade_no
    GatewayNotification.objects.filter(pk=notification.pk).update(**fields)


# ---------------------------------------------------------------------------
# The order follows its refunds
# ---------------------------------------------------------------------------


def _order_refund_state_sync(order: Order, *, actor: Actor) -> None:
    """Move a locked order to the refund state its accepted payment's refunds imply."""
    payment = accepted_payment(order)
    if payment is None:
        return
    refunds = Refund.objects.filter(payment=payment, automatic=False)
    open_exists = refunds.filter(status__in=OPEN_STATUSES).exists()
    refunded = refunds.filter(status=Status.SUCCEEDED).aggregate(total=Sum("amount_minor"))["total"] or 0
    if open_exists:
        target = OrderStatus.REFUND_PENDING
    elif refunded >= payment.amount_minor:
        target = OrderStatus.REFUNDED
    elif refunded > 0:
        target = OrderStatus.PARTIALLY_REFUNDED
    elif order.status == OrderStatus.REFUND_PENDING:
        target = _status_before_refund_pending(order)
    else:
        return
    if target != order.status and target in ORDER_TRANSITIONS[order.status]:
        order_transition(order_id=order.pk, to_status=target, actor=actor, reason="refunds changed")
        order.refresh_from_db()


def _status_before_refund_pending(order: Order) -> str:
    """Where an order goes back to when no refund came of it: a shipped order stays shipped."""
    entered = (
        OrderEvent.objects.filter(order=order, to_status=OrderStatus.REFUND_PENDING)
        .exclude(from_status=OrderStatus.REFUND_PENDING)
        .order_by("-created_at", "-pk")
        .values_list("from_status", flat=True)
        .first()
    )
    if entered in (OrderStatus.SHIPPED, OrderStatus.COMPLETED):
        return entered
    return OrderStatus.PAID


# ---------------------------------------------------------------------------
# Side effects
# ---------------------------------------------------------------------------


def _enqueue_submit(refund_id: int) -> None:
    from refunds.tasks import refund_submit_task

    refund_submit_task.delay(refund_id)


def _enqueue_shopper_email(refund_id: int, event: str) -> None:
    from refunds.tasks import refund_email_shopper_task

    refund_email_shopper_task.delay(refund_id, event)


def refund_email_shopper(*, refund_id: int, event: str) -> bool:
    """Tell the shopper about a decision or a result. Automatic refunds too."""
    from django.core.mail import send_mail
    from django.template.loader import render_to_string
    from django.utils import translation

    refund = Refund.objects.select_related("order", "order__shopper").get(pk=refund_id)
    email = refund.order.shopper.email
    if not email:
        return False
    with translation.override(settings.LANGUAGE_CODE):
        context = {"refund": refund, "order": refund.order, "event": event, "site_url": settings.SITE_URL}
        send_mail(
            subject=render_to_string("refunds/email/update_subject.txt", context).strip(),
            message=render_to_string("refunds/email/update.txt", context),
            from_email=None,
            recipient_list=[email],
        )
    return True

