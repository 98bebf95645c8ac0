"""One way to move a stateful row (order, payment, refund) through its table.

Each app keeps its own transition table (in its models.py), its own event
model and its own side effects; what they share is how a move is made:
the caller holds the row lock, the move is checked against the table,
asking for the status the row already has is a no-op, and every move
writes one event row in the same transaction.

    ORDER_LIFECYCLE = Lifecycle(transitions=ORDER_TRANSITIONS, event_model=OrderEvent,
                                subject="order", error=InvalidOrderTransition,
                                reference=lambda order: order.order_no)
    moved = ORDER_LIFECYCLE.move(order, to_status=OrderStatus.PAID, actor=actor, reason="paid")

A sweep that moves many rows at once (orders shipped long enough ago
complete) uses `move_many`: the same table and events, set-based.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DatabaseError, models, transaction
from django.db.models import QuerySet
from django.utils import timezone

from shop.actors import Actor, ActorEvent
from shop.exceptions import InvalidTransition

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=models.Model)


@dataclass(frozen=True)
class Lifecycle(Generic[Row]):
    transitions: Mapping[str, frozenset[str]]
    event_model: type[ActorEvent]
    # The event's foreign key to the row ("order", "payment", "refund").
    subject: str
    error: type[InvalidTransition]
    # What logs and errors call the row (order_no, out_trade_no, ...).
    reference: Callable[[Any], str]

    def move(
        self,
        row: Row,
        *,
        to_status: str,
        actor: Actor,
        reason: str = "",
        extra_fields: Mapping[str, Any] | None = None,
        **event_fields: Any,
    ) -> bool:
        """Move a row the caller has locked; False when it already had `to_status`.

        `extra_fields` are saved with the status (timestamps, ids the move
        brings); `event_fields` go on the event row (notification, detail,
        reference). Raises the lifecycle's InvalidTransition subclass.
        """
        current: str = row.status  # type: ignore[attr-defined]  # every lifecycle row has a status
        if current == to_status:
            return False
        if to_status not in self.transitions[current]:
            raise self.error(self.reference(row), current, to_status)
        row.status = to_status  # type: ignore[attr-defined]  # as above
        update_fields = ["status", "updated_at"]
        for name, value in (extra_fields or {}).items():
            setattr(row, name, value)
            update_fields.append(name)
        self._write(row, update_fields)
        self.record(row, actor=actor, reason=reason, from_status=current, **event_fields)
        self.log_move(self.subject, self.reference(row), current, to_status, reason)
        return True

    @staticmethod
    def log_move(subject: str, reference: str, from_status: str, to_status: str, reason: str) -> None:
        """The log line of one move; also for a move written by a hand-composed statement."""
        logger.info("%s %s: %s → %s (%s)", subject, reference, from_status, to_status, reason)

    @staticmethod
    def _write(row: Row, update_fields: list[str]) -> None:
        # What save(update_fields=...) sends, without the machinery around
        # it (signals no one listens to, the update-or-insert decision): one
        # UPDATE by primary key. Each field's pre_save gives the value saved,
        # as in save(): updated_at's auto_now is stamped there.
        values: dict[str, Any] = {}
        for name in update_fields:
            field = row._meta.get_field(name)
            assert isinstance(field, models.Field)  # a column of the row, not a reverse relation
            values[field.attname] = field.pre_save(row, False)
        if not type(row)._base_manager.filter(pk=row.pk).update(**values):
            raise DatabaseError(f"{row._meta.label} {row.pk} is gone: its move did not update any row")

    def move_many(
        self,
        rows: QuerySet[Row],
        *,
        from_status: str,
        to_status: str,
        actor: Actor,
        reason: str,
        limit: int,
        extra_fields: Mapping[str, Any] | None = None,
    ) -> list[int]:
        """Move up to `limit` of `rows` that are in `from_status`, set-based.

        One locking SELECT (SKIP LOCKED: a row another transaction holds,
        say a shopper confirming receipt, is left to it and to the next
        run), one UPDATE and one INSERT of events, in one transaction.
        Returns the primary keys moved. Raises the lifecycle's
        InvalidTransition subclass when the table forbids the move.
        """
        if to_status not in self.transitions[from_status]:
            raise self.error(f"{self.subject} rows", from_status, to_status)
        with transaction.atomic():
            pks = list(
                rows.filter(status=from_status)
                .select_for_update(of=("self",), skip_locked=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:limit]
            )
            if not pks:
                return []
            # Locked and filtered on the status above: every one of them moves.
            rows.model._default_manager.filter(pk__in=pks).update(
                status=to_status, updated_at=timezone.now(), **(extra_fields or {})
            )
            self.event_model._default_manager.bulk_create([
                self.event_model(**{f"{self.subject}_id": pk, "from_status": from_status, "to_status": to_status,
                                    **actor.stamp(), "reason": reason})
                for pk in pks
            ])
        logger.info("%s: %d rows %s → %s (%s)", self.subject, len(pks), from_status, to_status, reason)
        return pks

    def move_from(
        self,
        row: Row,
        *,
        from_status: str,
        to_status: str,
        actor: Actor,
        reason: str = "",
        extra_fields: Mapping[str, Any] | None = None,
        **event_fields: Any,
    ) -> bool:
        """Move a row nobody has locked, if it still has `from_status`: one conditional UPDATE.

        For a move whose only precondition is the row's status: the UPDATE's
        WHERE is the check and its row lock the lock, so the row is not read
        first. False (nothing written, `row` untouched) when the row has
        moved on; the caller then locks it and decides. The caller's
        transaction holds the UPDATE and its event together.
        """
        if to_status not in self.transitions[from_status]:
            raise self.error(self.reference(row), from_status, to_status)
        changes = {"status": to_status, "updated_at": timezone.now(), **(extra_fields or {})}
        moved = type(row)._default_manager.filter(pk=row.pk, status=from_status).update(**changes)
        if not moved:
            return False
        for name, value in changes.items():
            setattr(row, name, value)
        self.record(row, actor=actor, reason=reason, from_status=from_status, **event_fields)
        self.log_move(self.subject, self.reference(row), from_status, to_status, reason)
        return True

    def record(
        self, row: Row, *, actor: Actor, reason: str, from_status: str | None = None, **event_fields: Any
    ) -> ActorEvent:
        """Write one event row; without `from_status` it notes something that is not a move."""
        status: str = row.status  # type: ignore[attr-defined]  # every lifecycle row has a status
        # Each app's event model declares its own from/to status columns.
        fields: dict[str, Any] = {
            self.subject: row,
            "from_status": status if from_status is None else from_status,
            "to_status": status,
            **actor.stamp(),
            "reason": reason,
            **event_fields,
        }
        return self.event_model._default_manager.create(**fields)
