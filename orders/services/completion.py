"""Completing orders the shopper never confirmed: shipped ORDER_AUTO_COMPLETE_DAYS ago.

A shopper confirms receipt on the order page (`order_complete`); one who
never does still gets a completed order once the goods have had time to
arrive, as every Chinese marketplace does. The sweep is set-based: one
locking SELECT, one UPDATE and one INSERT of events per batch
(`Lifecycle.move_many`), never a loop over rows.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from orders.models import REASON_AUTO_COMPLETED, Order, OrderStatus
from orders.services.lifecycle import ORDER_LIFECYCLE
from shop.actors import Actor

logger = logging.getLogger(__name__)

JANITOR = Actor.system("janitor")
BATCH = 500


def orders_complete_delivered(*, now: datetime | None = None, batch: int = BATCH) -> int:
    """shipped → completed for every order shipped at least ORDER_AUTO_COMPLETE_DAYS ago.

    Each batch is its own transaction; an order a shopper is confirming at
    that moment is skipped (its row is locked) and completes by their hand.
    Running it again finds nothing more to do. Returns how many completed.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.ORDER_AUTO_COMPLETE_DAYS)
    completed = 0
    while True:
        moved = ORDER_LIFECYCLE.move_many(
            Order.objects.filter(shipped_at__lte=cutoff),
            from_status=OrderStatus.SHIPPED, to_status=OrderStatus.COMPLETED, actor=JANITOR,
            reason=REASON_AUTO_COMPLETED, limit=batch, extra_fields={"completed_at": now},
        )
        completed += len(moved)
        if len(moved) < batch:
            break
    if completed:
        logger.info("janitor: %d orders completed %d days after shipping", completed,
                    settings.ORDER_AUTO_COMPLETE_DAYS)
    return completed
