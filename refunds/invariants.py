"""The money invariants, checked continuously by a periodic task.

What the database cannot enforce by itself is checked here against the raw
rows (not against the counters the services maintain, which are one of the
things being checked). Each violation is logged at error level, counted in
a metric, and kept as an open InvariantViolation that admin shows as an
alarm until the next check no longer finds it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from payments.models import Payment, PaymentStatus
from refunds import metrics
from refunds.models import RESERVING_STATUSES, InvariantViolation, Refund, RefundBalance, RefundStatus
from refunds.services.stalled import refund_list_stalled

logger = logging.getLogger(__name__)

KINDS = ("refunds_exceed_paid", "balance_out_of_step", "two_accepted_payments", "refund_not_started",
         "refund_not_submitted")
# A flagged duplicate or late payment should have its refund this soon.
AUTOMATIC_REFUND_GRACE = timedelta(minutes=30)


@dataclass(frozen=True)
class Violation:
    kind: str
    subject: str
    detail: str


def _refund_total(statuses, *, payment_ref: str) -> Coalesce:
    """Sum of the payment's refunds in `statuses`, as a subquery (0 when none)."""
    refunds = Refund.objects.filter(payment=OuterRef(payment_ref), status__in=statuses).values("payment").annotate(
        total=Sum("amount_minor")).values("total")
    return Coalesce(Subquery(refunds), Value(0))


def find_violations() -> list[Violation]:
    found: list[Violation] = []
    # 1. Per payment: succeeded plus in-flight refunds never above the amount paid.
    for payment in Payment.objects.annotate(reserved=_refund_total(RESERVING_STATUSES, payment_ref="pk")).filter(
            reserved__gt=F("amount_minor")):
        found.append(Violation("refunds_exceed_paid", payment.out_trade_no,
                               f"refunds hold {payment.reserved} fen of {payment.amount_minor} paid"))
    # 2. The locked counters agree with the refund rows.
    for balance in RefundBalance.objects.select_related("payment").annotate(
            rows_reserved=_refund_total(RESERVING_STATUSES, payment_ref="payment"),
            rows_refunded=_refund_total((RefundStatus.SUCCEEDED,), payment_ref="payment")).filter(
            ~Q(reserved_minor=F("rows_reserved")) | ~Q(refunded_minor=F("rows_refunded"))):
        found.append(Violation(
            "balance_out_of_step", balance.payment.out_trade_no,
            f"balance says reserved {balance.reserved_minor}/refunded {balance.refunded_minor}, "
            f"rows say {balance.rows_reserved}/{balance.rows_refunded}"))
    # 3. Per order, one accepted payment (any other must be flagged for refund).
    for row in Payment.objects.filter(status=PaymentStatus.SUCCEEDED, refund_required="").values(
            "order__order_no").annotate(n=Count("pk")).filter(n__gt=1):
        found.append(Violation("two_accepted_payments", row["order__order_no"],
                               f"{row['n']} succeeded payments count for the order"))
    # 4. Flagged payments get their automatic refund.
    late = timezone.now() - AUTOMATIC_REFUND_GRACE
    for flagged in Payment.objects.filter(status=PaymentStatus.SUCCEEDED, updated_at__lt=late).exclude(
            refund_required="").exclude(refunds__automatic=True):
        found.append(Violation("refund_not_started", flagged.out_trade_no,
                               f"{flagged.refund_required}: no automatic refund after {AUTOMATIC_REFUND_GRACE}"))
    # 5. Approved refunds reach their gateway: money reserved and never sent.
    for stalled in refund_list_stalled().select_related("payment"):
        found.append(Violation("refund_not_submitted", stalled.out_refund_no,
                               f"{stalled.amount_minor} fen reserved since {stalled.reviewed_at:%Y-%m-%d %H:%M}, "
                               f"never sent to {stalled.payment.gateway}"))
    return found


def money_invariants_check() -> list[Violation]:
    """Find violations, raise the alarm for each, and close alarms that cleared."""
    found = find_violations()
    now = timezone.now()
    keys = {(violation.kind, violation.subject) for violation in found}
    with transaction.atomic():
        for violation in found:
            updated = InvariantViolation.objects.filter(
                kind=violation.kind, subject=violation.subject, resolved_at__isnull=True
            ).update(last_seen_at=now, detail=violation.detail)
            if not updated:
                InvariantViolation.objects.create(kind=violation.kind, subject=violation.subject,
                                                  detail=violation.detail, last_seen_at=now)
            logger.error("money invariant violated: %s %s: %s", violation.kind, violation.subject, violation.detail)
        for open_violation in InvariantViolation.objects.filter(resolved_at__isnull=True):
            if (open_violation.kind, open_violation.subject) not in keys:
                open_violation.resolved_at = now
                open_violation.save(update_fields=["resolved_at"])
    for kind in KINDS:
        metrics.money_invariant_violations.labels(kind=kind).set(
            sum(1 for violation in found if violation.kind == kind))
    metrics.refunds_unsubmitted_minor.set(
        refund_list_stalled().aggregate(total=Coalesce(Sum("amount_minor"), Value(0)))["total"])
    return found
