"""The transactional outbox: follow-up work that a broker outage cannot lose.

A service whose state change needs a task afterwards calls `outbox_enqueue`
(or `outbox_enqueue_many`) inside its own transaction: one INSERT (one
multi-row INSERT for several), committed or rolled back with the change.

    outbox_enqueue("refunds.tasks.refund_submit_task", refund.pk)

After the commit the relay hands the new rows to Celery: robust (a broker
error is logged and the row is made due at once for the periodic relay),
with `retry=False` so a dead broker never holds the request, and nothing
written on the way. The worker records each task's end through Celery's
signals, keyed by the `outbox_id` header the relay sets: `task_success`
completes the row, `task_retry` pushes its due time past the retry's
countdown, `task_failure` makes it due again after a backoff and gives up
after OUTBOX_MAX_DELIVERIES (an alarm for staff).

The periodic relay (`outbox_relay_due`, job "outbox-relay" in
config/periodic.py) delivers again every row that is due and not completed:
never sent (the broker was down at commit), or sent and lost (a Redis
restart without persistence drops what was queued; a worker killed in the
middle of a task) once its lease OUTBOX_LEASE_SECONDS has run out. Every
task it names is idempotent, so a second delivery is harmless.

Without a broker (eager mode, `make run`'s default and most tests) the
relay runs each task in-process right after the commit, as `.delay()` did.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from celery.signals import task_failure, task_retry, task_success
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string
from kombu.exceptions import OperationalError

from shop import metrics
from shop.models import OutboxMessage

logger = logging.getLogger(__name__)

HEADER = "outbox_id"
# What a publish raises when the broker cannot be reached (retry=False).
BROKER_ERRORS = (OperationalError, OSError)


@dataclass(frozen=True)
class Intent:
    """A task to run after the commit: its dotted path and JSON arguments."""

    task: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Delivery:
    pk: int
    task: str
    args: list[Any]
    kwargs: dict[str, Any]


def outbox_enqueue(task: str, *args: Any, **kwargs: Any) -> OutboxMessage:
    """Write one task intent in the caller's transaction; relayed after its commit."""
    return outbox_enqueue_many([Intent(task, args, kwargs)])[0]


def outbox_enqueue_many(intents: Iterable[Intent]) -> list[OutboxMessage]:
    """Write several intents with one INSERT; relayed after the commit."""
    now = timezone.now()
    rows = [
        OutboxMessage(task=intent.task, args=list(intent.args), kwargs=dict(intent.kwargs), created_at=now,
                      due_at=outbox_due_at(now))
        for intent in intents
    ]
    if not rows:
        return []
    OutboxMessage.objects.bulk_create(rows)
    outbox_written([(row.pk, row.task, row.args, row.kwargs) for row in rows])
    return rows


def outbox_written(rows: Iterable[tuple[int, str, list[Any], dict[str, Any]]]) -> None:
    """Rows a caller wrote with its own statement (pk, task, args, kwargs): relayed after its commit.

    For a hand-composed statement that inserts outbox rows itself
    (`outbox_due_at` gives their due time); they are then handed to Celery
    exactly as `outbox_enqueue`'s are.
    """
    deliveries = [_Delivery(*row) for row in rows]
    transaction.on_commit(partial(_relay, deliveries), robust=not _propagates())


def outbox_due_at(now: datetime) -> datetime:
    """When a row written at `now` is due for the periodic relay unless its delivery completes first."""
    return now + _lease()


def outbox_relay_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Deliver again every message that is due and not completed; returns how many.

    Rows are claimed with SKIP LOCKED and leased before they are sent, so two
    relays at once never send the same row twice in one round. A row
    delivered OUTBOX_MAX_DELIVERIES times is given up (an alarm).
    """
    now = now or timezone.now()
    pending = OutboxMessage.objects.filter(completed_at__isnull=True, failed_at__isnull=True, due_at__lte=now)
    with transaction.atomic():
        given_up = pending.filter(deliveries__gte=settings.OUTBOX_MAX_DELIVERIES).update(failed_at=now)
        due = list(
            pending.filter(deliveries__lt=settings.OUTBOX_MAX_DELIVERIES)
            .select_for_update(skip_locked=True)
            .order_by("due_at", "pk")
            .values_list("pk", "task", "args", "kwargs")[:limit]
        )
        OutboxMessage.objects.filter(pk__in=[row[0] for row in due]).update(
            due_at=now + _lease(), deliveries=F("deliveries") + 1
        )
    if given_up:
        logger.error("outbox: %d message(s) given up after %d deliveries", given_up, settings.OUTBOX_MAX_DELIVERIES)
    deliveries = [_Delivery(*row) for row in due]
    _relay(deliveries)
    _export_backlog(now)
    return len(deliveries)


def _export_backlog(now: datetime) -> None:
    open_rows = OutboxMessage.objects.filter(completed_at__isnull=True)
    stats = open_rows.aggregate(
        given_up=Count("pk", filter=Q(failed_at__isnull=False)),
        due=Count("pk", filter=Q(failed_at__isnull=True, due_at__lte=now)),
        oldest=Min("created_at", filter=Q(failed_at__isnull=True)),
    )
    metrics.outbox_messages.labels(state="due").set(stats["due"])
    metrics.outbox_messages.labels(state="given_up").set(stats["given_up"])
    oldest = stats["oldest"]
    metrics.outbox_oldest_due_seconds.set(max((now - oldest).total_seconds(), 0) if oldest else 0)


def _relay(deliveries: Sequence[_Delivery]) -> None:
    for delivery in deliveries:
        _deliver(delivery)


def _deliver(delivery: _Delivery) -> None:
    try:
        task = import_string(delivery.task)
        task.apply_async(args=delivery.args, kwargs=delivery.kwargs, headers={HEADER: delivery.pk}, retry=False)
    except Exception as exc:
        if _propagates() and not isinstance(exc, BROKER_ERRORS):
            raise  # tests see a task's error as a worker would
        # The broker is down (or the task unknown): the row stays, due now.
        logger.exception("outbox: message #%s (%s) not delivered; the periodic relay sends it again",
                         delivery.pk, delivery.task)
        _note_failure(delivery.pk, f"not delivered: {exc!r}", due_at=timezone.now())


def _note_failure(pk: int, error: str, *, due_at: datetime) -> None:
    try:
        OutboxMessage.objects.filter(pk=pk, completed_at__isnull=True).update(due_at=due_at, last_error=error[:2000])
    except Exception:  # the database may be what failed; the lease still brings it back
        logger.exception("outbox: could not note the failure of message #%s", pk)


def _lease() -> timedelta:
    return timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


def _propagates() -> bool:
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and settings.CELERY_TASK_EAGER_PROPAGATES)


def outbox_id(request: Any) -> int | None:
    """The outbox row a running task was delivered for (the relay's header)."""
    if request is None:
        return None
    value = (getattr(request, "headers", None) or {}).get(HEADER) or getattr(request, HEADER, None)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# -- the worker's side: Celery signals record how each delivery ended -----------


@task_success.connect(dispatch_uid="shop.outbox.completed")
def _completed(sender: Any = None, **kwargs: Any) -> None:
    pk = outbox_id(getattr(sender, "request", None))
    if pk is not None:
        OutboxMessage.objects.filter(pk=pk, completed_at__isnull=True).update(completed_at=timezone.now(),
                                                                                last_error="")


@task_retry.connect(dispatch_uid="shop.outbox.retrying")
def _retrying(sender: Any = None, request: Any = None, reason: Any = None, **kwargs: Any) -> None:
    pk = outbox_id(request)
    if pk is None:
        return
    # The worker keeps the task (its retry is a new message): redeliver only
    # if that retry is lost, a lease after its countdown.
    when = getattr(reason, "when", None)
    now = timezone.now()
    if isinstance(when, datetime):
        eta = when
    elif isinstance(when, int | float):
        eta = now + timedelta(seconds=when)
    else:
        eta = now
    _note_failure(pk, f"retrying: {getattr(reason, 'exc', reason)!r}", due_at=max(eta, now) + _lease())


@task_failure.connect(dispatch_uid="shop.outbox.failed")
def _failed(sender: Any = None, exception: BaseException | None = None, **kwargs: Any) -> None:
    pk = outbox_id(getattr(sender, "request", None))
    if pk is None:
        return
    deliveries = OutboxMessage.objects.filter(pk=pk).values_list("deliveries", flat=True).first() or 0
    backoff = timedelta(seconds=min(settings.OUTBOX_LEASE_SECONDS * 2 ** deliveries, 6 * 3600))
    logger.warning("outbox: message #%s failed (delivery %d): %r", pk, deliveries, exception)
    _note_failure(pk, f"failed: {exception!r}", due_at=timezone.now() + backoff)
