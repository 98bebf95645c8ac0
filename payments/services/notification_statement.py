"""The common payment notification applied in one SQL statement (PostgreSQL).

Nearly every notification a gateway sends says that a pending attempt of an
order awaiting payment succeeded. For that case the inbox's work (store the
notification and claim its dedupe key, lock the order and the attempt, move
both, write their events and the outbox row of the confirmation email) is
one data-modifying WITH, sent outside any transaction: one round trip and
its own commit, where the ORM path (inbox.py) sends BEGIN, seven statements
and COMMIT. It writes exactly the rows the ORM path writes for that case
(tests/payments/test_notification_statement.py compares them column by
column); every column is written from the models (shop/statement_parts.py).

The statement first locks the attempt and its order, in the lock order of
payments/lock_objects.py (order, then payment), and only when they are in
the common case: the attempt is open or closed (PAYMENT_TRANSITIONS lets it
succeed), its amount and request time are the notification's, the order
awaits payment. Everything after the lock hangs on the claiming INSERT
(ON CONFLICT on the dedupe key does nothing when a copy holds it). A
concurrent copy waits on the locks, then finds the attempt succeeded and
is not the common case.

When it is not the common case (a duplicate, a closed or already paid
order, an unknown trade, a wrong amount, a status other than success) the
statement writes nothing and returns no row, and the caller runs the ORM
path, which decides, records and answers as it always has. A database
error does the same: the statement is atomic, and the ORM path meets the
error again and records it. SQLite always takes the ORM path.
"""
from __future__ import annotations

import functools
import logging
from contextlib import nullcontext
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from orders.models import ORDER_TRANSITIONS, Order, OrderEvent, OrderStatus
from payments import metrics
from payments.gateways.base import Gateway, RawNotification, TradeStatus
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
from shop.actors import Actor
from shop.lifecycle import Lifecycle
from shop.models import OutboxMessage
from shop.outbox import outbox_due_at, outbox_written
from shop.statement_parts import insert_select

logger = logging.getLogger(__name__)

CONFIRMATION_TASK = "payments.tasks.payment_send_confirmation_task"
# The attempt's statuses that may move to succeeded: every one but succeeded itself.
_PAYABLE = sorted(status for status, targets in PAYMENT_TRANSITIONS.items() if PaymentStatus.SUCCEEDED in targets)
assert OrderStatus.PAID in ORDER_TRANSITIONS[OrderStatus.PENDING_PAYMENT]
# What the notification row says when it moved the money (inbox's forecast).
APPLIED_DETAIL = f"payment {PaymentStatus.SUCCEEDED}, order {OrderStatus.PAID}"


def payment_notification_apply_in_one_statement(notification: GatewayNotification, gateway: Gateway,
                                                raw: RawNotification) -> str | None:
    """Apply a fresh success notification in one statement; None when it is not the common case.

    Raises what `parse_notification` raises (InvalidNotification); on None
    nothing was written and the inbox's ORM path takes the notification.
    """
    if connection.vendor != "postgresql" or notification.pk is not None:
        return None
    parsed = gateway.parse_notification(raw)
    if parsed.status != TradeStatus.SUCCEEDED:
        return None
    now = timezone.now()
    statement, defaults = _statement()
    params = {
        **defaults,
        "now": now,
        "gateway": notification.gateway,
        "out_trade_no": parsed.out_trade_no,
        "payable": _PAYABLE,
        "order_payable": OrderStatus.PENDING_PAYMENT,
        "amount_minor": parsed.amount_minor,
        "requested_at": parsed.requested_at,
        "body": bytes(notification.body),
        "headers": _json(GatewayNotification, "headers", dict(notification.headers)),
        "remote_addr": notification.remote_addr or None,
        "received_at": notification.received_at,
        "dedupe_key": parsed.dedupe_key,
        "process_count": notification.process_count,
        "gateway_status": str(parsed.status),
        "gateway_trade_no": parsed.gateway_trade_no,
        "paid_at": parsed.paid_at or now,
        "actor_label": notification.gateway,
        "event_detail": _json(PaymentEvent, "detail", {"gateway_status": str(parsed.status),
                                                       "gateway_trade_no": parsed.gateway_trade_no}),
        "order_reason": f"paid by {notification.gateway}",
        "outbox_due_at": outbox_due_at(now),
    }
    try:
        # Inside a caller's transaction (tests) a savepoint keeps an error
        # from spoiling it; outside, the statement is its own transaction.
        with transaction.atomic() if connection.in_atomic_block else nullcontext(), connection.cursor() as cursor:
            cursor.execute(statement, params)
            row = cursor.fetchone()
    except DatabaseError:
        logger.info("%s notification for %s: the one statement failed; the inbox applies it", notification.gateway,
                    parsed.out_trade_no, exc_info=True)
        return None
    if row is None:
        return None
    notification_id, payment_id, from_status, order_no, outbox_id = row
    notification.pk = notification_id
    notification.payment_id = payment_id
    notification.dedupe_key = parsed.dedupe_key
    notification.out_trade_no = parsed.out_trade_no
    Lifecycle.log_move("payment", parsed.out_trade_no, from_status, PaymentStatus.SUCCEEDED, "paid")
    Lifecycle.log_move("order", order_no, OrderStatus.PENDING_PAYMENT, OrderStatus.PAID, params["order_reason"])
    metrics.payments_succeeded.labels(gateway=notification.gateway).inc()
    outbox_written([(outbox_id, CONFIRMATION_TASK, [payment_id], {})])
    return NotificationOutcome.APPLIED


def _json(model: type[Any], name: str, value: object) -> object:
    return model._meta.get_field(name).get_db_prep_save(value, connection)


@functools.cache
def _statement() -> tuple[str, dict[str, Any]]:
    quote = connection.ops.quote_name

    def table(model: type[Any]) -> str:
        return quote(model._meta.db_table)

    def column(model: type[Any], name: str) -> str:
        return quote(model._meta.get_field(name).column)

    payment, order = Payment, Order
    actor = Actor.gateway("")
    notification_insert, notification_defaults = insert_select(GatewayNotification, {
        "gateway": "%(gateway)s", "kind": f"'{NotificationKind.PAYMENT}'", "body": "%(body)s",
        "headers": "%(headers)s", "remote_addr": "%(remote_addr)s", "received_at": "%(received_at)s",
        "verified": "true", "dedupe_key": "%(dedupe_key)s", "out_trade_no": "%(out_trade_no)s",
        "payment_id": "target.payment_id", "outcome": f"'{NotificationOutcome.APPLIED}'",
        "outcome_detail": f"'{APPLIED_DETAIL}'", "process_count": "%(process_count)s", "processed_at": "%(now)s",
    }, source="target", connection=connection)
    payment_event_insert, payment_event_defaults = insert_select(PaymentEvent, {
        "actor_kind": f"'{actor.kind}'", "actor_label": "%(actor_label)s", "reason": "'paid'",
        "created_at": "%(now)s", "payment_id": "target.payment_id", "from_status": "target.payment_status",
        "to_status": f"'{PaymentStatus.SUCCEEDED}'", "notification_id": "claim.id", "detail": "%(event_detail)s",
    }, source="target JOIN claim ON claim.payment_id = target.payment_id", connection=connection)
    order_event_insert, order_event_defaults = insert_select(OrderEvent, {
        "actor_kind": f"'{actor.kind}'", "actor_label": "%(actor_label)s", "reason": "%(order_reason)s",
        "created_at": "%(now)s", "order_id": "paid.order_id", "from_status": f"'{OrderStatus.PENDING_PAYMENT}'",
        "to_status": f"'{OrderStatus.PAID}'", "reference": "'payment:' || paid.id",
    }, source="paid JOIN order_paid ON order_paid.id = paid.order_id", connection=connection)
    outbox_insert, outbox_defaults = insert_select(OutboxMessage, {
        "task": f"'{CONFIRMATION_TASK}'", "args": "jsonb_build_array(paid.id)", "kwargs": "'{}'",
        "created_at": "%(now)s", "due_at": "%(outbox_due_at)s",
    }, source="paid", connection=connection)
    p = {name: column(payment, name) for name in (
        "id", "order", "gateway", "out_trade_no", "status", "amount_minor", "requested_at", "updated_at",
        "gateway_status", "gateway_trade_no", "paid_at", "refund_required")}
    o = {name: column(order, name) for name in ("id", "order_no", "status", "updated_at", "paid_at")}
    dedupe = ", ".join(column(GatewayNotification, name) for name in ("gateway", "dedupe_key"))
    statement = f"""
WITH target AS MATERIALIZED (
    SELECT p.{p['id']} AS payment_id, p.{p['status']} AS payment_status, o.{o['order_no']} AS order_no
    FROM {table(payment)} p JOIN {table(order)} o ON o.{o['id']} = p.{p['order']}
    WHERE p.{p['gateway']} = %(gateway)s AND p.{p['out_trade_no']} = %(out_trade_no)s
      AND p.{p['status']} = ANY(%(payable)s) AND o.{o['status']} = %(order_payable)s
      AND (%(amount_minor)s::bigint IS NULL OR p.{p['amount_minor']} = %(amount_minor)s::bigint)
      AND (%(requested_at)s::timestamptz IS NULL OR p.{p['requested_at']} = %(requested_at)s::timestamptz)
    LIMIT 1
    FOR UPDATE OF o, p
),
claim AS (
    {notification_insert}
    ON CONFLICT ({dedupe}) DO NOTHING
    RETURNING id, {column(GatewayNotification, 'payment')} AS payment_id
),
paid AS (
    UPDATE {table(payment)} p SET {p['status']} = '{PaymentStatus.SUCCEEDED}', {p['updated_at']} = %(now)s,
        {p['gateway_status']} = %(gateway_status)s,
        {p['gateway_trade_no']} = COALESCE(NULLIF(%(gateway_trade_no)s, ''), p.{p['gateway_trade_no']}),
        {p['paid_at']} = %(paid_at)s, {p['refund_required']} = '{RefundRequired.NO}'
    FROM claim WHERE p.{p['id']} = claim.payment_id
    RETURNING p.{p['id']} AS id, p.{p['order']} AS order_id
),
order_paid AS (
    UPDATE {table(order)} o SET {o['status']} = '{OrderStatus.PAID}', {o['updated_at']} = %(now)s,
        {o['paid_at']} = COALESCE(o.{o['paid_at']}, %(now)s)
    FROM paid WHERE o.{o['id']} = paid.order_id
    RETURNING o.{o['id']} AS id
),
payment_event AS ({payment_event_insert} RETURNING 1),
order_event AS ({order_event_insert} RETURNING 1),
outbox AS ({outbox_insert} RETURNING id)
SELECT claim.id, target.payment_id, target.payment_status, target.order_no, (SELECT id FROM outbox)
FROM claim JOIN target ON target.payment_id = claim.payment_id
"""
    return statement, {**notification_defaults, **payment_event_defaults, **order_event_defaults, **outbox_defaults}
