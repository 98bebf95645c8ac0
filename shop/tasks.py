"""Celery entry points of the kernel; each calls one service."""
from celery import shared_task


@shared_task
def outbox_relay_due_task() -> int:
    from shop.outbox import outbox_relay_due

    return outbox_relay_due()
