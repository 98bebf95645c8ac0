"""Celery entry points of the orders app; each calls one service."""
from celery import shared_task


@shared_task
def orders_close_expired_task() -> int:
    from orders.services import orders_close_expired

    return orders_close_expired()


@shared_task
def orders_complete_delivered_task() -> int:
    from orders.services import orders_complete_delivered

    return orders_complete_delivered()
