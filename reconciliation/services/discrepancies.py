"""What a match found, met with what the statement already holds; and finance's decisions.

Recording is idempotent: a discrepancy is one row per statement, kind and
reference (a constraint), found again it is left alone, no longer found it
is cleared, found again after that it opens again. Decided ones (healed,
resolved, accepted) never change. A day finance signed off is reopened,
loudly, by anything newly open.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from reconciliation.exceptions import InvalidDiscrepancyTransition, NoteRequired
from reconciliation.lock_objects import discrepancy_for_update, statement_for_update
from reconciliation.models import (
    DECIDED_STATUSES,
    Discrepancy,
    DiscrepancyEvent,
    DiscrepancyKind,
    DiscrepancyStatus,
    Statement,
    StatementAlarm,
)
from reconciliation.permissions import require_finance
from reconciliation.services.lifecycle import discrepancy_move, statement_record_event
from reconciliation.services.matching import Found, lines_billing
from shop.actors import Actor

logger = logging.getLogger(__name__)

# The Found fields a stored discrepancy copies (the rest are keys or flags).
_DETAIL_FIELDS = ("payment_id", "refund_id", "order_id", "bill_amount_minor", "local_amount_minor", "bill_currency",
                  "local_currency", "local_status", "occurrences", "line_no", "occurred_at", "heal_action")


@dataclass
class Recorded:
    """What recording changed, for the run's history."""

    opened: list[Discrepancy] = field(default_factory=list)
    cleared: int = 0
    carried: int = 0
    reopened: list[Statement] = field(default_factory=list)


def _details(item: Found) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _DETAIL_FIELDS}


def discrepancies_record(*, statement: Statement, found: Iterable[Found], next_statement: Statement | None,
                         actor: Actor, now: datetime | None = None) -> Recorded:
    """Meet a match's findings with the statement's discrepancies; the caller holds the statement lock.

    New findings are created (open, or carried to `next_statement`);
    cleared ones found again open again; open or carried ones not found any
    more are cleared. Lock order: the statement, then its discrepancies.
    """
    now = now or timezone.now()
    recorded = Recorded()
    existing = {(d.kind, d.subject, d.reference): d for d in
                Discrepancy.objects.select_for_update(of=("self",)).filter(statement=statement)}
    new: list[Discrepancy] = []
    seen: set[tuple[str, str, str]] = set()
    for item in found:
        if item.key in seen:
            continue
        seen.add(item.key)
        target = DiscrepancyStatus.CARRIED if item.carried else DiscrepancyStatus.OPEN
        carried_to = next_statement if item.carried else None
        stored = existing.get(item.key)
        if stored is None:
            # A healable one is due at once: the run heals it after its commit,
            # and the daily job does if that never happened (a crash in between).
            new.append(Discrepancy(statement=statement, kind=item.kind, subject=item.subject,
                                   reference=item.reference, status=target, carried_to=carried_to,
                                   opened_at=now if target == DiscrepancyStatus.OPEN else None,
                                   next_heal_at=now if item.heal_action else None, **_details(item)))
            continue
        if stored.status in DECIDED_STATUSES:
            continue
        moves_to = target
        if stored.status == DiscrepancyStatus.OPEN:
            # Open never goes back to waiting.
            moves_to = DiscrepancyStatus.OPEN
        changed = {name: value for name, value in _details(item).items() if getattr(stored, name) != value}
        if moves_to == DiscrepancyStatus.CARRIED:
            changed["carried_to"] = carried_to
        if moves_to == DiscrepancyStatus.OPEN and stored.status != DiscrepancyStatus.OPEN:
            changed.update(opened_at=now, closed_at=None)
            if item.heal_action:
                changed.update(next_heal_at=now, heal_attempts=0)
        if moves_to != stored.status:
            discrepancy_move(stored, to_status=moves_to, actor=actor, reason=_why(stored.status, moves_to),
                             extra_fields=changed)
            if moves_to == DiscrepancyStatus.OPEN:
                recorded.opened.append(stored)
        elif changed:
            for name, value in changed.items():
                setattr(stored, name, value)
            stored.save(update_fields=[*changed, "updated_at"])
    for key, stored in existing.items():
        if key not in seen and stored.status in (DiscrepancyStatus.OPEN, DiscrepancyStatus.CARRIED):
            discrepancy_move(stored, to_status=DiscrepancyStatus.CLEARED, actor=actor,
                             reason="the bill and our records agree on it now", extra_fields={"closed_at": now})
            recorded.cleared += 1
    created = Discrepancy.objects.bulk_create(new)
    DiscrepancyEvent.objects.bulk_create([
        DiscrepancyEvent(discrepancy=item, from_status="", to_status=item.status, reason="found by matching",
                         **actor.stamp())
        for item in created
    ])
    recorded.opened += [item for item in created if item.status == DiscrepancyStatus.OPEN]
    recorded.carried = sum(1 for item in created if item.status == DiscrepancyStatus.CARRIED)
    if recorded.opened and statement.signed_off_at is not None:
        statement_reopen(statement, actor=actor, now=now, opened=recorded.opened)
        recorded.reopened.append(statement)
    return recorded


def _why(from_status: str, to_status: str) -> str:
    if to_status == DiscrepancyStatus.OPEN and from_status == DiscrepancyStatus.CARRIED:
        return "the next day's bill was matched without it"
    if to_status == DiscrepancyStatus.OPEN:
        return "found again"
    return "carried to the next day's bill"


def carried_resolve(*, statement: Statement, actor: Actor, now: datetime | None = None) -> Recorded:
    """Settle what earlier days carried to this statement: billed now, cleared; else open.

    Runs each time the statement is matched (or found to have no bill), so
    a corrected bill decides again. The caller holds this statement's lock;
    the earlier day's statement is locked after it (a later day, then an
    earlier one: never the other way round).
    """
    now = now or timezone.now()
    recorded = Recorded()
    waiting = list(Discrepancy.objects.select_for_update(of=("self",)).filter(
        carried_to=statement, kind=DiscrepancyKind.MISSING_AT_GATEWAY,
        status__in=(DiscrepancyStatus.CARRIED, DiscrepancyStatus.OPEN, DiscrepancyStatus.CLEARED)))
    billed = lines_billing(statement.pk, [(item.subject, item.reference) for item in waiting])
    by_statement: dict[int, list[Discrepancy]] = {}
    for item in waiting:
        if (item.subject, item.reference) in billed:
            if item.status != DiscrepancyStatus.CLEARED:
                discrepancy_move(item, to_status=DiscrepancyStatus.CLEARED, actor=actor,
                                 reason=f"billed on {statement.day.isoformat()}", extra_fields={"closed_at": now})
                recorded.cleared += 1
        elif item.status != DiscrepancyStatus.OPEN:
            discrepancy_move(item, to_status=DiscrepancyStatus.OPEN, actor=actor,
                             reason=f"not in the bill of {statement.day.isoformat()} either",
                             extra_fields={"opened_at": now, "closed_at": None})
            recorded.opened.append(item)
            by_statement.setdefault(item.statement_id, []).append(item)
    for statement_id, opened in by_statement.items():
        earlier = statement_for_update(statement_id=statement_id)
        if earlier.signed_off_at is not None:
            statement_reopen(earlier, actor=actor, now=now, opened=opened)
            recorded.reopened.append(earlier)
    return recorded


def billed_later_clear(*, statement: Statement, actor: Actor, days: int = 7,
                       now: datetime | None = None) -> int:
    """Clear open "missing at the gateway" of the days before that this bill turns out to list.

    A gateway may bill something a day or more after us (a refund sent
    again the next day, a clock that differs): once its line is here it is
    no discrepancy. One way only: a later correction of this bill does not
    open them again (finance would see it in this day's lines).
    """
    now = now or timezone.now()
    candidates = list(Discrepancy.objects.select_for_update(of=("self",)).filter(
        statement__gateway=statement.gateway, statement__day__lt=statement.day,
        statement__day__gte=statement.day - timedelta(days=days),
        kind=DiscrepancyKind.MISSING_AT_GATEWAY, status=DiscrepancyStatus.OPEN).exclude(carried_to=statement))
    billed = lines_billing(statement.pk, [(item.subject, item.reference) for item in candidates])
    cleared = 0
    for item in candidates:
        if (item.subject, item.reference) in billed:
            discrepancy_move(item, to_status=DiscrepancyStatus.CLEARED, actor=actor,
                             reason=f"billed later, on {statement.day.isoformat()}", extra_fields={"closed_at": now})
            cleared += 1
    return cleared


def statement_reopen(statement: Statement, *, actor: Actor, now: datetime, opened: list[Discrepancy],
                     why: str = "") -> None:
    """A signed-off day that changed (something newly open, a corrected bill): take the sign-off back, alarm."""
    references = why or ", ".join(sorted(f"{item.kind} {item.reference}" for item in opened)[:10])
    statement.signed_off_at = None
    statement.signed_off_by = None
    statement.reopened_at = now
    statement.alarm = StatementAlarm.REOPENED
    statement.alarm_raised_at = now
    statement.save(update_fields=["signed_off_at", "signed_off_by", "reopened_at", "alarm", "alarm_raised_at",
                                  "updated_at"])
    statement_record_event(statement, actor=actor, reason=f"reopened after sign-off: {references}",
                           detail={"opened": [item.pk for item in opened if item.pk]})
    logger.error("reconciliation: %s %s was signed off, and %s reopened it: %s", statement.gateway,
                 statement.day.isoformat(), f"{len(opened)} new discrepancies" if opened else "a corrected bill",
                 references)


# -- finance's decisions ------------------------------------------------------------


def discrepancy_resolve(*, discrepancy_id: int, user: Any, note: str) -> Discrepancy:
    """open → resolved, by finance, with the note saying how; a repeat is a no-op.

    Raises ReconciliationNotAllowed, NoteRequired, InvalidDiscrepancyTransition.
    """
    require_finance(user)
    note = (note or "").strip()
    if not note:
        raise NoteRequired(f"discrepancy {discrepancy_id}: resolved without a note")
    return _decide(discrepancy_id, to_status=DiscrepancyStatus.RESOLVED, user=user, note=note)


def discrepancy_accept(*, discrepancy_id: int, user: Any, note: str = "") -> Discrepancy:
    """open → accepted: finance takes the difference as it is (a note is optional).

    Raises ReconciliationNotAllowed, InvalidDiscrepancyTransition.
    """
    require_finance(user)
    return _decide(discrepancy_id, to_status=DiscrepancyStatus.ACCEPTED, user=user, note=(note or "").strip())


def _decide(discrepancy_id: int, *, to_status: str, user: Any, note: str) -> Discrepancy:
    with transaction.atomic():
        discrepancy = discrepancy_for_update(discrepancy_id=discrepancy_id)
        if discrepancy.status == to_status:
            return discrepancy
        if discrepancy.status != DiscrepancyStatus.OPEN:
            raise InvalidDiscrepancyTransition(discrepancy.reference, discrepancy.status, to_status)
        now = timezone.now()
        discrepancy_move(discrepancy, to_status=to_status, actor=Actor.staff(user), reason=note or "accepted",
                         extra_fields={"note": note, "decided_by": user, "decided_at": now, "closed_at": now})
    logger.info("reconciliation: %s %s %s by %s", discrepancy.kind, discrepancy.reference, to_status,
                getattr(user, "username", user))
    return discrepancy
