"""Reconciling one gateway's day: download, keep, load, match, heal; and signing a day off.

    pending ──download──▶ fetched ──load + match──▶ matched
       │  ╲                   ╲
       │   no bill by the      a malformed or damaged bill: failed (the
       │   deadline: no_bill   reason kept, tried again with backoff)
       └── not out yet: stays pending, tried again with backoff

No gateway call runs inside a transaction or under a lock: the download
happens first and the file is stored (its SHA-256 taken), then one
transaction locks the statement, replaces its lines from the stored file
(COPY on PostgreSQL), matches them (reconciliation/services/matching.py),
records the discrepancies and moves the statement. A bill that fails to
parse rolls all of it back: nothing is half-imported. Healing runs after
the commit, through the payment and refund services.

Reconciling a day again gives the same result: the same file is matched
again without reloading its lines, a corrected file replaces them, and the
discrepancies are met with the stored ones (discrepancies.py).
"""
from __future__ import annotations

import hashlib
import logging
import re
import time as monotonic
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.utils import timezone

from payments.exceptions import (
    GatewayError,
    GatewayNotConfigured,
    GatewayRejected,
    GatewayUnavailable,
    NoStatement,
    NoStatementReason,
    StatementFormatError,
    StatementIntegrityError,
)
from payments.gateways import get_gateway
from payments.gateways.base import Gateway, RefundBillDay, StatementFile, StatementWindow
from reconciliation import metrics
from reconciliation.exceptions import DayNotOver, NoStatementsForGateway, SignOffRefused
from reconciliation.lock_objects import statement_for_update
from reconciliation.models import (
    FINISHED_STATUSES,
    DiscrepancyStatus,
    RunOutcome,
    Statement,
    StatementAlarm,
    StatementRun,
    StatementStatus,
)
from reconciliation.permissions import require_finance
from reconciliation.services.discrepancies import (
    Recorded,
    billed_later_clear,
    carried_resolve,
    discrepancies_record,
    statement_reopen,
)
from reconciliation.services.healing import discrepancies_heal
from reconciliation.services.lifecycle import statement_move, statement_record_event
from reconciliation.services.loading import lines_replace
from reconciliation.services.matching import Scope, local_totals, statement_match_lines
from shop.actors import Actor

logger = logging.getLogger(__name__)

SCHEDULE = Actor.system("reconciliation-schedule")
# A bill not out yet (or a download that failed) is asked for again after
# this, doubling, up to the cap; the deadline turns "not out" into no_bill.
RETRY_AFTER = timedelta(minutes=10)
RETRY_MAX = timedelta(hours=2)
_CHUNK = 1024 * 1024
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# -- the gateways that have bills ------------------------------------------------------


def statement_gateway(code: str) -> Gateway:
    """The configured adapter of `code`, if its provider has daily bills; NoStatementsForGateway otherwise."""
    try:
        gateway = get_gateway(code)
    except GatewayNotConfigured as exc:
        raise NoStatementsForGateway(f"{code}: {exc}") from exc
    if gateway.statement_window is None:
        raise NoStatementsForGateway(f"{code}: this gateway has no daily bills")
    return gateway


def statement_gateways() -> list[Gateway]:
    """Every enabled, configured gateway with daily bills, in PAYMENT_GATEWAYS order."""
    found = []
    for code in settings.PAYMENT_GATEWAYS:
        try:
            found.append(statement_gateway(code))
        except NoStatementsForGateway:
            continue
    return found


def _window(gateway: Gateway) -> StatementWindow:
    window = gateway.statement_window
    assert window is not None  # statement_gateway() let only such gateways through
    return window


def last_bill_day(gateway: Gateway, now: datetime) -> date:
    """The latest bill day that is over at the provider (yesterday, on its clock)."""
    return _window(gateway).day_of(now) - timedelta(days=1)


def next_day_at(gateway: Gateway, day: date, clock_time: str) -> datetime:
    """`clock_time` ("HH:MM") on the day after bill day `day`, on the provider's clock."""
    hours, minutes = (int(part) for part in clock_time.split(":"))
    return datetime.combine(day + timedelta(days=1), time(hours, minutes), tzinfo=_window(gateway).zone)


def statement_for(*, gateway_code: str, day: date) -> Statement:
    """The statement of that gateway and day, created (pending) on first use."""
    try:
        statement, _ = Statement.objects.get_or_create(gateway=gateway_code, day=day)
    except IntegrityError:
        statement = Statement.objects.get(gateway=gateway_code, day=day)
    return statement


# -- one day --------------------------------------------------------------------------


@dataclass
class _Run:
    record: StatementRun
    started: float
    outcome: str = ""
    detail: str = ""
    recorded: Recorded | None = None


def statement_reconcile(*, gateway_code: str, day: date, actor: Actor, force: bool = False,
                        now: datetime | None = None) -> StatementRun:
    """Reconcile one gateway's bill day and record the run; returns the run.

    A finished day (matched, no bill) is left alone unless `force`, which
    downloads the bill anew (a corrected bill replaces the lines; the same
    bill matches again). Idempotent and safe to run twice at once: the
    statement row lock serialises the matching. Raises
    NoStatementsForGateway, DayNotOver; gateway trouble is recorded on the
    statement and the run, never raised.
    """
    now = now or timezone.now()
    gateway = statement_gateway(gateway_code)
    if day > last_bill_day(gateway, now):
        raise DayNotOver(f"{gateway_code} {day.isoformat()}: the bill day is not over at the provider yet")
    statement = statement_for(gateway_code=gateway_code, day=day)
    run = _Run(StatementRun.objects.create(statement=statement, reason="forced" if force else "", **actor.stamp()),
               monotonic.monotonic())
    try:
        _reconcile(statement, gateway, run=run, actor=actor, force=force, now=now)
    except BaseException as exc:
        run.outcome, run.detail = RunOutcome.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        _run_finish(run)
        raise
    _run_finish(run)
    if run.outcome in (RunOutcome.MATCHED, RunOutcome.NO_BILL):
        run.record.healed = discrepancies_heal(statement_id=statement.pk, now=now)
        run.record.save(update_fields=["healed"])
        if run.record.healed:
            statement_local_totals_refresh(statement_id=statement.pk)
    return run.record


def statement_local_totals_refresh(*, statement_id: int) -> Statement:
    """Our side of a day's totals again (after healing applied payments or refunds of that day)."""
    statement = Statement.objects.get(pk=statement_id)
    scope, _next = scope_for(statement, statement_gateway(statement.gateway))
    payments, paid, refunds, refunded = local_totals(scope)
    Statement.objects.filter(pk=statement_id).update(local_payment_count=payments, local_payment_minor=paid,
                                                     local_refund_count=refunds, local_refund_minor=refunded,
                                                     updated_at=timezone.now())
    return Statement.objects.get(pk=statement_id)


def _run_finish(run: _Run) -> None:
    record = run.record
    statement = Statement.objects.get(pk=record.statement_id)
    record.finished_at = timezone.now()
    record.duration_ms = int((monotonic.monotonic() - run.started) * 1000)
    record.outcome = run.outcome
    record.detail = run.detail[:2000]
    record.sha256 = statement.sha256
    record.line_count = statement.line_count
    record.matched_count = statement.matched_count
    if run.recorded is not None:
        record.opened = len(run.recorded.opened)
        record.cleared = run.recorded.cleared
        record.carried = run.recorded.carried
        record.reopened_day = any(item.pk == statement.pk for item in run.recorded.reopened)
    record.found = statement.discrepancies.exclude(status=DiscrepancyStatus.CLEARED).count()
    record.save()
    metrics.runs.labels(gateway=statement.gateway, outcome=run.outcome or "none").inc()
    logger.info("reconciliation %s %s: %s in %d ms (%s lines, %s matched, %s found) %s", statement.gateway,
                statement.day.isoformat(), record.outcome, record.duration_ms, record.line_count,
                record.matched_count, record.found, record.detail)


def _reconcile(statement: Statement, gateway: Gateway, *, run: _Run, actor: Actor, force: bool,
               now: datetime) -> None:
    if statement.status in FINISHED_STATUSES and not force:
        run.outcome = RunOutcome.UNCHANGED
        return
    if statement.status != StatementStatus.FETCHED or force or not statement.file_name:
        if not _download(statement, gateway, run=run, actor=actor, now=now):
            return
    _load_and_match(statement.pk, gateway, run=run, actor=actor, now=now)


def _download(statement: Statement, gateway: Gateway, *, run: _Run, actor: Actor, now: datetime) -> bool:
    """Fetch and keep the bill, moving the statement to fetched; False when there is none to match."""
    try:
        bill = gateway.fetch_statement(statement.day)
    except NoStatement as exc:
        _no_bill_or_wait(statement.pk, gateway, exc, run=run, actor=actor, now=now)
        return False
    except StatementIntegrityError as exc:
        # The file arrived damaged or not as announced: throw it away, try again later.
        _failed(statement.pk, reason=f"the bill arrived damaged: {exc}", run=run, actor=actor, now=now)
        return False
    except GatewayRejected as exc:
        _failed(statement.pk, reason=f"the gateway refused the bill request: {exc}", run=run, actor=actor, now=now)
        return False
    except (GatewayUnavailable, GatewayError) as exc:
        _wait(statement.pk, reason=f"the gateway could not be reached: {exc}", outcome=RunOutcome.UNAVAILABLE,
              run=run, now=now)
        return False
    name, digest, size = _keep(statement, bill)
    with transaction.atomic():
        locked = statement_for_update(statement_id=statement.pk)
        fields: dict[str, Any] = {"file_name": name, "filename": bill.filename[:255], "sha256": digest,
                                  "size_bytes": size, "fetched_at": timezone.now(), "attempts": locked.attempts + 1,
                                  "next_attempt_at": None, "failure_reason": ""}
        if not statement_move(locked, to_status=StatementStatus.FETCHED, actor=actor,
                              reason=f"bill downloaded ({size} bytes, SHA-256 {digest[:16]}…)",
                              extra_fields=fields, detail={"sha256": digest, "file": name}):
            for field_name, value in fields.items():
                setattr(locked, field_name, value)
            locked.save(update_fields=[*fields, "updated_at"])
    return True


def _keep(statement: Statement, bill: StatementFile) -> tuple[str, str, int]:
    """Store the bill as downloaded in the `bills` storage; (its name, SHA-256, size)."""
    digest = hashlib.sha256()
    size = 0
    with bill.open() as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    sha256 = digest.hexdigest()
    safe = _UNSAFE_NAME.sub("_", bill.filename)[-80:] or "bill"
    name = f"{statement.gateway}/{statement.day:%Y/%m}/{statement.day.isoformat()}_{sha256[:16]}_{safe}"
    storage = storages["bills"]
    if not storage.exists(name):
        with bill.open() as stream:
            name = storage.save(name, File(stream, name=safe))
    return name, sha256, size


def _stored_bill(statement: Statement) -> StatementFile:
    storage = storages["bills"]
    name = statement.file_name
    return StatementFile(day=statement.day, filename=statement.filename,
                         opener=lambda: storage.open(name, "rb"))  # type: ignore[return-value, arg-type]


def _lines(gateway: Gateway, statement: Statement) -> Iterator[Any]:
    return iter(gateway.parse_statement(_stored_bill(statement)))


def scope_for(statement: Statement, gateway: Gateway) -> tuple[Scope, Statement]:
    """What matching the statement looks at, and the next day's statement (created if missing)."""
    window = _window(gateway)
    start, end = window.bounds(statement.day)
    neighbours = {item.day: item for item in Statement.objects.filter(
        gateway=statement.gateway, day__range=(statement.day - timedelta(days=1), statement.day + timedelta(days=1)))}
    next_statement = neighbours.get(statement.day + timedelta(days=1)) or statement_for(
        gateway_code=statement.gateway, day=statement.day + timedelta(days=1))
    ids = tuple(sorted({item.pk for item in neighbours.values()} | {statement.pk}))
    scope = Scope(
        statement_id=statement.pk,
        gateway=statement.gateway,
        start=start,
        end=end,
        carry_from=end - timedelta(minutes=settings.RECONCILIATION_CARRY_MINUTES),
        next_day_matched=next_statement.status in FINISHED_STATUSES,
        billed_statement_ids=ids,
        refunds_dated_by_request=window.refunds == RefundBillDay.REQUESTED,
    )
    return scope, next_statement


def _load_and_match(statement_id: int, gateway: Gateway, *, run: _Run, actor: Actor, now: datetime) -> None:
    try:
        with transaction.atomic():
            statement = statement_for_update(statement_id=statement_id)
            if statement.status not in (StatementStatus.FETCHED, StatementStatus.MATCHED):
                run.outcome, run.detail = RunOutcome.UNCHANGED, f"the statement is {statement.status} now"
                return
            fields: dict[str, Any] = {}
            # Finance signed off the file whose lines are loaded: another one is never taken silently.
            replaces_signed_off = bool(statement.signed_off_at and statement.lines_sha256
                                       and statement.lines_sha256 != statement.sha256)
            if statement.lines_sha256 != statement.sha256:
                totals = lines_replace(statement_id=statement.pk, lines=_lines(gateway, statement),
                                       columns=gateway.statement_columns(_stored_bill(statement)))
                fields.update(
                    lines_sha256=statement.sha256, line_count=totals.line_count, repeated=totals.repeated,
                    bill_payment_count=totals.payment_count, bill_payment_minor=totals.payment_minor,
                    bill_refund_count=totals.refund_count, bill_refund_minor=totals.refund_minor,
                    bill_fee_minor=totals.fee_minor,
                    currency=next(iter(totals.currencies)) if len(totals.currencies) == 1 else statement.currency,
                )
            _match(statement, gateway, run=run, actor=actor, now=now, to_status=StatementStatus.MATCHED,
                   line_count=fields.get("line_count", statement.line_count),
                   repeated=fields.get("repeated", statement.repeated), fields=fields)
            if replaces_signed_off and statement.signed_off_at is not None:
                statement_reopen(statement, actor=actor, now=now, opened=[],
                                 why=f"a corrected bill (SHA-256 {statement.sha256[:16]}…) replaced the one signed off")
                assert run.recorded is not None
                run.recorded.reopened.append(statement)
            run.outcome = RunOutcome.MATCHED
    except StatementFormatError as exc:
        _failed(statement_id, reason=f"the bill does not parse: {exc}", run=run, actor=actor, now=now)


def _match(statement: Statement, gateway: Gateway, *, run: _Run, actor: Actor, now: datetime, to_status: str,
           line_count: int, repeated: dict[str, int], fields: dict[str, Any]) -> None:
    """Match the loaded lines and record what was found; the caller holds the statement lock."""
    scope, next_statement = scope_for(statement, gateway)
    match = statement_match_lines(scope, line_count=line_count, repeated=repeated)
    recorded = discrepancies_record(statement=statement, found=match.found, next_statement=next_statement,
                                    actor=actor, now=now)
    carried = carried_resolve(statement=statement, actor=actor, now=now)
    recorded.cleared += carried.cleared + billed_later_clear(statement=statement, actor=actor, now=now)
    recorded.reopened += carried.reopened
    run.recorded = recorded
    fields.update(
        matched_count=max(match.matched_count, 0), matched_at=now, failure_reason="", next_attempt_at=None,
        local_payment_count=match.local_payment_count, local_payment_minor=match.local_payment_minor,
        local_refund_count=match.local_refund_count, local_refund_minor=match.local_refund_minor,
    )
    if to_status == StatementStatus.NO_BILL and (match.local_payment_count or match.local_refund_count):
        fields.update(alarm=StatementAlarm.NO_BILL_WITH_TRANSACTIONS, alarm_raised_at=now)
        logger.error("reconciliation: no %s bill for %s, but we have %d payments and %d refunds that day",
                     statement.gateway, statement.day.isoformat(), match.local_payment_count,
                     match.local_refund_count)
    elif statement.alarm in (StatementAlarm.NOT_RECONCILED, StatementAlarm.NO_BILL_WITH_TRANSACTIONS):
        fields.update(alarm=StatementAlarm.NONE, alarm_raised_at=None)
    reason = f"{line_count} lines, {max(match.matched_count, 0)} matched, {len(match.found)} found"
    if not statement_move(statement, to_status=to_status, actor=actor, reason=reason, extra_fields=fields):
        for field_name, value in fields.items():
            setattr(statement, field_name, value)
        statement.save(update_fields=[*fields, "updated_at"])
        statement_record_event(statement, actor=actor, reason=f"matched again: {reason}")


def _no_bill_or_wait(statement_id: int, gateway: Gateway, exc: NoStatement, *, run: _Run, actor: Actor,
                     now: datetime) -> None:
    statement = Statement.objects.get(pk=statement_id)
    if statement.status in FINISHED_STATUSES:
        # A forced run of a finished day that finds no bill any more keeps what it had.
        run.outcome, run.detail = RunOutcome.UNCHANGED, f"no bill now ({exc}); the day keeps its result"
        return
    deadline = next_day_at(gateway, statement.day, settings.RECONCILIATION_NO_BILL_AFTER)
    scope, _next = scope_for(statement, gateway)
    payments, _paid, refunds, _refunded = local_totals(scope)
    quiet_day = exc.reason == NoStatementReason.NONE and not payments and not refunds
    if now < deadline and not quiet_day:
        _wait(statement_id, reason=f"no bill yet ({exc})", outcome=RunOutcome.NOT_READY, run=run, now=now)
        return
    with transaction.atomic():
        statement = statement_for_update(statement_id=statement_id)
        if statement.status in FINISHED_STATUSES:
            run.outcome = RunOutcome.UNCHANGED
            return
        lines_replace(statement_id=statement.pk, lines=[])
        fields: dict[str, Any] = {"failure_reason": str(exc)[:2000], "lines_sha256": "", "line_count": 0,
                                  "repeated": {}, "bill_payment_count": 0, "bill_payment_minor": 0,
                                  "bill_refund_count": 0, "bill_refund_minor": 0, "bill_fee_minor": 0,
                                  "attempts": statement.attempts + 1}
        _match(statement, gateway, run=run, actor=actor, now=now, to_status=StatementStatus.NO_BILL, line_count=0,
               repeated={}, fields=fields)
    run.outcome, run.detail = RunOutcome.NO_BILL, str(exc)


def _wait(statement_id: int, *, reason: str, outcome: str, run: _Run, now: datetime) -> None:
    """Nothing to match yet: note why and when to ask again (the status stays)."""
    with transaction.atomic():
        statement = statement_for_update(statement_id=statement_id)
        attempts = statement.attempts + 1
        statement.attempts = attempts
        statement.next_attempt_at = now + _retry_delay(attempts)
        if statement.status not in FINISHED_STATUSES:
            statement.failure_reason = reason[:2000]
        statement.save(update_fields=["attempts", "next_attempt_at", "failure_reason", "updated_at"])
    run.outcome, run.detail = outcome, reason


def _failed(statement_id: int, *, reason: str, run: _Run, actor: Actor, now: datetime) -> None:
    """A bill that cannot be used: failed with the reason, asked for again later."""
    with transaction.atomic():
        statement = statement_for_update(statement_id=statement_id)
        attempts = statement.attempts + 1
        fields: dict[str, Any] = {"failure_reason": reason[:2000], "attempts": attempts,
                                  "next_attempt_at": now + _retry_delay(attempts)}
        if statement.status in (StatementStatus.PENDING, StatementStatus.FETCHED):
            statement_move(statement, to_status=StatementStatus.FAILED, actor=actor, reason=reason[:2000],
                           extra_fields=fields)
        elif statement.status in FINISHED_STATUSES:
            # A forced run of a finished day whose new download is bad keeps the day as it was.
            statement_record_event(statement, actor=actor, reason=f"a new download failed: {reason}"[:2000])
        else:
            for field_name, value in fields.items():
                setattr(statement, field_name, value)
            statement.save(update_fields=[*fields, "updated_at"])
    logger.error("reconciliation: %s", reason)
    run.outcome, run.detail = RunOutcome.FAILED, reason


def _retry_delay(attempts: int) -> timedelta:
    return min(RETRY_AFTER * (2 ** max(attempts - 1, 0)), RETRY_MAX)


# -- finance signs a day off -------------------------------------------------------


def statement_sign_off(*, statement_id: int, user: Any, note: str = "") -> Statement:
    """Finance's mark on a finished day with nothing open; a repeat changes nothing.

    Carried items may still wait for the next day (a discrepancy they turn
    into reopens the day). Raises ReconciliationNotAllowed, SignOffRefused.
    """
    require_finance(user)
    with transaction.atomic():
        statement = statement_for_update(statement_id=statement_id)
        if statement.signed_off_at is not None:
            return statement
        if statement.status not in FINISHED_STATUSES:
            raise SignOffRefused(f"{statement}: {statement.status}, not reconciled",
                                 user_message=SignOffRefused.not_finished)
        open_count = statement.discrepancies.filter(status=DiscrepancyStatus.OPEN).count()
        if open_count:
            raise SignOffRefused(f"{statement}: {open_count} discrepancies are open")
        statement.signed_off_at = timezone.now()
        statement.signed_off_by = user
        statement.sign_off_note = (note or "").strip()
        update = ["signed_off_at", "signed_off_by", "sign_off_note", "updated_at"]
        if statement.alarm == StatementAlarm.REOPENED:
            statement.alarm, statement.alarm_raised_at = StatementAlarm.NONE, None
            update += ["alarm", "alarm_raised_at"]
        statement.save(update_fields=update)
        statement_record_event(statement, actor=Actor.staff(user), reason=f"signed off {statement.sign_off_note}".strip())
    logger.info("reconciliation: %s signed off by %s", statement, getattr(user, "username", user))
    return statement
