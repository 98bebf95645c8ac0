"""Celery entry points of the payments app; each calls one service."""
from celery import shared_task
from django.utils import timezone

from config.tasks import GatewayTask
from payments.exceptions import GatewayUnavailable


@shared_task(
    bind=True,
    autoretry_for=(Exception,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
)
def payment_send_confirmation_task(self, payment_id: int) -> bool:
    from payments.services import payment_send_confirmation

    return payment_send_confirmation(payment_id=payment_id)


@shared_task(
    bind=True,
    base=GatewayTask,
    autoretry_for=(GatewayUnavailable,),
    retry_backoff=60,
    retry_backoff_max=1800,
    retry_jitter=True,
    max_retries=10,
)
def payment_close_superseded_task(self, payment_id: int) -> str:
    """Close an attempt the shopper abandoned for a newer one, so it cannot be paid too."""
    from payments.gateways import get_gateway
    from payments.models import Payment
    from payments.services import JANITOR, payment_close_at_gateway

    payment = Payment.objects.get(pk=payment_id)
    delay = get_gateway(payment.gateway).capabilities.close_delay
    wait = (payment.created_at + delay - timezone.now()).total_seconds()
    if wait > 0:
        # Some providers refuse a close this soon after creation. In-process
        # (eager) mode cannot wait; the order's own expiry closes it then.
        if self.request.is_eager:
            return "deferred"
        raise self.retry(countdown=wait + 1)
    payment = payment_close_at_gateway(
        payment_id=payment_id, actor=JANITOR, reason="superseded by a newer attempt"
    )
    return payment.status


@shared_task
def payments_query_stale_task() -> int:
    from payments.services import payments_query_stale

    return payments_query_stale()


@shared_task
def payment_announce_refund_needed_task(payment_id: int) -> None:
    """After the commit that flagged a payment for refund: payment_needs_refund."""
    from payments.services import payment_announce_refund_needed

    payment_announce_refund_needed(payment_id=payment_id)
