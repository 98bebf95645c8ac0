"""Celery entry points of reconciliation; each calls one service."""
from celery import shared_task


@shared_task
def reconciliation_run_due_task() -> str:
    """The daily job (config/periodic.py): whatever gateway day is due, the late alarm, heals."""
    from reconciliation.services import reconciliation_run_due

    done = reconciliation_run_due()
    return str(done) if done else ""


@shared_task
def statement_reconcile_task(gateway_code: str, day: str, force: bool = False) -> str:
    """One day on demand (the admin action, when a worker runs it)."""
    from datetime import date

    from reconciliation.services import SCHEDULE, statement_reconcile

    return statement_reconcile(gateway_code=gateway_code, day=date.fromisoformat(day), actor=SCHEDULE,
                               force=force).outcome
