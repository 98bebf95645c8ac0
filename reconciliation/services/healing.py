"""Healing: the discrepancies the gateway itself can settle, through the existing services.

Never on the bill's word alone. A payment the bill lists that we have as
open, closed or failed is queried (`payments.services.payment_sync`) and the
gateway's answer applied as any query's is: a payment on a closed order
then follows the late-payment refund path. A refund the bill lists that we
have as processing is polled (`refunds.services.refund_poll`). The
discrepancy is healed only when our record, after that, agrees with the
bill; either way what the gateway answered is kept as the evidence. No
statement or discrepancy lock is held while a service runs.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from payments.exceptions import AmountMismatch, GatewayError
from payments.models import Payment, PaymentEvent, PaymentStatus
from reconciliation.lock_objects import discrepancy_for_update
from reconciliation.models import Discrepancy, DiscrepancyStatus, HealAction
from reconciliation.services.lifecycle import discrepancy_move, discrepancy_record_event
from refunds.models import Refund, RefundEvent, RefundStatus
from shop.actors import Actor
from shop.exceptions import InvalidTransition

logger = logging.getLogger(__name__)

RECONCILIATION = Actor.system("reconciliation")
# A heal the gateway could not settle is tried again with backoff, then left to finance.
HEAL_RETRY_AFTER = timedelta(minutes=30)
HEAL_MAX_ATTEMPTS = 8


def heal_delay(attempts: int) -> timedelta:
    return min(HEAL_RETRY_AFTER * (2 ** max(attempts - 1, 0)), timedelta(hours=12))


def discrepancy_heal(*, discrepancy_id: int, now: datetime | None = None) -> Discrepancy:
    """Ask the gateway (through the payment or refund service) and heal if our record now agrees.

    A repeat on a healed or decided discrepancy does nothing. A gateway
    that cannot answer leaves it open with the error as evidence and a
    later attempt scheduled.
    """
    discrepancy = Discrepancy.objects.get(pk=discrepancy_id)
    if discrepancy.status != DiscrepancyStatus.OPEN or not discrepancy.heal_action:
        return discrepancy
    try:
        evidence, agrees = _ask_gateway(discrepancy)
    except (GatewayError, AmountMismatch, InvalidTransition) as exc:
        evidence, agrees = {"error": str(exc)[:500], "error_type": type(exc).__name__}, False
    now = now or timezone.now()
    with transaction.atomic():
        discrepancy = discrepancy_for_update(discrepancy_id=discrepancy_id)
        if discrepancy.status != DiscrepancyStatus.OPEN:
            return discrepancy
        attempts = discrepancy.heal_attempts + 1
        evidence = {**evidence, "asked_at": now.isoformat(), "attempt": attempts}
        if agrees:
            discrepancy_move(discrepancy, to_status=DiscrepancyStatus.HEALED, actor=RECONCILIATION,
                             reason=_healed_reason(discrepancy, evidence), detail=evidence,
                             extra_fields={"evidence": evidence, "heal_attempts": attempts, "next_heal_at": None,
                                           "closed_at": now})
            logger.info("reconciliation: healed %s %s: %s", discrepancy.kind, discrepancy.reference, evidence)
        else:
            discrepancy.evidence = evidence
            discrepancy.heal_attempts = attempts
            discrepancy.next_heal_at = now + heal_delay(attempts) if attempts < HEAL_MAX_ATTEMPTS else None
            discrepancy.save(update_fields=["evidence", "heal_attempts", "next_heal_at", "updated_at"])
            discrepancy_record_event(discrepancy, actor=RECONCILIATION,
                                     reason="the gateway's answer does not settle it", detail=evidence)
            logger.warning("reconciliation: %s %s not healed (attempt %d): %s", discrepancy.kind,
                           discrepancy.reference, attempts, evidence)
    return discrepancy


def _healed_reason(discrepancy: Discrepancy, evidence: dict[str, Any]) -> str:
    if evidence.get("refund_required"):
        return f"the gateway says paid; applied ({evidence['refund_required']}: the automatic refund follows)"
    if discrepancy.heal_action == HealAction.REFUND_POLL:
        return "the gateway says refunded; applied"
    return "the gateway says paid; applied"


def _ask_gateway(discrepancy: Discrepancy) -> tuple[dict[str, Any], bool]:
    """(the gateway's answer as our records now show it, whether they agree with the bill)."""
    if discrepancy.heal_action == HealAction.PAYMENT_SYNC and discrepancy.payment_id:
        from payments.services import payment_sync

        before = PaymentEvent.objects.filter(payment_id=discrepancy.payment_id).count()
        payment_sync(payment_id=discrepancy.payment_id, actor=RECONCILIATION)
        payment = Payment.objects.get(pk=discrepancy.payment_id)
        events = list(PaymentEvent.objects.filter(payment=payment).order_by("pk")[before:])
        evidence = {
            "asked": "payment query",
            "gateway_status": payment.gateway_status,
            "gateway_trade_no": payment.gateway_trade_no,
            "payment_status": payment.status,
            "amount_minor": payment.amount_minor,
            "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
            "refund_required": payment.refund_required,
            "events": [{"to_status": event.to_status, "reason": event.reason, "detail": event.detail}
                       for event in events],
        }
        agrees = payment.status == PaymentStatus.SUCCEEDED and payment.amount_minor == discrepancy.bill_amount_minor
        return evidence, agrees
    if discrepancy.heal_action == HealAction.REFUND_POLL and discrepancy.refund_id:
        from refunds.services import refund_poll

        before = RefundEvent.objects.filter(refund_id=discrepancy.refund_id).count()
        refund_poll(refund_id=discrepancy.refund_id)
        refund = Refund.objects.get(pk=discrepancy.refund_id)
        refund_events = list(RefundEvent.objects.filter(refund=refund).order_by("pk")[before:])
        evidence = {
            "asked": "refund query",
            "gateway_status": refund.gateway_status,
            "gateway_refund_id": refund.gateway_refund_id,
            "refund_status": refund.status,
            "amount_minor": refund.amount_minor,
            "refunded_at": refund.refunded_at.isoformat() if refund.refunded_at else None,
            "events": [{"to_status": event.to_status, "reason": event.reason, "detail": event.detail}
                       for event in refund_events],
        }
        agrees = refund.status == RefundStatus.SUCCEEDED and refund.amount_minor == discrepancy.bill_amount_minor
        return evidence, agrees
    return {"error": "nothing to ask: no payment or refund of ours"}, False


def discrepancies_heal(*, statement_id: int | None = None, now: datetime | None = None, limit: int = 200) -> int:
    """Heal the healable open discrepancies of a statement (or all that are due). Returns how many healed."""
    now = now or timezone.now()
    due = Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN, heal_attempts__lt=HEAL_MAX_ATTEMPTS,
                                     next_heal_at__lte=now).exclude(heal_action="")
    if statement_id is not None:
        due = due.filter(statement_id=statement_id)
    healed = 0
    statements: set[int] = set()
    for discrepancy_id in list(due.order_by("pk").values_list("pk", flat=True)[:limit]):
        discrepancy = discrepancy_heal(discrepancy_id=discrepancy_id, now=now)
        if discrepancy.status == DiscrepancyStatus.HEALED:
            healed += 1
            statements.add(discrepancy.statement_id)
    if statement_id is None:
        # The daily job's heals change our side of those days' totals too.
        from reconciliation.services.statements import statement_local_totals_refresh

        for healed_statement in statements:
            statement_local_totals_refresh(statement_id=healed_statement)
    return healed
