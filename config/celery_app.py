"""The Celery app, and the one place every periodic task is declared.

Configuration comes from Django settings under the CELERY_ namespace
(config/settings/base.py). Without REDIS_URL tasks run in-process.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat schedule. Each entry says when and why; later capabilities add theirs.
app.conf.beat_schedule = {
    # Every minute: ask the gateways about attempts still open a few minutes
    # after they started (PAYMENT_QUERY_AFTER_SECONDS), each with its own
    # exponential backoff, so a lost notification is healed within minutes.
    "payments-query-stale": {
        "task": "payments.tasks.payments_query_stale_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Every minute: close orders unpaid past ORDER_PAYMENT_TIMEOUT_MINUTES:
    # their attempts at the gateway first, then the order, releasing stock.
    "orders-close-expired": {
        "task": "payments.tasks.orders_close_expired_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Every minute: poll refunds the gateway is still processing, each with
    # its own exponential backoff (REFUND_POLL_*); give up loudly at the end.
    "refunds-poll-processing": {
        "task": "refunds.tasks.refunds_poll_processing_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Every minute: start the automatic refund of any duplicate or late
    # payment whose immediate trigger was lost.
    "refunds-create-automatic": {
        "task": "refunds.tasks.refunds_create_automatic_pending_task",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Every ten minutes: check the money invariants against the raw rows and
    # raise (or clear) the alarms staff see in admin.
    "money-invariants-check": {
        "task": "refunds.tasks.money_invariants_check_task",
        "schedule": 600.0,
        "options": {"expires": 590},
    },
}
