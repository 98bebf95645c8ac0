"""Refunds: a shopper's application, its review, its execution at the gateway.

Lifecycle (REFUND_TRANSITIONS): requested → approved | rejected;
approved → processing → succeeded | failed | abnormal. Every transition
locks the order, the payment's RefundBalance and the refund, in that order,
and writes one RefundEvent.

    applications.py   refund_request: a shopper applies (amount, reason)
    review.py         refund_approve (maker-checker), refund_reject
    execution.py      refund_submit to the gateway, refund_apply_state of its
                      answer, staff retry and settlement of abnormal refunds
    polling.py        refunds the gateway is still processing
    notifications.py  refund notifications through the payments inbox
    automatic.py      refunds of duplicate and late payments, without review
    stalled.py        approved refunds that never reached the gateway: sent
                      again, and an alarm when they stay stuck
    emails.py         the shopper's refund emails
    lifecycle.py      REFUND_TRANSITIONS, the balance (money) rule, and what
                      the order is told about its refunds

Callers import from `refunds.services`; the modules are the map.
"""
from refunds.services.applications import refund_request, refundable_minor
from refunds.services.automatic import refund_create_automatic, refunds_create_automatic_pending
from refunds.services.emails import refund_email_shopper
from refunds.services.execution import (
    refund_apply_state,
    refund_fail,
    refund_retry,
    refund_settle_abnormal,
    refund_submit,
)
from refunds.services.lifecycle import REFUND_LIFECYCLE
from refunds.services.notifications import refund_apply_notification
from refunds.services.polling import refund_poll, refunds_poll_processing
from refunds.services.review import refund_approve, refund_reject
from refunds.services.stalled import refund_list_stalled, refunds_resubmit_stalled

__all__ = [
    "REFUND_LIFECYCLE",
    "refund_apply_notification",
    "refund_apply_state",
    "refund_approve",
    "refund_create_automatic",
    "refund_email_shopper",
    "refund_fail",
    "refund_list_stalled",
    "refund_poll",
    "refund_reject",
    "refund_request",
    "refund_retry",
    "refund_settle_abnormal",
    "refund_submit",
    "refundable_minor",
    "refunds_create_automatic_pending",
    "refunds_poll_processing",
    "refunds_resubmit_stalled",
]
