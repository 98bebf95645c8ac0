"""Polling refunds the gateway is still processing (a notification may never come)."""
from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from payments.exceptions import AmountMismatch, GatewayError
from payments.gateways import get_gateway
from payments.gateways.base import GatewayRefundStatus
from refunds.models import Refund, RefundStatus
from refunds.services.execution import (
    note_gateway_error,
    poll_delay,
    refund_apply_state,
    refund_reference,
    refund_submit,
)
from shop.actors import Actor

logger = logging.getLogger(__name__)


def refund_poll(*, refund_id: int) -> Refund:
    """Ask the gateway about a processing refund and apply the answer.

    A refund the gateway does not know is sent again (same number: safe).
    Raises GatewayError when the gateway cannot answer.
    """
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    gateway = get_gateway(refund.payment.gateway)
    state = gateway.query_refund(refund_reference(refund))
    if state.status == GatewayRefundStatus.NOT_FOUND:
        return refund_submit(refund_id=refund_id)
    return refund_apply_state(refund_id=refund_id, state=state, actor=Actor.system("refund-poll"))


def refunds_poll_processing(*, now: datetime | None = None, limit: int = 200) -> int:
    """Poll processing refunds whose backoff ran out; give up loudly after a while.

    One refund's failure (a gateway down or no longer configured, an
    amount that disagrees) is noted on that refund and the sweep goes on.
    """
    now = now or timezone.now()
    due = Refund.objects.filter(status=RefundStatus.PROCESSING, gave_up_at__isnull=True, next_poll_at__lte=now)
    polled = 0
    for refund in due.order_by("next_poll_at", "pk")[:limit]:
        if refund.poll_count >= settings.REFUND_POLL_GIVE_UP_AFTER:
            Refund.objects.filter(pk=refund.pk).update(gave_up_at=now)
            note_gateway_error(refund, f"polling gave up after {refund.poll_count} queries: staff must check")
            logger.error("refund %s still processing after %d polls: given up", refund.out_refund_no,
                         refund.poll_count)
            continue
        Refund.objects.filter(pk=refund.pk).update(poll_count=F("poll_count") + 1,
                                                   next_poll_at=now + poll_delay(refund.poll_count + 1))
        try:
            refund_poll(refund_id=refund.pk)
        except (GatewayError, AmountMismatch) as exc:
            note_gateway_error(refund, f"poll failed: {exc}")
        polled += 1
    return polled
