"""The notification inbox: store first, verify, claim once, apply.

Every notification a gateway sends is stored raw (`notification_receive`)
before anything else, so nothing a gateway said is ever lost. Payment
notifications are then verified by the adapter, checked against our
records and applied in the same transaction that claims their dedupe key
(`notification_process`); refund notifications take the same steps in
refunds/services/notifications.py. Each row ends with one outcome
(`notification_outcome_record`).
"""
from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from payments import metrics
from payments.exceptions import AmountMismatch, InvalidNotification, UnknownTrade
from payments.gateways import get_gateway
from payments.gateways.base import Acknowledgement, RawNotification, TradeState
from payments.lock_objects import payment_and_order_for_update
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment
from payments.services.trade_state import trade_state_apply
from shop.actors import Actor

logger = logging.getLogger(__name__)


def notification_receive(*, gateway_code: str, kind: str, raw: RawNotification) -> GatewayNotification:
    """Store an incoming notification exactly as it came, before reading it."""
    return GatewayNotification.objects.create(
        gateway=gateway_code,
        kind=kind,
        body=raw.body,
        headers=dict(raw.headers),
        remote_addr=raw.remote_addr or None,
        received_at=raw.received_at,
    )


def notification_raw(notification: GatewayNotification) -> RawNotification:
    """A stored notification as the adapter reads it (for a first read or a replay)."""
    return RawNotification(
        body=bytes(notification.body),
        headers=notification.headers,
        received_at=notification.received_at,
        remote_addr=notification.remote_addr or "",
        content_type=_header(notification.headers, "content-type"),
    )


def notification_outcome_record(notification: GatewayNotification, outcome: str, *, detail: str,
                                verified: bool, out_trade_no: str = "", **fields: object) -> None:
    """The row's outcome (applied, unchanged, duplicate, rejected, failed) and why."""
    values: dict[str, object] = {"outcome": outcome, "outcome_detail": detail[:2000], "verified": verified,
                                 "processed_at": timezone.now(), **fields}
    if out_trade_no:
        values["out_trade_no"] = out_trade_no
    GatewayNotification.objects.filter(pk=notification.pk).update(**values)


def payment_apply_notification(*, gateway_code: str, raw: RawNotification) -> Acknowledgement:
    """Store an incoming payment notification raw, then verify and apply it.

    Answers the provider's exact acknowledgement when the notification was
    applied, changed nothing, or repeats one already applied; the provider's
    rejection (a 4xx) when it does not verify, is not ours, names an unknown
    trade or the wrong amount. Unexpected errors propagate (a 5xx, so the
    provider sends it again) after the row is marked failed.
    """
    notification = notification_receive(gateway_code=gateway_code, kind=NotificationKind.PAYMENT, raw=raw)
    return notification_process(notification=notification)


def notification_process(*, notification: GatewayNotification) -> Acknowledgement:
    """Verify and apply a stored payment notification; safe to run again.

    Used for fresh notifications and by staff re-processing one from admin:
    the dedupe key and the payment's state machine make a replay a no-op.
    """
    gateway = get_gateway(notification.gateway)
    GatewayNotification.objects.filter(pk=notification.pk).update(process_count=F("process_count") + 1)
    try:
        parsed = gateway.parse_notification(notification_raw(notification))
    except InvalidNotification as exc:
        _finish(notification, NotificationOutcome.REJECTED, detail=exc.reason, verified=False)
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
            outcome = _claim_and_apply(notification, dedupe_key=parsed.dedupe_key, state=state,
                                       requested_at=parsed.requested_at)
    except (UnknownTrade, AmountMismatch) as exc:
        _finish(notification, NotificationOutcome.REJECTED, detail=str(exc), verified=True,
                out_trade_no=parsed.out_trade_no)
        log = logger.error if isinstance(exc, AmountMismatch) else logger.warning
        log("%s notification #%s for %s rejected: %s", notification.gateway, notification.pk,
            parsed.out_trade_no, exc)
        return gateway.reject(str(exc))
    except Exception as exc:
        _finish(notification, NotificationOutcome.FAILED, detail=repr(exc), verified=True,
                out_trade_no=parsed.out_trade_no)
        logger.exception("%s notification #%s for %s failed", notification.gateway, notification.pk,
                         parsed.out_trade_no)
        raise
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()
    return gateway.acknowledge()


def _claim_and_apply(notification: GatewayNotification, *, dedupe_key: str, state: TradeState,
                     requested_at: datetime | None) -> str:
    """Inside one transaction: claim the dedupe key, then apply under locks.

    The claim and the apply commit together, so a crash while applying
    releases the key and the provider's next re-send is applied in full.
    A concurrent copy waits on the unique index until this one commits,
    then finds the key taken and is recorded as a duplicate.
    """
    gateway_code = notification.gateway
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
        notification_outcome_record(
            notification, NotificationOutcome.DUPLICATE, detail=f"same as #{original.pk}", verified=True,
            out_trade_no=state.out_trade_no, duplicate_of=original, payment_id=original.payment_id,
        )
        return NotificationOutcome.DUPLICATE

    found = (
        Payment.objects.filter(out_trade_no=state.out_trade_no, gateway=gateway_code)
        .values_list("pk", "requested_at").first()
    )
    if found is None:
        raise UnknownTrade(f"no {gateway_code} payment {state.out_trade_no}")
    payment_id, our_requested_at = found
    if requested_at is not None and requested_at != our_requested_at:
        # The same number at another time is another transaction (UnionPay
        # orderId + txnTime): not one we started.
        raise UnknownTrade(f"{gateway_code} payment {state.out_trade_no} was requested at "
                           f"{our_requested_at.isoformat()}, the notification names {requested_at.isoformat()}")
    payment, order = payment_and_order_for_update(payment_id=payment_id)
    changed = trade_state_apply(payment, order, state=state, actor=Actor.gateway(gateway_code),
                                notification=notification)
    outcome = NotificationOutcome.APPLIED if changed else NotificationOutcome.UNCHANGED
    notification_outcome_record(notification, outcome, detail=f"payment {payment.status}, order {order.status}",
                                verified=True, payment=payment)
    return outcome


def _finish(notification: GatewayNotification, outcome: str, *, detail: str, verified: bool,
            out_trade_no: str = "") -> None:
    notification_outcome_record(notification, outcome, detail=detail, verified=verified, out_trade_no=out_trade_no)
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""
