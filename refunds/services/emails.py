"""The shopper's emails about their refund: approved, refunded, rejected, failed.

Each is in the language the shopper ordered in (Order.language), and each
says what happened at its own event, not what the refund's status is by
the time the email goes out: an approval email sent after the gateway
already refunded still says "approved". The shopper reads them in the
order things happened: the email of the result sends the approval's first
if it was not sent yet, so two workers racing never put "refunded" before
"approved" in the inbox.
"""
from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import translation

from refunds.models import Refund, RefundEmail
from shop.outbox import outbox_enqueue

APPROVED = "approved"
# Events that come after an approval (an automatic refund has none).
RESULTS = frozenset({"succeeded", "failed"})


def refund_email_shopper(*, refund_id: int, event: str) -> bool:
    """Tell the shopper about a decision or a result, once per refund and event.

    Automatic refunds too. Returns False when it was already sent (a second
    delivery of the task); a failure to send gives the claim back and
    re-raises, so the task retries.
    """
    refund = Refund.objects.select_related("order", "order__shopper", "payment").get(pk=refund_id)
    if not refund.order.shopper.email:
        return False
    if event in RESULTS and refund.reviewed_by_id is not None and not refund.automatic:
        _send_once(refund, APPROVED)
    return _send_once(refund, event)


def _send_once(refund: Refund, event: str) -> bool:
    try:
        with transaction.atomic():
            claim = RefundEmail.objects.create(refund=refund, event=event)
    except IntegrityError:
        return False
    try:
        with translation.override(refund.order.language or settings.LANGUAGE_CODE):
            context = {"refund": refund, "order": refund.order, "event": event, "site_url": settings.SITE_URL}
            send_mail(
                subject=render_to_string("refunds/email/update_subject.txt", context).strip(),
                message=render_to_string("refunds/email/update.txt", context),
                from_email=None,
                recipient_list=[refund.order.shopper.email],
            )
    except Exception:
        RefundEmail.objects.filter(pk=claim.pk).delete()
        raise
    return True


def enqueue_shopper_email(refund_id: int, event: str) -> None:
    """In the caller's transaction: the outbox intent to email the shopper."""
    outbox_enqueue("refunds.tasks.refund_email_shopper_task", refund_id, event)
