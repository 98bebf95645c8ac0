"""Asynchronous notifications: queueing, fault handling, and the one dispatcher thread.

Provider-neutral: a provider builds the message fields and hands them to
`notification_queue`; its NotificationFormat (sandbox/providers.py) renders
each send (fresh timestamp and signature) and judges the merchant's answer.
An unacknowledged notification is sent again after each delay of the
provider's schedule (times the time scale), then given up. Every send, and
every drop, is logged as a DeliveryAttempt.

Notification faults (sandbox/faults.py) are decided when a notification is
queued: drop it, delay its first send, send duplicates in parallel, hold a
group and release it newest first, or send forged copies before it. The
rule's target is the provider's for that kind of notification
(`alipay.notify`; `wechatpay.notify` or `wechatpay.refund_notify`).

The dispatcher thread also ends the refunds that settle by time
(`refunds_settle_due`, runtime setting refund_settle_after_seconds) just
before it sends what is due, so their notifications leave in the same round.
"""
from __future__ import annotations

import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.db import close_old_connections, transaction
from django.utils import timezone

from sandbox.faults import fault_take
from sandbox.models import DeliveryAttempt, FaultRule, Notification, Refund, Trade
from sandbox.providers import OutgoingNotification, provider_get
from sandbox.runtime import provider_now, runtime_settings, scaled
from sandbox.services import refunds_settle_due

logger = logging.getLogger(__name__)

# Real providers give up quickly on a slow merchant; so does the sandbox.
DELIVERY_TIMEOUT = (3.0, 10.0)
# The longest the dispatcher sleeps without looking at the tables; new
# notifications, new processing refunds and control calls wake it sooner,
# and it sleeps no longer than until the next refund is due.
IDLE_POLL_SECONDS = 1.0
RESPONSE_BODY_LOG_LIMIT = 2000

_wake = threading.Event()


def dispatcher_wake() -> None:
    _wake.set()


# -- queueing -----------------------------------------------------------------


def notification_queue(
    *,
    provider: str,
    kind: str,
    trade: Trade,
    fields: dict,
    refund: Refund | None = None,
    url: str | None = None,
    notification_id: str = "",
) -> Notification | None:
    """Queue a notification, applying notification faults.

    It goes to `url`, by default the trade's notify URL; nothing is queued
    without one. `notification_id` (constant across re-sends) defaults to
    32 random hex digits. Call inside the transaction that made the change
    being notified; the dispatcher is woken when it commits.
    """
    url = trade.notify_url if url is None else url
    if not url:
        return None
    with transaction.atomic():
        notification = Notification.objects.create(
            provider=provider,
            kind=kind,
            trade=trade,
            refund=refund,
            url=url,
            notification_id=notification_id or uuid.uuid4().hex,
            fields=fields,
            next_attempt_at=timezone.now(),
        )
        target = provider_get(provider).notify_target(kind)
        rule = fault_take(target, out_trade_no=trade.out_trade_no)
        if rule is not None:
            _apply_fault(notification, rule)
        transaction.on_commit(dispatcher_wake)
    logger.info("queued %s %s notification for %s", provider, kind, trade.out_trade_no)
    return notification


def _apply_fault(notification: Notification, rule: FaultRule) -> None:
    if rule.mode == "drop":
        notification.status = Notification.Status.DROPPED
        notification.next_attempt_at = None
        DeliveryAttempt.objects.create(
            notification=notification, attempt=0, variant="dropped", error=f"dropped by fault rule #{rule.pk}"
        )
    elif rule.mode == "delay":
        notification.next_attempt_at = timezone.now() + timedelta(seconds=rule.params["seconds"])
    elif rule.mode == "duplicate":
        notification.copies = rule.params["copies"]
    elif rule.mode == "forge":
        notification.forgeries = rule.params["variants"]
    elif rule.mode in provider_get(notification.provider).forgery_modes:
        notification.forgeries = list(provider_get(notification.provider).forgery_modes[rule.mode])
    elif rule.mode == "reorder":
        notification.status = Notification.Status.HELD
        notification.next_attempt_at = None
        notification.held_by = rule
    notification.save()
    if rule.mode == "reorder" and rule.remaining == 0:
        notifications_release_held(rule)


def notifications_release_held(rule: FaultRule) -> int:
    """Schedule what `rule` holds, newest first (a microsecond apart, so the
    dispatcher, which sends in next_attempt_at order, keeps that order)."""
    now = timezone.now()
    held = Notification.objects.filter(held_by=rule, status=Notification.Status.HELD).order_by("-id")
    released = 0
    for position, notification in enumerate(held):
        notification.status = Notification.Status.SCHEDULED
        notification.next_attempt_at = now + timedelta(microseconds=position)
        notification.held_by = None
        notification.save(update_fields=["status", "next_attempt_at", "held_by"])
        released += 1
    if released:
        transaction.on_commit(dispatcher_wake)
    return released


def notifications_send_now() -> int:
    """Make every scheduled notification due now (skips the rest of its wait)."""
    count = Notification.objects.filter(status=Notification.Status.SCHEDULED).update(next_attempt_at=timezone.now())
    dispatcher_wake()
    return count


# -- delivery -----------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    variant: str
    status_code: int | None
    body: bytes
    error: str
    acknowledged: bool


def _post(url: str, outgoing: OutgoingNotification) -> tuple[int | None, bytes, str]:
    headers = {"Content-Type": outgoing.content_type, **outgoing.headers}
    try:
        response = requests.post(
            url, data=outgoing.body, headers=headers, timeout=DELIVERY_TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as error:
        return None, b"", f"{type(error).__name__}: {error}"
    return response.status_code, response.content, ""


def _send(notification: Notification, variant: str, sent_at: datetime) -> SendResult:
    notification_format = provider_get(notification.provider).notification_format
    render_variant = "real" if variant == "duplicate" else variant
    outgoing = notification_format.render(notification, sent_at=sent_at, variant=render_variant)
    status_code, body, error = _post(notification.url, outgoing)
    judge = outgoing.acknowledged or notification_format.is_acknowledged
    acknowledged = render_variant == "real" and status_code is not None and judge(status_code, body)
    return SendResult(variant, status_code, body, error, acknowledged)


def _log(notification: Notification, attempt: int, result: SendResult) -> None:
    DeliveryAttempt.objects.create(
        notification=notification,
        attempt=attempt,
        variant=result.variant,
        status_code=result.status_code,
        response_body=result.body[:RESPONSE_BODY_LOG_LIMIT].decode("utf-8", "replace"),
        error=result.error,
        acknowledged=result.acknowledged,
    )


def notification_deliver(notification: Notification) -> Notification:
    """Send a due notification once (with its forgeries and copies on the first
    send), log every request, then mark it delivered or schedule the next try."""
    attempt = notification.attempts + 1
    sent_at = provider_now()
    results: list[SendResult] = []
    if attempt == 1:
        # Forgeries go first: a merchant fooled by one would act before the
        # real notification could put things right.
        results.extend(_send(notification, variant, sent_at) for variant in notification.forgeries)
    copies = notification.copies if attempt == 1 else 1
    if copies > 1:
        with ThreadPoolExecutor(max_workers=copies) as pool:
            variants = ["real"] + ["duplicate"] * (copies - 1)
            results.extend(pool.map(lambda variant: _send(notification, variant, sent_at), variants))
    else:
        results.append(_send(notification, "real", sent_at))

    acknowledged = any(result.acknowledged for result in results)
    schedule = runtime_settings().notify_schedules.get(notification.provider, ())
    changes: dict[str, object] = {"attempts": attempt}
    if acknowledged:
        changes.update(status=Notification.Status.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
    elif attempt <= len(schedule):
        changes["next_attempt_at"] = timezone.now() + scaled(schedule[attempt - 1])
    else:
        changes.update(status=Notification.Status.GAVE_UP, next_attempt_at=None)
    with transaction.atomic():
        # The row may have gone (control reset) while we were sending.
        if not Notification.objects.filter(pk=notification.pk, status=Notification.Status.SCHEDULED).update(**changes):
            return notification
        for result in results:
            _log(notification, attempt, result)
    logger.info(
        "%s notification %s for trade %s: attempt %d %s",
        notification.provider,
        notification.notification_id,
        notification.trade_id,
        attempt,
        "acknowledged" if acknowledged else "not acknowledged",
    )
    notification.refresh_from_db()
    return notification


def notifications_deliver_due() -> float:
    """Deliver every due notification in order; return seconds until the next is due."""
    due = Notification.objects.filter(
        status=Notification.Status.SCHEDULED, next_attempt_at__lte=timezone.now()
    ).order_by("next_attempt_at", "id")
    for notification in list(due[:100]):
        notification_deliver(notification)
    upcoming = (
        Notification.objects.filter(status=Notification.Status.SCHEDULED)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if upcoming is None:
        return IDLE_POLL_SECONDS
    return min(max((upcoming - timezone.now()).total_seconds(), 0.0), IDLE_POLL_SECONDS)


class NotificationDispatcher(threading.Thread):
    """The one thread that sends notifications and settles the refunds due by
    time (runtime setting refund_settle_after_seconds); it never dies of an
    error. It sleeps until the next notification or refund is due, at most
    IDLE_POLL_SECONDS; queued notifications, new refunds and control calls
    wake it sooner."""

    def __init__(self) -> None:
        super().__init__(name="notification-dispatcher", daemon=True)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            _wake.clear()
            wait = IDLE_POLL_SECONDS
            # First the refunds due by time, so the notifications their
            # settling queues go out in this same round.
            try:
                close_old_connections()
                settle_wait = refunds_settle_due()
            except Exception:
                logger.exception("settling refunds failed; retrying shortly")
            else:
                if settle_wait is not None:
                    wait = min(wait, settle_wait)
            try:
                wait = min(wait, notifications_deliver_due())
            except Exception:
                logger.exception("notification dispatch failed; retrying shortly")
            _wake.wait(timeout=wait)

    def stop(self) -> None:
        self.stopping.set()
        _wake.set()


def dispatcher_start() -> NotificationDispatcher:
    dispatcher = NotificationDispatcher()
    dispatcher.start()
    return dispatcher


def notification_as_json(notification: Notification) -> dict:
    return {
        "id": notification.pk,
        "provider": notification.provider,
        "kind": notification.kind,
        "notification_id": notification.notification_id,
        "out_trade_no": notification.trade.out_trade_no,
        "out_refund_no": notification.refund.out_refund_no if notification.refund is not None else "",
        "url": notification.url,
        "status": notification.status,
        "attempts": notification.attempts,
        "next_attempt_at": notification.next_attempt_at.isoformat() if notification.next_attempt_at else None,
        "delivered_at": notification.delivered_at.isoformat() if notification.delivered_at else None,
        "copies": notification.copies,
        "forgeries": notification.forgeries,
        "held": notification.status == Notification.Status.HELD,
        "fields": notification.fields,
        "deliveries": [
            {
                "attempt": delivery.attempt,
                "variant": delivery.variant,
                "sent_at": delivery.sent_at.isoformat(),
                "status_code": delivery.status_code,
                "body": delivery.response_body,
                "error": delivery.error,
                "acknowledged": delivery.acknowledged,
            }
            for delivery in notification.deliveries.all()
        ],
    }
