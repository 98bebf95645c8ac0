"""Every periodic job of the shop, in one list that both schedulers read.

With REDIS_URL, Celery beat enqueues each job's task on its schedule
(`beat_schedule()`, used by config/celery_app.py). Without it (`make run`'s
embedded default), `manage.py run_janitor` runs the same list in-process
(`run_due_jobs`). Each job is one Celery task calling one service; a job
that fails is logged and never keeps the others from running.

An app adds its job here, beside the others, with its schedule and why.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.schedules import BaseSchedule, crontab, schedstate, schedule
from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

EVERY_MINUTE = schedule(timedelta(minutes=1))


class SettingCrontab(BaseSchedule):
    """A crontab whose five fields ("*/10 10-19 * * *") are a Django setting.

    Read when the schedule is first asked, not when this list is imported;
    times are in CELERY_TIMEZONE (Beijing).
    """

    def __init__(self, setting: str) -> None:
        super().__init__()
        self.setting = setting
        self._crontab: crontab | None = None

    @property
    def crontab(self) -> crontab:
        if self._crontab is None:
            minute, hour, day_of_month, month_of_year, day_of_week = getattr(settings, self.setting).split()
            self._crontab = crontab(minute=minute, hour=hour, day_of_month=day_of_month,
                                    month_of_year=month_of_year, day_of_week=day_of_week, app=self.app)
        return self._crontab

    def is_due(self, last_run_at: datetime) -> schedstate:
        return self.crontab.is_due(last_run_at)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        return self.crontab.remaining_estimate(last_run_at)

    def __repr__(self) -> str:
        return f"<SettingCrontab {self.setting}>"

    def __reduce__(self) -> tuple[type[SettingCrontab], tuple[str]]:
        return self.__class__, (self.setting,)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    # Dotted path of the Celery task (also its registered name).
    task: str
    schedule: BaseSchedule
    # Beat drops a run not started within this many seconds (the next one
    # comes soon enough), so a backlog after an outage does not pile up.
    expires: float | None = None


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    # Every minute: deliver again the outbox's follow-up tasks (refund
    # submissions, automatic refunds, emails, closes) that never reached the
    # broker, or reached it and were lost, once their lease ran out
    # (OUTBOX_LEASE_SECONDS; shop/outbox.py).
    PeriodicJob("outbox-relay", "shop.tasks.outbox_relay_due_task", EVERY_MINUTE, expires=55),
    # Every minute: ask the gateways about attempts still open a few minutes
    # after they started (PAYMENT_QUERY_AFTER_SECONDS), each with its own
    # exponential backoff, so a lost notification is healed within minutes.
    PeriodicJob("payments-query-stale", "payments.tasks.payments_query_stale_task", EVERY_MINUTE, expires=55),
    # Every minute: close orders unpaid past ORDER_PAYMENT_TIMEOUT_MINUTES:
    # their attempts at the gateway first, then the order, releasing stock.
    PeriodicJob("orders-close-expired", "orders.tasks.orders_close_expired_task", EVERY_MINUTE, expires=55),
    # Every hour: complete orders shipped ORDER_AUTO_COMPLETE_DAYS ago whose
    # shopper never confirmed receipt (set-based; orders/services/completion.py).
    PeriodicJob("orders-complete-delivered", "orders.tasks.orders_complete_delivered_task",
                schedule(timedelta(hours=1)), expires=3500),
    # Every minute: poll refunds the gateway is still processing, each with
    # its own exponential backoff (REFUND_POLL_*); give up loudly at the end.
    PeriodicJob("refunds-poll-processing", "refunds.tasks.refunds_poll_processing_task", EVERY_MINUTE,
                expires=55),
    # Every minute: send again approved refunds that never reached their
    # gateway REFUND_RESUBMIT_AFTER_SECONDS after approval (the outbox's
    # second line; refunds/services/stalled.py).
    PeriodicJob("refunds-resubmit-stalled", "refunds.tasks.refunds_resubmit_stalled_task", EVERY_MINUTE,
                expires=55),
    # Every minute: start the automatic refund of any duplicate or late
    # payment whose immediate trigger was lost.
    PeriodicJob("refunds-create-automatic", "refunds.tasks.refunds_create_automatic_pending_task",
                EVERY_MINUTE, expires=55),
    # Every ten minutes: check the money invariants against the raw rows and
    # raise (or clear) the alarms staff see in admin.
    PeriodicJob("money-invariants-check", "refunds.tasks.money_invariants_check_task",
                schedule(timedelta(minutes=10)), expires=590),
    # Nightly at 02:30 Beijing time: archive the finished days' raw
    # notifications and payment and refund events, each day's manifest
    # chained to the one before (archive/services.py); a missed night is
    # caught up the next.
    PeriodicJob("archive-days", "archive.tasks.archive_days_due_task", crontab(hour=2, minute=30), expires=3600),
    # RECONCILIATION_CRONTAB (default every ten minutes from 10:00 to 19:50
    # Beijing, after the providers publish yesterday's bills): reconcile each
    # gateway's last bill day and any earlier one still due (each waits out
    # its own backoff when the bill is not out yet), raise the alarm for a
    # day not reconciled by RECONCILIATION_ALARM_AT, retry heals.
    PeriodicJob("reconciliation-daily", "reconciliation.tasks.reconciliation_run_due_task",
                SettingCrontab("RECONCILIATION_CRONTAB"), expires=540),
)


def beat_schedule(jobs: Iterable[PeriodicJob] = PERIODIC_JOBS) -> dict[str, dict[str, Any]]:
    """The jobs as Celery beat's `beat_schedule` setting."""
    entries: dict[str, dict[str, Any]] = {}
    for job in jobs:
        entry: dict[str, Any] = {"task": job.task, "schedule": job.schedule}
        if job.expires is not None:
            entry["options"] = {"expires": job.expires}
        entries[job.name] = entry
    return entries


@dataclass
class JobRun:
    job: PeriodicJob
    ok: bool
    result: Any = None


def run_due_jobs(last_runs: dict[str, datetime], *, now: datetime,
                 jobs: Iterable[PeriodicJob] = PERIODIC_JOBS) -> list[JobRun]:
    """Run, in this process, every job whose schedule says it is due.

    `last_runs` maps a job's name to when it last ran and is updated here; a
    job never run is due at once. A job's failure is logged with its name
    and the loop goes on to the next job.
    """
    runs = []
    for job in jobs:
        last = last_runs.get(job.name)
        if last is not None and not job.schedule.is_due(last).is_due:
            continue
        last_runs[job.name] = now
        try:
            result = import_string(job.task)()
        except Exception:
            logger.exception("periodic job %s failed", job.name)
            runs.append(JobRun(job, ok=False))
        else:
            runs.append(JobRun(job, ok=True, result=result))
    return runs
