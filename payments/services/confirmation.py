"""The shopper's email that their payment arrived."""
from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone, translation

from payments.models import Payment


def payment_send_confirmation(*, payment_id: int) -> bool:
    """Email the shopper that their payment arrived; at most once per payment.

    Returns False when it was already sent. A failure to send un-claims it
    and re-raises so the task retries.
    """
    claimed = Payment.objects.filter(pk=payment_id, confirmation_sent_at__isnull=True).update(
        confirmation_sent_at=timezone.now()
    )
    if not claimed:
        return False
    payment = Payment.objects.select_related("order", "order__shopper").get(pk=payment_id)
    shopper = payment.order.shopper
    if not shopper.email:
        return False
    try:
        with translation.override(payment.order.language or settings.LANGUAGE_CODE):
            context = {"payment": payment, "order": payment.order, "site_url": settings.SITE_URL}
            send_mail(
                subject=render_to_string("payments/email/confirmation_subject.txt", context).strip(),
                message=render_to_string("payments/email/confirmation.txt", context),
                from_email=None,
                recipient_list=[shopper.email],
            )
    except Exception:
        Payment.objects.filter(pk=payment_id).update(confirmation_sent_at=None)
        raise
    return True
