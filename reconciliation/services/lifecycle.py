"""STATEMENT_TRANSITIONS and DISCREPANCY_TRANSITIONS moved under a lock, with events."""
from __future__ import annotations

from typing import Any

from reconciliation.exceptions import InvalidDiscrepancyTransition, InvalidStatementTransition
from reconciliation.models import (
    DISCREPANCY_TRANSITIONS,
    STATEMENT_TRANSITIONS,
    Discrepancy,
    DiscrepancyEvent,
    Statement,
    StatementEvent,
)
from shop.actors import Actor
from shop.lifecycle import Lifecycle

STATEMENT_LIFECYCLE: Lifecycle[Statement] = Lifecycle(
    transitions=STATEMENT_TRANSITIONS,
    event_model=StatementEvent,
    subject="statement",
    error=InvalidStatementTransition,
    reference=lambda statement: f"{statement.gateway} {statement.day.isoformat()}",
)
DISCREPANCY_LIFECYCLE: Lifecycle[Discrepancy] = Lifecycle(
    transitions=DISCREPANCY_TRANSITIONS,
    event_model=DiscrepancyEvent,
    subject="discrepancy",
    error=InvalidDiscrepancyTransition,
    reference=lambda discrepancy: f"{discrepancy.kind} {discrepancy.reference}",
)


def statement_move(statement: Statement, *, to_status: str, actor: Actor, reason: str = "",
                   extra_fields: dict[str, Any] | None = None, detail: dict[str, Any] | None = None) -> bool:
    """Move a statement the caller has locked (statement_for_update)."""
    return STATEMENT_LIFECYCLE.move(statement, to_status=to_status, actor=actor, reason=reason,
                                    extra_fields=extra_fields, detail=detail or {})


def statement_record_event(statement: Statement, *, actor: Actor, reason: str,
                           detail: dict[str, Any] | None = None) -> None:
    STATEMENT_LIFECYCLE.record(statement, actor=actor, reason=reason, detail=detail or {})


def discrepancy_move(discrepancy: Discrepancy, *, to_status: str, actor: Actor, reason: str = "",
                     extra_fields: dict[str, Any] | None = None, detail: dict[str, Any] | None = None) -> bool:
    """Move a discrepancy the caller has locked (discrepancy_for_update)."""
    return DISCREPANCY_LIFECYCLE.move(discrepancy, to_status=to_status, actor=actor, reason=reason,
                                      extra_fields=extra_fields, detail=detail or {})


def discrepancy_record_event(discrepancy: Discrepancy, *, actor: Actor, reason: str,
                             detail: dict[str, Any] | None = None) -> None:
    DISCREPANCY_LIFECYCLE.record(discrepancy, actor=actor, reason=reason, detail=detail or {})
