"""Payments: attempts to pay an order, and every way their outcome reaches us.

An attempt (`Payment`) is created in our database before the gateway hears
of it, so its `out_trade_no` exists before the first call. Gateway calls are
never made inside a transaction or under a row lock: record the intent and
commit, call, then apply the answer in a new short transaction.

    attempts.py      payment_start: a new attempt, and the superseded ones closed
    inbox.py         notifications stored raw, verified, claimed once, applied,
                     each kind by its registered handler
    notification_statement.py
                     a payment notification's common case in one statement
                     (PostgreSQL), writing what inbox.py's path writes
    sync.py          payment_sync (a query), payment_close_at_gateway, and the
                     janitor's sweep of open attempts (lost notifications)
    trade_state.py   how a verified trade state changes the attempt and its order
    expiry.py        what an expired order needs from payments before it closes
    references.py    payment_reference: how a gateway is told which attempt
    confirmation.py  the shopper's payment email
    lifecycle.py     PAYMENT_TRANSITIONS moved under a lock, with events

Callers import from `payments.services`; the modules are the map.
"""
from payments.services.attempts import out_trade_no_for, payment_start
from payments.services.confirmation import payment_send_confirmation
from payments.services.expiry import order_attempts_close
from payments.services.inbox import (
    notification_accept,
    notification_claim,
    notification_handler_register,
    notification_outcome_record,
    notification_process,
    notification_raw,
    notification_receive,
    notification_refuse_oversized,
    payment_apply_notification,
)
from payments.services.lifecycle import PAYMENT_LIFECYCLE, payment_move, payment_record_event
from payments.services.references import payment_reference
from payments.services.sync import (
    JANITOR,
    payment_close_at_gateway,
    payment_query_delay,
    payment_sync,
    payment_sync_if_due,
    payments_query_stale,
)
from payments.services.trade_state import payment_announce_refund_needed, trade_state_apply

__all__ = [
    "JANITOR",
    "PAYMENT_LIFECYCLE",
    "notification_accept",
    "notification_claim",
    "notification_handler_register",
    "notification_outcome_record",
    "notification_process",
    "notification_raw",
    "notification_receive",
    "notification_refuse_oversized",
    "order_attempts_close",
    "payment_announce_refund_needed",
    "out_trade_no_for",
    "payment_apply_notification",
    "payment_close_at_gateway",
    "payment_move",
    "payment_query_delay",
    "payment_record_event",
    "payment_reference",
    "payment_send_confirmation",
    "payment_start",
    "payment_sync",
    "payment_sync_if_due",
    "payments_query_stale",
    "trade_state_apply",
]
