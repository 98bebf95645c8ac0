"""Celery entry points of the archive; each calls one service."""
from celery import shared_task


@shared_task
def archive_days_due_task() -> int:
    from archive.services import archive_days_due

    return len(archive_days_due())
