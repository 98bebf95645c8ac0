"""Celery entry points of the refunds app; each calls one service."""
from celery import shared_task

from config.tasks import GatewayTask
from payments.exceptions import GatewayUnavailable


@shared_task(
    bind=True,
    base=GatewayTask,
    autoretry_for=(GatewayUnavailable,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=12,
)
def refund_submit_task(self, refund_id: int) -> str:
    """Send an approved refund to the gateway; unknown outcomes retry with backoff.

    When retries run out the refund stays processing and the poller takes
    over (same out_refund_no, so nothing is refunded twice).
    """
    from refunds.services import refund_submit

    return refund_submit(refund_id=refund_id).status


# No longer enqueued (payments' outbox task announces the refund and the
# receiver starts it in-process); kept so messages queued before an upgrade
# still run.
@shared_task
def refund_create_automatic_task(payment_id: int) -> int | None:
    from refunds.services import refund_create_automatic

    refund = refund_create_automatic(payment_id=payment_id)
    return refund.pk if refund else None


@shared_task(bind=True, autoretry_for=(Exception,), retry_backoff=60, retry_backoff_max=3600, max_retries=8)
def refund_email_shopper_task(self, refund_id: int, event: str) -> bool:
    from refunds.services import refund_email_shopper

    return refund_email_shopper(refund_id=refund_id, event=event)


@shared_task
def refunds_poll_processing_task() -> int:
    from refunds.services import refunds_poll_processing

    return refunds_poll_processing()


@shared_task
def refunds_resubmit_stalled_task() -> int:
    from refunds.services import refunds_resubmit_stalled

    return refunds_resubmit_stalled()


@shared_task
def refunds_create_automatic_pending_task() -> int:
    from refunds.services import refunds_create_automatic_pending

    return refunds_create_automatic_pending()


@shared_task
def money_invariants_check_task() -> int:
    from refunds.invariants import money_invariants_check

    return len(money_invariants_check())
