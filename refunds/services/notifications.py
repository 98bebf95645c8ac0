"""Refund notifications (WeChat Pay, UnionPay; Alipay answers refunds synchronously).

They go through the one inbox (payments/services/inbox.py), which hands
every notification of kind "refund" to `refund_notification_handle`,
registered in RefundsConfig.ready: fresh or processed again by staff, a
refund notification is verified by the adapter, checked against the refund,
claimed once and applied in one transaction.
"""
from __future__ import annotations

import logging

from payments.exceptions import NotificationRefused
from payments.gateways.base import Acknowledgement, Gateway, RawNotification, RefundNotification, RefundState
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome
from payments.services import notification_accept, notification_claim, notification_outcome_record
from refunds.models import Refund
from refunds.services.execution import refund_apply_state
from shop.actors import Actor

logger = logging.getLogger(__name__)


def refund_apply_notification(*, gateway_code: str, raw: RawNotification) -> Acknowledgement:
    """Store a refund notification raw, verify it, apply it once (the inbox's answer)."""
    return notification_accept(gateway_code=gateway_code, kind=NotificationKind.REFUND, raw=raw)


def refund_notification_handle(notification: GatewayNotification, gateway: Gateway, raw: RawNotification) -> str:
    """The inbox's handler for refund notifications; returns the outcome it recorded.

    Raises InvalidNotification when it does not verify, NotificationRefused
    when it names an unknown refund or another amount.
    """
    parsed = gateway.parse_refund_notification(raw)
    # Our refund numbers are unique: the number finds the refund, and what
    # else the notification says of the payment must agree with it.
    refund = Refund.objects.select_related("payment").filter(
        out_refund_no=parsed.out_refund_no, payment__gateway=notification.gateway).first()
    problem = _mismatch(parsed, refund)
    if problem or refund is None:
        raise NotificationRefused(problem, out_trade_no=refund.payment.out_trade_no if refund else parsed.out_trade_no,
                                  alarming=True)
    return _claim_and_apply(notification, refund=refund, parsed=parsed, actor=Actor.gateway(notification.gateway))


def _mismatch(parsed: RefundNotification, refund: Refund | None) -> str:
    """Why a verified notification cannot be about this refund ("" when it can)."""
    payment_named = parsed.out_trade_no or parsed.gateway_trade_no
    if refund is None:
        return f"no refund {parsed.out_refund_no} of {payment_named}"
    if parsed.out_trade_no and parsed.out_trade_no != refund.payment.out_trade_no:
        return f"{parsed.out_refund_no} refunds {refund.payment.out_trade_no}, not {parsed.out_trade_no}"
    if parsed.gateway_trade_no and parsed.gateway_trade_no != refund.payment.gateway_trade_no:
        return f"{parsed.out_refund_no} refunds gateway trade {refund.payment.gateway_trade_no!r}, " \
               f"not {parsed.gateway_trade_no!r}"
    if not payment_named:
        return f"{parsed.out_refund_no}: the notification names no payment"
    if parsed.requested_at is not None and parsed.requested_at != refund.submitted_at:
        # The same number at another time is another transaction (UnionPay).
        return f"{parsed.out_refund_no} was submitted at {refund.submitted_at}, the notification names " \
               f"{parsed.requested_at}"
    if parsed.amount_minor != refund.amount_minor:
        return f"{parsed.out_refund_no}: amount {parsed.amount_minor}, ours {refund.amount_minor}"
    if parsed.total_minor is not None and parsed.total_minor != refund.payment.amount_minor:
        return f"{parsed.out_refund_no}: payment total {parsed.total_minor}, ours {refund.payment.amount_minor}"
    return ""


def _claim_and_apply(notification: GatewayNotification, *, refund: Refund, parsed: RefundNotification,
                     actor: Actor) -> str:
    """Claim the dedupe key and apply, in the inbox's one transaction: a crash
    in between frees the key, and the provider's re-send is applied."""
    before = refund.status
    state = RefundState(out_refund_no=parsed.out_refund_no, status=parsed.status, amount_minor=parsed.amount_minor,
                        gateway_refund_id=parsed.gateway_refund_id, refunded_at=parsed.refunded_at, raw=parsed.raw)
    if notification_claim(notification, dedupe_key=f"refund:{parsed.dedupe_key}",
                          out_trade_no=refund.payment.out_trade_no, payment=refund.payment) is not None:
        return NotificationOutcome.DUPLICATE
    after = refund_apply_state(refund_id=refund.pk, state=state, actor=actor, notification=notification)
    # Its outcome commits with the apply: whoever sees the refund settled
    # also sees which notification settled it.
    outcome = NotificationOutcome.APPLIED if after.status != before else NotificationOutcome.UNCHANGED
    notification_outcome_record(notification, outcome, detail=f"refund {after.status}", verified=True,
                                out_trade_no=refund.payment.out_trade_no)
    return outcome
