"""How the refunds app answers the payments app's signals (connected in RefundsConfig.ready)."""
from django.dispatch import receiver

from payments.signals import payment_needs_refund


@receiver(payment_needs_refund, dispatch_uid="refunds.refund_flagged_payment")
def refund_flagged_payment(sender, *, payment_id: int, **kwargs) -> None:
    # Sent inside payments' outbox task, on a worker: start the refund here;
    # a failure fails that task, which the outbox delivers again.
    from refunds.services import refund_create_automatic

    refund_create_automatic(payment_id=payment_id)
