"""The notification inbox: store, verify, claim once, apply; one path for every kind.

Every notification a gateway sends is stored, so nothing a gateway said is
ever lost; only the headers its protocol needs are kept
(payments/inbound.py). `notification_process` hands it to the handler
registered for its kind: payments registers the payment handler below, the
refunds app its refund handler (RefundsConfig.ready), so a payment and a
refund notification, fresh or replayed by staff ("Process again"), each go
down their own path. A handler verifies the notification with the adapter,
checks it against our records, claims its dedupe key and applies it; the
outcome is recorded there (`notification_outcome_record`, the one outcome
writer). What a handler refuses, and what fails, is recorded here, and
here the one metric is counted.

The common case, a fresh success for an open attempt of an order awaiting
payment, is one statement on PostgreSQL (notification_statement.py): one
round trip, which writes what the path below writes. Anything else, and
SQLite, takes that path.

A fresh notification costs one transaction and one commit: its claim is the
INSERT that stores it (`notification_claim`, skipping a key a copy holds),
and the payment and order locked together, their moves and events, the
outbox rows and the outcome follow in the same transaction. A success
notification is stored with the outcome it nearly always has and its
payment (`_outcome_forecast`), so the outcome's UPDATE is sent only when
the apply did something else. When the handler raises, that transaction
rolls back whole and the notification is stored alone with why (rejected,
failed), its key unclaimed so that the provider's re-send is applied:
stored whatever happens, applied at most once. (A process killed
mid-transaction stores nothing, and answers nothing: the provider sends it
again.)

The answer is the provider's own: its acknowledgement when the
notification was applied, changed nothing or repeats one already applied;
its rejection (a 4xx) when it does not verify, is not ours, names an
unknown trade or the wrong amount; its error format with a 503 when
applying failed unexpectedly (nothing was applied; the provider sends it
again). Never Django's 500 page.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Case, F, TextField, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat
from django.utils import timezone

from orders.models import OrderStatus
from payments import metrics
from payments.exceptions import AmountMismatch, InvalidNotification, NotificationRefused, UnknownTrade
from payments.gateways import get_gateway
from payments.gateways.base import Acknowledgement, Gateway, RawNotification, TradeState, TradeStatus
from payments.lock_objects import payment_and_order_for_update_by_number
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from payments.services.notification_statement import payment_notification_apply_in_one_statement
from payments.services.trade_state import trade_state_apply
from shop.actors import Actor
from shop.claims import row_insert_unless_taken

logger = logging.getLogger(__name__)

# handler(notification, gateway, raw) -> the outcome it recorded (applied,
# unchanged, duplicate). Raises InvalidNotification (does not verify),
# NotificationRefused (verified, but not about anything of ours); anything
# else is a failure.
NotificationHandler = Callable[[GatewayNotification, Gateway, RawNotification], str]
_HANDLERS: dict[str, NotificationHandler] = {}
# The common case of a kind in one statement (notification_statement.py):
# the outcome, or None when it wrote nothing and the handler decides.
OneStatement = Callable[[GatewayNotification, Gateway, RawNotification], str | None]
_ONE_STATEMENT: dict[str, OneStatement] = {NotificationKind.PAYMENT: payment_notification_apply_in_one_statement}


def notification_handler_register(kind: str, handler: NotificationHandler) -> None:
    """Name the function that applies notifications of `kind` (called in AppConfig.ready)."""
    _HANDLERS[kind] = handler


def notification_receive(*, gateway_code: str, kind: str, raw: RawNotification) -> GatewayNotification:
    """Store an incoming notification as it came (its protocol headers only), before reading it."""
    notification = _unsaved(gateway_code=gateway_code, kind=kind, raw=raw)
    notification.save()
    return notification


def _unsaved(*, gateway_code: str, kind: str, raw: RawNotification, **fields: Any) -> GatewayNotification:
    return GatewayNotification(
        gateway=gateway_code,
        kind=kind,
        body=raw.body,
        headers=dict(raw.headers),
        remote_addr=raw.remote_addr or None,
        received_at=raw.received_at,
        **fields,
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


def notification_claim(notification: GatewayNotification, *, dedupe_key: str, out_trade_no: str,
                       payment: Payment | None = None) -> GatewayNotification | None:
    """Claim the dedupe key for a verified notification, in the handler's transaction.

    Returns None when this notification holds the key now; otherwise the
    notification that holds it, this one recorded as its duplicate. A fresh
    notification is stored by its claim (one INSERT that skips a taken
    key); a stored one (processed again) takes the key with an UPDATE. A
    concurrent copy waits on the unique index until the first commits.
    """
    gateway_code = notification.gateway
    notification.dedupe_key = dedupe_key
    notification.verified = True
    notification.out_trade_no = out_trade_no
    if payment is not None:
        notification.payment = payment
    if notification.pk is None:
        if row_insert_unless_taken(notification):
            return None
        original = _claimed_by(gateway_code, dedupe_key, notification)
        notification.dedupe_key = None
        _duplicate_fields(notification, original)
        notification.save()
        return original
    try:
        with transaction.atomic():
            GatewayNotification.objects.filter(pk=notification.pk).update(
                dedupe_key=dedupe_key, verified=True, out_trade_no=out_trade_no,
                **({"payment": payment} if payment is not None else {}))
    except IntegrityError:
        original = _claimed_by(gateway_code, dedupe_key, notification)
        if original is None:  # only our own earlier claim (a re-process) holds it
            raise
        notification_outcome_record(
            notification, NotificationOutcome.DUPLICATE, detail=f"same as #{original.pk}", verified=True,
            out_trade_no=out_trade_no, duplicate_of=original, payment_id=original.payment_id,
        )
        return original
    return None


def _claimed_by(gateway_code: str, dedupe_key: str, notification: GatewayNotification) -> GatewayNotification | None:
    holders = GatewayNotification.objects.filter(gateway=gateway_code, dedupe_key=dedupe_key)
    if notification.pk is not None:
        holders = holders.exclude(pk=notification.pk)
    return holders.only("pk", "payment_id").first()


def _duplicate_fields(notification: GatewayNotification, original: GatewayNotification | None) -> None:
    notification.outcome = NotificationOutcome.DUPLICATE
    notification.outcome_detail = f"same as #{original.pk}" if original else "repeat of an earlier one"
    notification.processed_at = timezone.now()
    notification.duplicate_of = original
    if original is not None:
        notification.payment_id = original.payment_id
    elif hasattr(notification.payment_id, "resolve_expression"):
        notification.payment_id = None  # not the forecast's subquery: as it was before the forecast


def notification_outcome_record(notification: GatewayNotification, outcome: str, *, detail: str,
                                verified: bool, out_trade_no: str = "", forecast: bool = False,
                                **fields: object) -> None:
    """The row's outcome (applied, unchanged, duplicate, rejected, failed) and why.

    A replay that changes nothing keeps an earlier "applied": the row still
    says which notification moved the money. With `forecast` the row was
    stored by this transaction with a forecast outcome, which is replaced.
    """
    values: dict[str, object] = {"outcome": outcome, "outcome_detail": detail[:2000], "verified": verified,
                                 "processed_at": timezone.now(), **fields}
    if outcome == NotificationOutcome.UNCHANGED and not forecast:
        # Decided in the UPDATE itself: the row's stored outcome, not a stale copy.
        was_applied = When(outcome=NotificationOutcome.APPLIED, then=Value(NotificationOutcome.APPLIED))
        values["outcome"] = Case(was_applied, default=Value(outcome))
        values["outcome_detail"] = Case(
            When(outcome=NotificationOutcome.APPLIED,
                 then=Concat(F("outcome_detail"), Value(f" (processed again: {detail})"[:200]),
                             output_field=TextField())),
            default=Value(detail[:2000]), output_field=TextField())
    if out_trade_no:
        values["out_trade_no"] = out_trade_no
    GatewayNotification.objects.filter(pk=notification.pk).update(**values)


def notification_accept(*, gateway_code: str, kind: str, raw: RawNotification) -> Acknowledgement:
    """Store an incoming notification of `kind`, verify and apply it: one transaction (see the module)."""
    notification = _unsaved(gateway_code=gateway_code, kind=kind, raw=raw, process_count=1)
    return _process(notification, gateway=get_gateway(gateway_code))


def notification_refuse_oversized(*, gateway_code: str, kind: str, raw: RawNotification,
                                  size: int) -> Acknowledgement:
    """A body over NOTIFICATION_MAX_BODY_BYTES: recorded as rejected by its size, its content dropped."""
    notification = _unsaved(gateway_code=gateway_code, kind=kind, raw=dataclasses.replace(raw, body=b""))
    detail = f"body of {size} bytes is over the limit; not stored"
    _refused(notification, detail=detail, verified=False, fresh=True)
    logger.warning("%s %s notification #%s rejected: %s", gateway_code, kind, notification.pk, detail)
    return get_gateway(gateway_code).reject(detail)


def payment_apply_notification(*, gateway_code: str, raw: RawNotification) -> Acknowledgement:
    """Store an incoming payment notification, then verify and apply it."""
    return notification_accept(gateway_code=gateway_code, kind=NotificationKind.PAYMENT, raw=raw)


def notification_process(*, notification: GatewayNotification) -> Acknowledgement:
    """Verify and apply a stored notification through its kind's handler; safe to run again.

    Used by staff processing one again from admin: the dedupe key and each
    entity's state machine make a replay a no-op.
    """
    GatewayNotification.objects.filter(pk=notification.pk).update(process_count=F("process_count") + 1)
    return _process(notification, gateway=get_gateway(notification.gateway))


def _process(notification: GatewayNotification, *, gateway: Gateway) -> Acknowledgement:
    """Run the kind's handler in one transaction; record and answer what it refused or what failed.

    A fresh notification (not saved yet) is stored by the handler's claim,
    in that transaction: the notification, its claim, the payment, the
    order, their events and the outbox rows commit together, once. When the
    handler raises, that transaction rolls back and the notification is
    stored alone with why (rejected, failed): stored whatever happens.
    """
    handler = _HANDLERS[notification.kind]
    fresh = notification.pk is None
    # The adapter reads what is kept, on a first read as on a replay.
    raw = notification_raw(notification)
    one_statement = _ONE_STATEMENT.get(notification.kind) if fresh else None
    try:
        outcome = one_statement(notification, gateway, raw) if one_statement else None
        if outcome is None:
            with transaction.atomic():
                outcome = handler(notification, gateway, raw)
    except InvalidNotification as exc:
        _refused(notification, detail=exc.reason, verified=False, fresh=fresh)
        logger.warning("%s %s notification #%s rejected: %s", notification.gateway, notification.kind,
                       notification.pk, exc.reason)
        return gateway.reject(exc.reason)
    except NotificationRefused as exc:
        _refused(notification, detail=str(exc), verified=True, out_trade_no=exc.out_trade_no, fresh=fresh)
        log = logger.error if exc.alarming else logger.warning
        log("%s %s notification #%s for %s rejected: %s", notification.gateway, notification.kind,
            notification.pk, exc.out_trade_no, exc)
        return gateway.reject(str(exc))
    except Exception as exc:
        # Nothing was applied (the handler's transaction rolled back): answer
        # in the provider's format so that it sends the notification again.
        _refused(notification, detail=repr(exc), verified=None, outcome=NotificationOutcome.FAILED, fresh=fresh)
        logger.exception("%s %s notification #%s failed", notification.gateway, notification.kind, notification.pk)
        return dataclasses.replace(gateway.reject("failed while applying"), status=503)
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()
    return gateway.acknowledge()


def _refused(notification: GatewayNotification, *, detail: str, verified: bool | None, out_trade_no: str = "",
             outcome: str = NotificationOutcome.REJECTED, fresh: bool) -> None:
    """Record why a notification was refused or failed.

    A fresh one is stored now, alone and unclaimed (whatever its handler
    wrote rolled back with the handler's transaction, its claim included:
    the provider's re-send may claim the key); a stored one is updated.
    """
    values: dict[str, Any] = {"outcome": outcome, "outcome_detail": detail[:2000], "processed_at": timezone.now()}
    if verified is not None:
        values["verified"] = verified
    if out_trade_no:
        values["out_trade_no"] = out_trade_no
    if fresh:
        stored = GatewayNotification(
            gateway=notification.gateway, kind=notification.kind, body=notification.body,
            headers=notification.headers, remote_addr=notification.remote_addr,
            received_at=notification.received_at, process_count=notification.process_count, **values)
        stored.save()
        notification.pk = stored.pk  # what the log line names
    else:
        GatewayNotification.objects.filter(pk=notification.pk).update(**values)
    metrics.notifications.labels(gateway=notification.gateway, outcome=outcome).inc()


# -- payment notifications ---------------------------------------------------------


def payment_notification_handle(notification: GatewayNotification, gateway: Gateway, raw: RawNotification) -> str:
    """The payment handler: verify, then claim and apply (in the inbox's transaction)."""
    parsed = gateway.parse_notification(raw)
    state = TradeState(
        out_trade_no=parsed.out_trade_no,
        status=parsed.status,
        gateway_trade_no=parsed.gateway_trade_no,
        amount_minor=parsed.amount_minor,
        paid_at=parsed.paid_at,
        raw=parsed.raw,
    )
    try:
        return _claim_and_apply(notification, dedupe_key=parsed.dedupe_key, state=state,
                                requested_at=parsed.requested_at)
    except (UnknownTrade, AmountMismatch) as exc:
        raise NotificationRefused(str(exc), out_trade_no=parsed.out_trade_no,
                                  alarming=isinstance(exc, AmountMismatch)) from exc


def _claim_and_apply(notification: GatewayNotification, *, dedupe_key: str, state: TradeState,
                     requested_at: datetime | None) -> str:
    """Inside one transaction: claim the dedupe key, then apply under locks.

    The claim and the apply commit together, so a crash while applying
    releases the key and the provider's next re-send is applied in full.
    A concurrent copy waits on the unique index until this one commits,
    then finds the key taken and is recorded as a duplicate.
    """
    gateway_code = notification.gateway
    forecast = _outcome_forecast(notification, state=state)
    if notification_claim(notification, dedupe_key=dedupe_key, out_trade_no=state.out_trade_no) is not None:
        return NotificationOutcome.DUPLICATE
    # Rolled back by the caller's transaction when it raises: the claim too.
    locked = payment_and_order_for_update_by_number(gateway=gateway_code, out_trade_no=state.out_trade_no)
    if locked is None:
        raise UnknownTrade(f"no {gateway_code} payment {state.out_trade_no}")
    payment, order = locked
    if requested_at is not None and requested_at != payment.requested_at:
        # The same number at another time is another transaction (UnionPay
        # orderId + txnTime): not one we started.
        raise UnknownTrade(f"{gateway_code} payment {state.out_trade_no} was requested at "
                           f"{payment.requested_at.isoformat()}, the notification names {requested_at.isoformat()}")
    changed = trade_state_apply(payment, order, state=state, actor=Actor.gateway(gateway_code),
                                notification=notification)
    outcome = NotificationOutcome.APPLIED if changed else NotificationOutcome.UNCHANGED
    detail = f"payment {payment.status}, order {order.status}"
    if forecast is None:
        notification_outcome_record(notification, outcome, detail=detail, verified=True, payment=payment)
    elif (outcome, detail) != forecast or notification.payment_id != payment.pk:
        notification_outcome_record(notification, outcome, detail=detail, verified=True, payment=payment,
                                    forecast=True)
    else:
        notification.payment = payment  # the claim's subquery stored it
    return outcome


# What a fresh notification of a success nearly always does: stored with it
# by the claiming INSERT, so that no UPDATE of the row follows.
_SUCCESS_FORECAST = (NotificationOutcome.APPLIED, f"payment {PaymentStatus.SUCCEEDED}, order {OrderStatus.PAID}")


def _outcome_forecast(notification: GatewayNotification, *, state: TradeState) -> tuple[str, str] | None:
    """Give a fresh success notification its likely outcome before the claim; None when there is none.

    The payment is named by a subquery in the same INSERT (the attempt is
    locked only after the claim, as before). When the apply does something
    else (the order was closed or paid already, the payment succeeded
    earlier, the trade is unknown) the row is corrected in the same
    transaction, as every outcome was recorded before; a handler that
    raises rolls it back whole.
    """
    if notification.pk is not None or state.status != TradeStatus.SUCCEEDED:
        return None
    notification.outcome, notification.outcome_detail = _SUCCESS_FORECAST
    notification.processed_at = timezone.now()
    notification.payment_id = RawSQL(  # type: ignore[assignment]  # resolved by the INSERT
        _payment_by_number_sql(), (notification.gateway, state.out_trade_no), output_field=BigIntegerField())
    return _SUCCESS_FORECAST


@functools.cache
def _payment_by_number_sql() -> str:
    # Raw: building and compiling the ORM's subquery cost more CPU than the
    # UPDATE it saves. The same lookup as payment_and_order_for_update_by_number.
    quote = connection.ops.quote_name
    columns = {field.name: quote(field.column) for field in Payment._meta.concrete_fields if field.column}
    return (f"SELECT {columns['id']} FROM {quote(Payment._meta.db_table)} "
            f"WHERE {columns['gateway']} = %s AND {columns['out_trade_no']} = %s")


notification_handler_register(NotificationKind.PAYMENT, payment_notification_handle)


def _header(headers: dict[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""
