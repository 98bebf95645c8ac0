"""Payments: attempts to pay an order, and every way their outcome reaches us.

An attempt (`Payment`) is created in our database before the gateway hears
of it, so its `out_trade_no` exists before the first call. Gateway calls are
never made inside a transaction or under a row lock: record the intent and
commit, call, then apply the answer in a new short transaction.

Results arrive by three paths that all end in `_apply_trade_state`, which
runs with the order and the payment locked (always in that order) and is
idempotent: a verified notification (`payment_apply_notification`), a query
(`payment_sync`, used by the return page, the QR page and the janitor), and
a close that came too late (`payment_close_at_gateway`).

A payment that succeeds when its order can no longer take it (already paid
through another attempt, or closed) still succeeds: the money is real. It
is flagged with `refund_required` for the refunds app to give back.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from orders.exceptions import InvalidTransition as OrderInvalidTransition
from orders.lock_objects import order_for_update
from orders.models import Order, OrderStatus
from orders.services import order_close, order_mark_paid
from payments import metrics
from payments.exceptions import (
    AmountMismatch,
    GatewayError,
    GatewayRejected,
    GatewayUnavailable,
    InvalidNotification,
    InvalidTransition,
    PaymentError,
)
from payments.gateways import get_gateway
from payments.gateways.base import (
    Acknowledgement,
    CloseOutcome,
    PaymentAction,
    PaymentRequest,
    PayMethod,
    RawNotification,
    TradeState,
    TradeStatus,
)
from payments.lock_objects import payment_and_order_for_update
from payments.models import (
    PAYMENT_TRANSITIONS,
    GatewayNotification,
    NotificationKind,
    NotificationOutcome,
    Payment,
    PaymentEvent,
    PaymentStatus,
    RefundRequired,
)
from payments.selectors import order_list_expired_unpaid, payment_list_stale_open
from payments.signals import payment_needs_refund
from shop.actors import Actor

logger = logging.getLogger(__name__)

JANITOR = Actor.system("janitor")


class OrderNotPayable(PaymentError):
    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.order_no} is {order.status}, not payable")
        self.order = order


class UnsupportedMethod(PaymentError):
    pass


class UnknownTrade(PaymentError):
    pass


# ---------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------


def _apply_transition(
    payment: Payment,
    *,
    to_status: str,
    actor: Actor,
    reason: str = "",
    notification: GatewayNotification | None = None,
    detail: dict | None = None,
    extra_fields: dict | None = None,
) -> bool:
    """Move a locked payment; False when it already had that status."""
    if payment.status == to_status:
        return False
    if to_status not in PAYMENT_TRANSITIONS[payment.status]:
        raise InvalidTransition(payment.out_trade_no, payment.status, to_status)
    from_status = payment.status
    payment.status = to_status
    update_fields = ["status", "updated_at"]
    for name, value in (extra_fields or {}).items():
        setattr(payment, name, value)
        update_fields.append(name)
    payment.save(update_fields=update_fields)
    PaymentEvent.objects.create(
        payment=payment,
        from_status=from_status,
        to_status=to_status,
        **actor.stamp(),
        reason=reason,
        notification=notification,
        detail=detail or {},
    )
    logger.info("payment %s: %s → %s (%s)", payment.out_trade_no, from_status, to_status, reason)
    return True


def _record_event(payment: Payment, *, actor: Actor, reason: str, detail: dict | None = None,
                  notification: GatewayNotification | None = None) -> None:
    """An event that is not a status change (a flag, a gateway exchange)."""
    PaymentEvent.objects.create(
        payment=payment,
        from_status=payment.status,
        to_status=payment.status,
        **actor.stamp(),
        reason=reason,
        notification=notification,
        detail=detail or {},
    )


# ---------------------------------------------------------------------------
# Starting a payment
# ---------------------------------------------------------------------------


def out_trade_no_for(order: Order, attempt_no: int) -> str:
    # Letters and digits only: UnionPay forbids "-" and "_", WeChat wants 6-32
    # characters, Alipay up to 64.
    return f"{order.order_no}P{attempt_no:02d}"


def payment_start(
    *, order_id: int, gateway_code: str, method: PayMethod, actor: Actor, client_ip: str = ""
) -> tuple[Payment, PaymentAction]:
    """Create a new attempt for a payable order and ask the gateway how to pay.

    The attempt (with its out_trade_no) is committed before the gateway call.
    When the gateway refuses or cannot be reached, the attempt is marked
    failed and the error re-raised. Earlier open attempts of the order are
    closed at their gateways afterwards, so only the newest can be paid.

    Raises OrderNotPayable, UnsupportedMethod, GatewayNotConfigured,
    GatewayError.
    """
    gateway = get_gateway(gateway_code)
    if method not in gateway.methods:
        raise UnsupportedMethod(f"{gateway_code} cannot pay by {method}")

    with transaction.atomic():
        order = order_for_update(order_id=order_id)
        if not order.is_payable or order.expires_at <= timezone.now():
            raise OrderNotPayable(order)
        last = order.payments.aggregate(last=Max("attempt_no"))["last"] or 0
        payment = Payment.objects.create(
            order=order,
            attempt_no=last + 1,
            gateway=gateway_code,
            method=method,
            out_trade_no=out_trade_no_for(order, last + 1),
            amount_minor=order.total_minor,
            currency=order.currency,
            expires_at=order.expires_at,
            next_query_at=timezone.now() + _query_delay(0),
        )
        PaymentEvent.objects.create(
            payment=payment, from_status="", to_status=PaymentStatus.CREATED,
            **actor.stamp(),
            reason=f"{gateway_code} {method}",
        )

    request = PaymentRequest(
        out_trade_no=payment.out_trade_no,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        subject=_subject(order),
        method=method,
        notify_url=f"{settings.SITE_URL}/payments/{gateway_code}/notify/",
        return_url=f"{settings.SITE_URL}/payments/{gateway_code}/return/",
        quit_url=f"{settings.SITE_URL}/orders/{order.order_no}/pay/",
        expires_at=payment.expires_at,
        client_ip=client_ip,
        description=f"Order {order.order_no}",
    )
    try:
        action = gateway.start_payment(request)
    except GatewayError as exc:
        with transaction.atomic():
            locked, _ = payment_and_order_for_update(payment_id=payment.pk)
            _apply_transition(locked, to_status=PaymentStatus.FAILED, actor=Actor.gateway(gateway_code),
                              reason=f"could not start: {exc}")
        raise

    with transaction.atomic():
        locked, _ = payment_and_order_for_update(payment_id=payment.pk)
        _apply_transition(
            locked,
            to_status=PaymentStatus.PENDING,
            actor=actor,
            reason="handed to the gateway",
            extra_fields={"qr_content": action.qr_content},
        )
        transaction.on_commit(
            lambda: _enqueue_close_superseded(order_id=order.pk, keep_payment_id=payment.pk)
        )
    return locked, action


def _subject(order: Order) -> str:
    names = list(order.lines.values_list("name", flat=True)[:3])
    subject = ", ".join(names)
    return subject[:120] or order.order_no


def _enqueue_close_superseded(*, order_id: int, keep_payment_id: int) -> None:
    from payments.tasks import payment_close_superseded_task

    superseded = list(
        Payment.objects.filter(order_id=order_id, status__in=(PaymentStatus.CREATED, PaymentStatus.PENDING))
        .exclude(pk=keep_payment_id)
        .values_list("pk", flat=True)
    )
    for payment_id in superseded:
        payment_close_superseded_task.delay(payment_id)


# ---------------------------------------------------------------------------
# Applying a gateway's word
# ---------------------------------------------------------------------------


def _apply_trade_state(
    payment: Payment,
    order: Order,
    *,
    state: TradeState,
    actor: Actor,
    notification: GatewayNotification | None = None,
) -> bool:
    """Apply a verified trade state to a locked payment and its locked order.

    Returns True when something changed. Raises AmountMismatch when the
    gateway reports an amount other than the attempt's.
    """
    detail = {"gateway_status": str(state.status), "gateway_trade_no": state.gateway_trade_no}
    if payment.gateway_status != state.status:
        payment.gateway_status = state.status
        payment.save(update_fields=["gateway_status", "updated_at"])

    if state.status == TradeStatus.SUCCEEDED:
        if state.amount_minor is not None and state.amount_minor != payment.amount_minor:
            raise AmountMismatch(
                f"{payment.out_trade_no}: gateway says {state.amount_minor} fen, attempt is {payment.amount_minor}"
            )
        if payment.status == PaymentStatus.SUCCEEDED:
            return False
        # Decided before the move: the database accepts a second succeeded
        # payment for an order only when it carries its refund reason.
        refund_required = _refund_required_for(order)
        _apply_transition(
            payment,
            to_status=PaymentStatus.SUCCEEDED,
            actor=actor,
            reason="paid",
            notification=notification,
            detail=detail,
            extra_fields={
                "gateway_trade_no": state.gateway_trade_no or payment.gateway_trade_no,
                "paid_at": state.paid_at or timezone.now(),
                "refund_required": refund_required,
            },
        )
        _settle_order(payment, order, actor=actor)
        return True

    if state.status in (TradeStatus.CLOSED, TradeStatus.FAILED) and payment.is_open:
        target = PaymentStatus.CLOSED if state.status == TradeStatus.CLOSED else PaymentStatus.FAILED
        return _apply_transition(payment, to_status=target, actor=actor, reason=f"gateway: {state.status}",
                                 notification=notification, detail=detail)

    if state.status == TradeStatus.PENDING and payment.status == PaymentStatus.CREATED:
        return _apply_transition(payment, to_status=PaymentStatus.PENDING, actor=actor,
                                 reason="gateway: pending", notification=notification, detail=detail)
    return False


def _refund_required_for(order: Order) -> str:
    if order.status == OrderStatus.PENDING_PAYMENT:
        return RefundRequired.NO
    return RefundRequired.LATE if order.status == OrderStatus.CLOSED else RefundRequired.DUPLICATE


def _settle_order(payment: Payment, order: Order, *, actor: Actor) -> None:
    """A payment just succeeded: pay the order, or record why it must be refunded."""
    if not payment.refund_required:
        order_mark_paid(order_id=order.pk, actor=actor, reason=f"paid by {payment.gateway}",
                        reference=f"payment:{payment.pk}")
        metrics.payments_succeeded.labels(gateway=payment.gateway).inc()
        transaction.on_commit(lambda: _enqueue_confirmation(payment.pk))
        return
    reason = RefundRequired(payment.refund_required)
    _record_event(payment, actor=actor, reason=f"refund required: {reason.value}")
    transaction.on_commit(lambda: _announce_refund_needed(payment.pk))
    metrics.payments_needing_refund.labels(gateway=payment.gateway, reason=reason.value).inc()
    logger.warning(
        "payment %s succeeded but order %s is %s: %s, to be refunded",
        payment.out_trade_no, order.order_no, order.status, reason.value,
    )


def _announce_refund_needed(payment_id: int) -> None:
    # The refunds app builds on payments, not the other way round: it listens.
    # Its periodic sweep also starts any refund missed here.
    payment_needs_refund.send(sender=Payment, payment_id=payment_id)


def _enqueue_confirmation(payment_id: int) -> None:
    from payments.tasks import payment_send_confirmation_task

    payment_send_confirmation_task.delay(payment_id)


# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------


def payment_apply_notification(*, gateway_code: str, raw: RawNotification) -> Acknowledgement:
    """Store an incoming payment notification raw, then verify and apply it.

    Answers the provider's exact acknowledgement when the notification was
    applied, changed nothing, or repeats one already applied; the provider's
    rejection (a 4xx) when it does not verify, is not ours, names an unknown
    trade or the wrong amount. Unexpected errors propagate (a 5xx, so the
    provider sends it again) after the row is marked failed.
    """
    notification = GatewayNotification.objects.create(
        gateway=gateway_code,
        kind=NotificationKind.PAYMENT,
        body=raw.body,
        headers=dict(raw.headers),
        remote_addr=raw.remote_addr or None,
        received_at=raw.received_at,
    )
    return notification_process(notification=notification)


def notification_process(*, notification: GatewayNotification) -> Acknowledgement:
    """Verify and apply a stored payment notification; safe to run again.

    Used for fresh notifications and by staff re-processing one from admin:
    the dedupe key and the payment's state machine make a replay a no-op.
    """
    gateway = get_gateway(notification.gateway)
    raw = RawNotification(
        body=bytes(notification.body),
        headers=notification.headers,
        received_at=notification.received_at,
        remote_addr=notification.remote_addr or "",
        content_type=_header(notification.headers, "content-type"),
    )
    GatewayNotification.objects.filter(pk=notification.pk).update(process_count=F("process_count") + 1)
    try:
        parsed = gateway.parse_notification(raw)
    except InvalidNotification as exc:
        _notification_outcome(notification, NotificationOutcome.REJECTED, detail=exc.reason, verified=False)
        logger.warning("%s notification #%s rejected: %s", notification.gateway, notification.pk, exc.reason)
        return gateway.reject(exc.reason)

    state = TradeState(
        out_trade_no=parsed.out_trade_no,
        status=parsed.status,
        gateway_trade_no=parsed.gateway_trade_no,
        amount_minor=parsed.amount_minor,
        paid_at=parsed.paid_at,
        raw=parsed.raw,
    )
    try:
        with transaction.atomic():
            outcome = _claim_and_apply(notification, gateway_code=notification.gateway,
                                       dedupe_key=parsed.dedupe_key, state=state)
    except (UnknownTrade, AmountMismatch) as exc:
        _notification_outcome(notification, NotificationOutcome.REJECTED, detail=str(exc), verified=True,
                              out_trade_no=parsed.out_trade_no)
        log = logger.error if isinstance(exc, AmountMismatch) else logger.warning
        log("%s notification #%s for %s rejected: %s", notification.gateway, notification.pk,
            parsed.out_trade_no, exc)
        return gateway.reject(str(exc))
    except Exception as exc:
        _notification_outcome(notification, NotificationOutcome.FAILED, detail=repr(exc), verified=True,
                              out_trade_no=parsed.out_trade_no)
        logger.exception("%s notification #%s for %s failed", notification.gateway, notification.pk,
                         parsed.out_trade_no)
        raise
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()
    return gateway.acknowledge()


def _claim_and_apply(notification: GatewayNotification, *, gateway_code: str, dedupe_key: str,
                     state: TradeState) -> str:
    """Inside one transaction: claim the dedupe key, then apply under locks.

    The claim and the apply commit together, so a crash while applying
    releases the key and the provider's next re-send is applied in full.
    A concurrent copy waits on the unique index until this one commits,
    then finds the key taken and is recorded as a duplicate.
    """
    try:
        with transaction.atomic():
            GatewayNotification.objects.filter(pk=notification.pk).update(
                dedupe_key=dedupe_key, verified=True, out_trade_no=state.out_trade_no
            )
    except IntegrityError:
        original = GatewayNotification.objects.filter(
            gateway=gateway_code, dedupe_key=dedupe_key
        ).exclude(pk=notification.pk).first()
        if original is None:  # only our own earlier claim (a re-process) holds it
            raise
        GatewayNotification.objects.filter(pk=notification.pk).update(
            verified=True, out_trade_no=state.out_trade_no, outcome=NotificationOutcome.DUPLICATE,
            duplicate_of=original, payment_id=original.payment_id, processed_at=timezone.now(),
            outcome_detail=f"same as #{original.pk}",
        )
        return NotificationOutcome.DUPLICATE

    payment_id = (
        Payment.objects.filter(out_trade_no=state.out_trade_no, gateway=gateway_code)
        .values_list("pk", flat=True).first()
    )
    if payment_id is None:
        raise UnknownTrade(f"no {gateway_code} payment {state.out_trade_no}")
    payment, order = payment_and_order_for_update(payment_id=payment_id)
    changed = _apply_trade_state(payment, order, state=state, actor=Actor.gateway(gateway_code),
                                 notification=notification)
    outcome = NotificationOutcome.APPLIED if changed else NotificationOutcome.UNCHANGED
    GatewayNotification.objects.filter(pk=notification.pk).update(
        payment=payment, outcome=outcome, processed_at=timezone.now(),
        outcome_detail=f"payment {payment.status}, order {order.status}",
    )
    return outcome


def _notification_outcome(notification: GatewayNotification, outcome: str, *, detail: str,
                          verified: bool, out_trade_no: str = "") -> None:
    fields = {"outcome": outcome, "outcome_detail": detail[:2000], "verified": verified,
              "processed_at": timezone.now()}
    if out_trade_no:
        fields["out_trade_no"] = out_trade_no
    GatewayNotification.objects.filter(pk=notification.pk).update(**fields)
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()


def _header(headers: dict, name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


# ---------------------------------------------------------------------------
# Asking the gateway
# ---------------------------------------------------------------------------


def payment_sync(*, payment_id: int, actor: Actor) -> Payment:
    """Query the gateway for an attempt and apply what it says.

    Raises GatewayError when the gateway cannot answer; AmountMismatch when
    it reports a different amount (nothing is applied).
    """
    payment = Payment.objects.get(pk=payment_id)
    gateway = get_gateway(payment.gateway)
    state = gateway.query_payment(payment.out_trade_no)
    with transaction.atomic():
        payment, order = payment_and_order_for_update(payment_id=payment_id)
        payment.last_queried_at = timezone.now()
        payment.save(update_fields=["last_queried_at", "updated_at"])
        _apply_trade_state(payment, order, state=state, actor=actor)
    return payment


def payment_sync_if_due(*, payment_id: int, actor: Actor, min_interval: timedelta) -> Payment:
    """`payment_sync`, at most once per `min_interval` across all processes.

    For pages that poll (the QR page, the confirming page): a gateway error
    is logged and the page shows what we know.
    """
    now = timezone.now()
    claimed = Payment.objects.filter(
        Q(last_queried_at__isnull=True) | Q(last_queried_at__lte=now - min_interval),
        pk=payment_id,
        status__in=(PaymentStatus.CREATED, PaymentStatus.PENDING),
    ).update(last_queried_at=now)
    if claimed:
        try:
            return payment_sync(payment_id=payment_id, actor=actor)
        except (GatewayError, AmountMismatch) as exc:
            logger.warning("payment %s: query failed: %s", payment_id, exc)
    return Payment.objects.get(pk=payment_id)


def payment_close_at_gateway(*, payment_id: int, actor: Actor, reason: str) -> Payment:
    """Close an open attempt at its gateway, then locally.

    If the gateway says it was paid in the meantime, the payment is queried
    and applied instead. Raises GatewayError when the gateway cannot answer
    (the attempt stays open; try again later).
    """
    payment = Payment.objects.get(pk=payment_id)
    if not payment.is_open:
        return payment
    gateway = get_gateway(payment.gateway)
    outcome = gateway.close_payment(payment.out_trade_no)
    if outcome == CloseOutcome.ALREADY_PAID:
        return payment_sync(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payment, _order = payment_and_order_for_update(payment_id=payment_id)
        if payment.is_open:
            _apply_transition(payment, to_status=PaymentStatus.CLOSED, actor=actor,
                              reason=f"{reason} (gateway: {outcome})")
    return payment


# ---------------------------------------------------------------------------
# The janitor
# ---------------------------------------------------------------------------


def _query_delay(query_count: int) -> timedelta:
    """Back off between queries of one attempt: base × 2^n, capped."""
    base = settings.PAYMENT_QUERY_AFTER_SECONDS
    return timedelta(seconds=min(base * (2 ** query_count), settings.PAYMENT_QUERY_MAX_INTERVAL_SECONDS))


def payments_query_stale(*, now: datetime | None = None, limit: int = 200) -> int:
    """Ask the gateways about open attempts a few minutes old; heal lost notifications.

    Each attempt is queried with exponential backoff. Returns how many were
    queried.
    """
    now = now or timezone.now()
    created_before = now - timedelta(seconds=settings.PAYMENT_QUERY_AFTER_SECONDS)
    queried = 0
    for payment in payment_list_stale_open(created_before=created_before, now=now, limit=limit):
        Payment.objects.filter(pk=payment.pk).update(
            query_count=F("query_count") + 1,
            next_query_at=now + _query_delay(payment.query_count + 1),
        )
        try:
            payment_sync(payment_id=payment.pk, actor=JANITOR)
        except (GatewayError, AmountMismatch) as exc:
            logger.warning("janitor: query of %s failed: %s", payment.out_trade_no, exc)
        queried += 1
    return queried


def order_expire(*, order_id: int, now: datetime | None = None) -> Order:
    """Close an unpaid order past its deadline: its open attempts at their
    gateways first, then the order itself (releasing its stock).

    If a gateway cannot be reached, or refuses to close this soon after the
    attempt was created, the order stays open until the next run. If an
    attempt turns out to be paid, the order is paid instead of closed. If a
    gateway refuses the close for good, the refusal is written to the
    attempt's log and the order closes anyway: holding its stock forever
    would protect nothing, because the attempt stays open and queried, and
    should it ever be paid, that payment is late and refunded automatically.
    """
    now = now or timezone.now()
    order = Order.objects.get(pk=order_id)
    if order.status != OrderStatus.PENDING_PAYMENT or order.expires_at > now:
        return order
    for payment in order.payments.filter(status__in=(PaymentStatus.CREATED, PaymentStatus.PENDING)):
        gateway = get_gateway(payment.gateway)
        if now < payment.created_at + gateway.min_close_delay:
            logger.info("order %s: %s too young to close at %s", order.order_no, payment.out_trade_no,
                        payment.gateway)
            return order
        try:
            payment = payment_close_at_gateway(payment_id=payment.pk, actor=JANITOR, reason="order timed out")
        except GatewayUnavailable as exc:
            logger.warning("order %s: closing %s failed, retrying later: %s", order.order_no,
                           payment.out_trade_no, exc)
            return order
        except GatewayRejected as exc:
            _record_event(payment, actor=JANITOR, reason=f"the gateway refused to close it: {exc}"[:2000],
                          detail={"close_refused": str(exc)[:500]})
            logger.error("order %s: %s refused to close %s; closing the order, the attempt stays watched: %s",
                         order.order_no, payment.gateway, payment.out_trade_no, exc)
            continue
        if payment.status == PaymentStatus.SUCCEEDED:
            return Order.objects.get(pk=order_id)
    try:
        return order_close(order_id=order_id, actor=JANITOR, reason="payment timeout")
    except OrderInvalidTransition:
        # Paid between our check and the close: the payment won.
        return Order.objects.get(pk=order_id)


def orders_close_expired(*, now: datetime | None = None, limit: int = 200) -> int:
    """Run `order_expire` for unpaid orders past their deadline; returns how many closed."""
    now = now or timezone.now()
    closed = 0
    for order in order_list_expired_unpaid(now=now, limit=limit):
        try:
            if order_expire(order_id=order.pk, now=now).status == OrderStatus.CLOSED:
                closed += 1
        except Exception:
            logger.exception("janitor: could not expire order %s", order.order_no)
    return closed


def payment_send_confirmation(*, payment_id: int) -> bool:
    """Email the shopper that their payment arrived; at most once per payment.

    Returns False when it was already sent. A failure to send un-claims it
    and re-raises so the task retries.
    """
    from django.core.mail import send_mail
    from django.template.loader import render_to_string
    from django.utils import translation

    claimed = Payment.objects.filter(pk=payment_id, confirmation_sent_at__isnull=True).update(
        confirmation_sent_at=timezone.now()
    )
    if not claimed:
        return False
    payment = Payment.objects.select_related("order", "order__shopper").get(pk=payment_id)
    shopper = payment.order.shopper
    if not shopper.email:
        return False
    try:
        with translation.override(settings.LANGUAGE_CODE):
            context = {"payment": payment, "order": payment.order, "site_url": settings.SITE_URL}
            send_mail(
                subject=render_to_string("payments/email/confirmation_subject.txt", context).strip(),
                message=render_to_string("payments/email/confirmation.txt", context),
                from_email=None,
                recipient_list=[shopper.email],
            )
    except Exception:
        Payment.objects.filter(pk=payment_id).update(confirmation_sent_at=None)
        raise
    return True
