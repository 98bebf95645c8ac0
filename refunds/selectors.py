"""Reads about refunds that more than one place needs (the admin's queue and banner)."""
from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from refunds.models import Refund, RefundApproval, RefundStatus
from refunds.permissions import may_review


def refund_list_awaiting_second_approval(queryset: QuerySet[Refund] | None = None) -> QuerySet[Refund]:
    """Waiting for review, needing two approvals, with one given (maker-checker)."""
    queryset = Refund.objects.all() if queryset is None else queryset
    return queryset.filter(status=RefundStatus.REQUESTED, approvals_required__gt=1).filter(
        Exists(RefundApproval.objects.filter(refund=OuterRef("pk"))))


def refund_list_decidable_by(user: Any, queryset: QuerySet[Refund] | None = None) -> QuerySet[Refund]:
    """What `user` can decide now: waiting for review, not of their own order, not
    applied for by them, not already approved by them (segregation of duties)."""
    queryset = Refund.objects.all() if queryset is None else queryset
    if not may_review(user):
        return queryset.none()
    return queryset.filter(status=RefundStatus.REQUESTED).exclude(
        Q(order__shopper=user) | Q(requested_by=user)
        | Exists(RefundApproval.objects.filter(refund=OuterRef("pk"), reviewer=user)))
