"""How the refunds app answers the payments app's signals (connected in RefundsConfig.ready)."""
from django.dispatch import receiver

from payments.signals import payment_needs_refund


@receiver(payment_needs_refund, dispatch_uid="refunds.refund_flagged_payment")
def refund_flagged_payment(sender, *, payment_id: int, **kwargs) -> None:
    from refunds.tasks import refund_create_automatic_task

    refund_create_automatic_task.delay(payment_id)
