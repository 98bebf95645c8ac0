"""The daily job: reconcile what is due for every gateway with bills, raise the late alarm, heal.

Run by Celery beat on RECONCILIATION_CRONTAB (or by `manage.py run_janitor`
from the same list in config/periodic.py). Each run does only what is due:
a day not started, or one waiting (not out yet, a failed download) whose
backoff has run out; the oldest first, so what a day carries reaches the
next one in order. A day still not reconciled at RECONCILIATION_ALARM_AT
the next day raises the alarm once: an error in the log, a banner in admin
and on the finance pages, and the metrics.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reconciliation.exceptions import ReconciliationError
from reconciliation.lock_objects import statement_for_update
from reconciliation.models import FINISHED_STATUSES, Statement, StatementAlarm
from reconciliation.services.healing import discrepancies_heal
from reconciliation.services.statements import (
    SCHEDULE,
    last_bill_day,
    next_day_at,
    statement_for,
    statement_gateways,
    statement_reconcile,
)

logger = logging.getLogger(__name__)

# Days looked back at: a job that did not run for a day or two catches up.
LOOKBACK_DAYS = 3


@dataclass
class DueRun:
    reconciled: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    healed: int = 0

    def __bool__(self) -> bool:
        return bool(self.reconciled or self.alarms or self.healed)

    def __str__(self) -> str:
        return f"reconciled {', '.join(self.reconciled) or 'nothing'}; alarms {len(self.alarms)}; healed {self.healed}"


def reconciliation_run_due(*, now: datetime | None = None) -> DueRun:
    """Reconcile every due gateway day, raise late alarms, retry heals. One failure never stops the rest."""
    now = now or timezone.now()
    done = DueRun()
    for gateway in statement_gateways():
        newest = last_bill_day(gateway, now)
        for back in reversed(range(LOOKBACK_DAYS)):
            day = newest - timedelta(days=back)
            statement = Statement.objects.filter(gateway=gateway.code, day=day).first()
            if statement is not None and (statement.status in FINISHED_STATUSES or (
                    statement.next_attempt_at is not None and statement.next_attempt_at > now)):
                continue
            try:
                run = statement_reconcile(gateway_code=gateway.code, day=day, actor=SCHEDULE, now=now)
            except ReconciliationError as exc:
                logger.warning("reconciliation of %s %s skipped: %s", gateway.code, day.isoformat(), exc)
                continue
            except Exception:
                logger.exception("reconciliation of %s %s failed", gateway.code, day.isoformat())
                continue
            done.reconciled.append(f"{gateway.code} {day.isoformat()}: {run.outcome}")
        if now >= next_day_at(gateway, newest, settings.RECONCILIATION_ALARM_AT):
            alarm = statement_alarm_if_late(gateway_code=gateway.code, day=newest, now=now)
            if alarm:
                done.alarms.append(alarm)
    done.healed = discrepancies_heal(now=now)
    return done


def statement_alarm_if_late(*, gateway_code: str, day: date, now: datetime) -> str:
    """Raise the "not reconciled by the alarm time" alarm once for a day; "" when not needed."""
    statement = statement_for(gateway_code=gateway_code, day=day)
    if statement.status in FINISHED_STATUSES or statement.alarm:
        return ""
    with transaction.atomic():
        statement = statement_for_update(statement_id=statement.pk)
        if statement.status in FINISHED_STATUSES or statement.alarm:
            return ""
        statement.alarm = StatementAlarm.NOT_RECONCILED
        statement.alarm_raised_at = now
        statement.save(update_fields=["alarm", "alarm_raised_at", "updated_at"])
    message = (f"reconciliation: the {gateway_code} bill of {statement.day.isoformat()} is not reconciled by "
               f"{settings.RECONCILIATION_ALARM_AT} ({statement.status}: {statement.failure_reason or 'not started'})")
    logger.error(message)
    return message
