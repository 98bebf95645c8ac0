"""Money that stopped moving: approved refunds that never reached their gateway.

An approved refund holds its amount (RefundBalance.reserved_minor) until the
gateway call moves it to processing. The outbox delivers that call however
the broker fares (shop/outbox.py); this sweep is the second line: a refund
still `approved` REFUND_RESUBMIT_AFTER_SECONDS after its approval is sent
again (the same out_refund_no, so never twice at the gateway), every
REFUND_RESUBMIT_AFTER_SECONDS until it moves. One still approved after
REFUND_STALLED_ALARM_AFTER_SECONDS is an alarm: "needs attention" in admin,
the admin banner, the money invariant check and its metrics.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from refunds.models import Refund, RefundStatus
from shop.outbox import Intent, outbox_enqueue_many

logger = logging.getLogger(__name__)


def stalled_q(*, now: datetime | None = None) -> Q:
    """Approved refunds not sent to their gateway for longer than the alarm limit."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.REFUND_STALLED_ALARM_AFTER_SECONDS)
    return Q(status=RefundStatus.APPROVED, reviewed_at__lt=limit)


def refund_list_stalled(*, now: datetime | None = None) -> QuerySet[Refund]:
    return Refund.objects.filter(stalled_q(now=now))


def refunds_resubmit_stalled(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send again every approved refund whose submission has not happened; returns how many.

    Set-based: one UPDATE marks when each may be re-sent next
    (`next_poll_at`, unused while a refund is approved), one INSERT writes
    the outbox intents.
    """
    now = now or timezone.now()
    wait = timedelta(seconds=settings.REFUND_RESUBMIT_AFTER_SECONDS)
    with transaction.atomic():
        due = list(
            Refund.objects.filter(status=RefundStatus.APPROVED, reviewed_at__lt=now - wait)
            .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
            .select_for_update(of=("self",), skip_locked=True)
            .order_by("reviewed_at", "pk")
            .values_list("pk", "out_refund_no")[:limit]
        )
        Refund.objects.filter(pk__in=[pk for pk, _ in due]).update(next_poll_at=now + wait)
        outbox_enqueue_many(Intent("refunds.tasks.refund_submit_task", (pk,)) for pk, _ in due)
    for _pk, out_refund_no in due:
        logger.warning("refund %s: approved and still not sent to the gateway; sent again", out_refund_no)
    return len(due)
