"""The shopper's emails about their refund: decided, refunded, failed."""
from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

from refunds.models import Refund
from shop.outbox import outbox_enqueue


def refund_email_shopper(*, refund_id: int, event: str) -> bool:
    """Tell the shopper about a decision or a result. Automatic refunds too."""
    refund = Refund.objects.select_related("order", "order__shopper").get(pk=refund_id)
    email = refund.order.shopper.email
    if not email:
        return False
    with translation.override(settings.LANGUAGE_CODE):
        context = {"refund": refund, "order": refund.order, "event": event, "site_url": settings.SITE_URL}
        send_mail(
            subject=render_to_string("refunds/email/update_subject.txt", context).strip(),
            message=render_to_string("refunds/email/update.txt", context),
            from_email=None,
            recipient_list=[email],
        )
    return True


def enqueue_shopper_email(refund_id: int, event: str) -> None:
    """In the caller's transaction: the outbox intent to email the shopper."""
    outbox_enqueue("refunds.tasks.refund_email_shopper_task", refund_id, event)
