"""Matching a loaded bill against our payments and refunds, set-based.

Each query joins (or anti-joins) the statement's line table with the
payments and refunds tables as a whole; Python only sees the rows that do
not match, so its work grows with the discrepancies, never with the bill.
The SQL is portable (PostgreSQL and SQLite give the same answers; only the
name of the substring-position function differs).

How a line finds its record: a payment line by `out_trade_no` among the
gateway's payments; a refund line by `out_refund_no` among the gateway's
refunds, or by the number a refund was retried from (`<no>T<n>` matches a
line carrying `<no>`). How a record finds its line: among the lines of the
statements of the day before, the day itself and the day after (a payment
at 23:59:58 may be billed on either side of midnight).

`classify_payment` and `classify_refund` are the one definition of what a
line's disagreement is called; the CSV export uses them too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from payments.models import Payment, PaymentStatus, RefundRequired
from reconciliation.models import DiscrepancyKind, HealAction, LineKind, Statement, StatementLine
from refunds.models import Refund, RefundEvent, RefundStatus

# How a refund's record of the day it was asked of the gateway is found: the
# last time it went to processing (a retry under a new number goes again).
_LINES = StoredLines = StatementLine._meta.db_table
_PAYMENTS = Payment._meta.db_table
_REFUNDS = Refund._meta.db_table
_REFUND_EVENTS = RefundEvent._meta.db_table
_STATEMENTS = Statement._meta.db_table


@dataclass(frozen=True)
class Local:
    """Our record of a line's payment or refund, as matching sees it."""

    id: int
    status: str
    amount_minor: int
    currency: str
    order_id: int | None
    payment_id: int | None = None
    refund_required: str = ""


@dataclass(frozen=True)
class Found:
    """One discrepancy as a matching run sees it (before it meets the stored ones)."""

    kind: str
    subject: str
    reference: str
    payment_id: int | None = None
    refund_id: int | None = None
    order_id: int | None = None
    bill_amount_minor: int | None = None
    local_amount_minor: int | None = None
    bill_currency: str = ""
    local_currency: str = ""
    local_status: str = ""
    occurrences: int = 0
    line_no: int | None = None
    occurred_at: datetime | None = None
    heal_action: str = ""
    carried: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.subject, self.reference)


@dataclass(frozen=True)
class Scope:
    """What one match looks at: the statement, its bill day's window, and its neighbours."""

    statement_id: int
    gateway: str
    start: datetime
    end: datetime
    # A success of ours at or after this moment that the bill lacks waits
    # for the next day's bill...
    carry_from: datetime
    # ...unless that bill has been matched already.
    next_day_matched: bool
    # Statements whose lines count as "billed" (the day before, the day, the day after).
    billed_statement_ids: tuple[int, ...]
    refunds_dated_by_request: bool


@dataclass
class Match:
    found: list[Found]
    matched_count: int
    local_payment_count: int
    local_payment_minor: int
    local_refund_count: int
    local_refund_minor: int


# -- what a disagreement is called ----------------------------------------------


def classify_payment(*, amount_minor: int, currency: str, local: Local | None) -> tuple[str, str] | None:
    """(kind, heal action) of a payment line against our payment, or None when they agree."""
    if local is None:
        return DiscrepancyKind.MISSING_HERE, HealAction.NONE
    if local.currency != currency:
        return DiscrepancyKind.CURRENCY_MISMATCH, HealAction.NONE
    if local.amount_minor != amount_minor:
        return DiscrepancyKind.AMOUNT_MISMATCH, HealAction.NONE
    if local.status in (PaymentStatus.CREATED, PaymentStatus.PENDING):
        # A lost notification the janitor has not healed yet: the query will.
        return DiscrepancyKind.MISSING_HERE, HealAction.PAYMENT_SYNC
    if local.status in (PaymentStatus.CLOSED, PaymentStatus.FAILED):
        # We closed it, the gateway took the money: the query applies it and
        # the late-payment refund follows.
        return DiscrepancyKind.STATUS_MISMATCH, HealAction.PAYMENT_SYNC
    if local.refund_required == RefundRequired.DUPLICATE:
        # Two paid attempts for one order: the second is being refunded.
        return DiscrepancyKind.DUPLICATE, HealAction.NONE
    return None


def classify_refund(*, amount_minor: int, currency: str, local: Local | None) -> tuple[str, str] | None:
    """(kind, heal action) of a refund line against our refund, or None when they agree."""
    if local is None:
        return DiscrepancyKind.MISSING_HERE, HealAction.NONE
    if local.currency != currency:
        return DiscrepancyKind.CURRENCY_MISMATCH, HealAction.NONE
    if local.amount_minor != amount_minor:
        return DiscrepancyKind.AMOUNT_MISMATCH, HealAction.NONE
    if local.status == RefundStatus.PROCESSING:
        return DiscrepancyKind.MISSING_HERE, HealAction.REFUND_POLL
    if local.status != RefundStatus.SUCCEEDED:
        return DiscrepancyKind.STATUS_MISMATCH, HealAction.NONE
    return None


# -- the queries ----------------------------------------------------------------------


def _position_function() -> str:
    return "strpos" if connection.vendor == "postgresql" else "instr"


def _refund_candidates() -> str:
    """Our refunds of a gateway under every number a bill may carry for them."""
    position = _position_function()
    columns = "r.id, r.status, r.amount_minor, r.currency, r.order_id, r.payment_id"
    return f"""
        SELECT {columns}, r.out_refund_no AS number
          FROM {_REFUNDS} r JOIN {_PAYMENTS} p ON p.id = r.payment_id
         WHERE p.gateway = %s
        UNION ALL
        SELECT {columns}, substr(r.out_refund_no, 1, {position}(r.out_refund_no, 'T') - 1) AS number
          FROM {_REFUNDS} r JOIN {_PAYMENTS} p ON p.id = r.payment_id
         WHERE p.gateway = %s AND {position}(r.out_refund_no, 'T') > 1
    """


def _base_number(column: str) -> str:
    position = _position_function()
    return f"CASE WHEN {position}({column}, 'T') > 1 THEN substr({column}, 1, {position}({column}, 'T') - 1) END"


def _in(ids: Sequence[int]) -> str:
    return ", ".join(["%s"] * len(ids))


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _moment(value: Any) -> datetime | None:
    """A datetime from a raw row: aware on PostgreSQL, text or naive UTC on SQLite."""
    if value is None or isinstance(value, datetime) and not is_naive(value):
        return value
    moment = parse_datetime(value) if isinstance(value, str) else value
    if moment is None:
        return None
    return make_aware(moment, timezone=__import__("datetime").timezone.utc) if is_naive(moment) else moment


def _db_time(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def payment_line_problems(statement_id: int, gateway: str) -> list[tuple[Any, ...]]:
    """Payment lines without a clean counterpart, with what we have under their number."""
    return _fetch(f"""
        SELECT l.line_no, l.out_trade_no, l.amount_minor, l.currency, l.occurred_at,
               p.id, p.status, p.amount_minor, p.currency, p.order_id, p.refund_required
          FROM {_LINES} l
          LEFT JOIN {_PAYMENTS} p ON p.out_trade_no = l.out_trade_no AND p.gateway = %s
         WHERE l.statement_id = %s AND l.kind = 'payment'
           AND (p.id IS NULL OR p.status <> %s OR p.amount_minor <> l.amount_minor OR p.currency <> l.currency
                OR p.refund_required = %s)
         ORDER BY l.line_no
    """, [gateway, statement_id, PaymentStatus.SUCCEEDED, RefundRequired.DUPLICATE])


def refund_line_problems(statement_id: int, gateway: str) -> list[tuple[Any, ...]]:
    """Refund lines without a clean counterpart under either number, with what we have."""
    return _fetch(f"""
        WITH candidates AS ({_refund_candidates()})
        SELECT l.line_no, l.out_refund_no, l.amount_minor, l.currency, l.occurred_at,
               c.id, c.status, c.amount_minor, c.currency, c.order_id, c.payment_id
          FROM {_LINES} l
          LEFT JOIN candidates c ON c.number = l.out_refund_no
         WHERE l.statement_id = %s AND l.kind = 'refund'
           AND NOT EXISTS (SELECT 1 FROM candidates ok
                            WHERE ok.number = l.out_refund_no AND ok.status = %s
                              AND ok.amount_minor = l.amount_minor AND ok.currency = l.currency)
         ORDER BY l.line_no, c.id
    """, [gateway, gateway, statement_id, RefundStatus.SUCCEEDED])


def repeated_references(statement_id: int) -> list[tuple[Any, ...]]:
    """(kind, reference, lines, first line, amount, currency, when) of every number billed twice or more."""
    reference = "CASE WHEN kind = 'refund' THEN out_refund_no ELSE out_trade_no END"
    return _fetch(f"""
        SELECT kind, {reference}, COUNT(*), MIN(line_no), MIN(amount_minor), MIN(currency), MIN(occurred_at)
          FROM {_LINES}
         WHERE statement_id = %s
         GROUP BY kind, {reference}
        HAVING COUNT(*) > 1
    """, [statement_id])


def payments_not_billed(scope: Scope) -> list[tuple[Any, ...]]:
    """Our succeeded payments of the bill day that no line of the neighbouring bills names."""
    ids = scope.billed_statement_ids
    return _fetch(f"""
        SELECT p.id, p.out_trade_no, p.amount_minor, p.currency, p.paid_at, p.order_id
          FROM {_PAYMENTS} p
         WHERE p.gateway = %s AND p.status = %s AND p.paid_at >= %s AND p.paid_at < %s
           AND NOT EXISTS (SELECT 1 FROM {_LINES} l
                            WHERE l.statement_id IN ({_in(ids)}) AND l.kind = 'payment'
                              AND l.out_trade_no = p.out_trade_no)
         ORDER BY p.paid_at, p.id
    """, [scope.gateway, PaymentStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end), *ids])


def _refund_moment(scope: Scope) -> tuple[str, str, list[Any]]:
    """(SQL of the moment that dates a refund, the join it needs, its parameters)."""
    if not scope.refunds_dated_by_request:
        return "r.refunded_at", "", []
    # The latest move to processing is when the gateway was asked under the
    # refund's current number; events before the window cannot be that
    # latest move for a refund whose latest move falls inside it.
    join = f"""JOIN (SELECT refund_id, MAX(created_at) AS applied_at FROM {_REFUND_EVENTS}
                      WHERE to_status = %s AND created_at >= %s GROUP BY refund_id) e ON e.refund_id = r.id"""
    return "e.applied_at", join, [RefundStatus.PROCESSING, _db_time(scope.start)]


def refunds_not_billed(scope: Scope) -> list[tuple[Any, ...]]:
    """Our succeeded refunds dated in the bill day that no line of the neighbouring bills names."""
    ids = scope.billed_statement_ids
    moment, join, join_params = _refund_moment(scope)
    return _fetch(f"""
        SELECT r.id, r.out_refund_no, r.amount_minor, r.currency, {moment}, r.order_id, r.payment_id
          FROM {_REFUNDS} r JOIN {_PAYMENTS} p ON p.id = r.payment_id {join}
         WHERE p.gateway = %s AND r.status = %s AND {moment} >= %s AND {moment} < %s
           AND NOT EXISTS (SELECT 1 FROM {_LINES} l
                            WHERE l.statement_id IN ({_in(ids)}) AND l.kind = 'refund'
                              AND l.out_refund_no = r.out_refund_no)
           AND NOT EXISTS (SELECT 1 FROM {_LINES} l
                            WHERE l.statement_id IN ({_in(ids)}) AND l.kind = 'refund'
                              AND l.out_refund_no = {_base_number("r.out_refund_no")})
         ORDER BY {moment}, r.id
    """, [*join_params, scope.gateway, RefundStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end),
          *ids, *ids])


def local_totals(scope: Scope) -> tuple[int, int, int, int]:
    """(payments, their sum, refunds, their sum) we have as succeeded in the bill day."""
    ((payments, paid),) = _fetch(f"""
        SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM {_PAYMENTS}
         WHERE gateway = %s AND status = %s AND paid_at >= %s AND paid_at < %s
    """, [scope.gateway, PaymentStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end)])
    moment, join, join_params = _refund_moment(scope)
    ((refunds, refunded),) = _fetch(f"""
        SELECT COUNT(*), COALESCE(SUM(r.amount_minor), 0)
          FROM {_REFUNDS} r JOIN {_PAYMENTS} p ON p.id = r.payment_id {join}
         WHERE p.gateway = %s AND r.status = %s AND {moment} >= %s AND {moment} < %s
    """, [*join_params, scope.gateway, RefundStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end)])
    return int(payments), int(paid), int(refunds), int(refunded)


# -- the match ----------------------------------------------------------------------


def statement_match_lines(scope: Scope, *, line_count: int) -> Match:
    """Every disagreement between the statement's loaded lines and our records (read only)."""
    found: list[Found] = []
    problem_lines: dict[tuple[str, str], int] = {}
    found += _bill_side(LineKind.PAYMENT, payment_line_problems(scope.statement_id, scope.gateway),
                        problem_lines)
    found += _bill_side(LineKind.REFUND, refund_line_problems(scope.statement_id, scope.gateway), problem_lines)
    duplicates, duplicate_extra = _duplicates(scope.statement_id, problem_lines)
    found += duplicates
    found += _local_side(scope)
    payments, paid, refunds, refunded = local_totals(scope)
    return Match(
        found=found,
        matched_count=line_count - sum(problem_lines.values()) - duplicate_extra,
        local_payment_count=payments,
        local_payment_minor=paid,
        local_refund_count=refunds,
        local_refund_minor=refunded,
    )


def _bill_side(subject: str, rows: list[tuple[Any, ...]], problem_lines: dict[tuple[str, str], int]) -> list[Found]:
    """One Found per reference (its first line), counting the lines that disagree."""
    by_line: dict[int, tuple[Any, ...]] = {}
    for row in rows:
        line_no = row[0]
        best = by_line.get(line_no)
        # A refund line may meet several refunds (a number retried twice):
        # keep the one closest to agreeing.
        if best is None or (best[6] != RefundStatus.SUCCEEDED and row[6] == RefundStatus.SUCCEEDED):
            by_line[line_no] = row
    found: dict[str, Found] = {}
    for line_no in sorted(by_line):
        row = by_line[line_no]
        _, reference, amount, currency, occurred_at, local_id, status, local_amount, local_currency, order_id, \
            extra = row
        local = None if local_id is None else Local(
            id=local_id, status=status, amount_minor=local_amount, currency=local_currency, order_id=order_id,
            payment_id=extra if subject == LineKind.REFUND else local_id,
            refund_required=extra if subject == LineKind.PAYMENT else "")
        classify = classify_payment if subject == LineKind.PAYMENT else classify_refund
        verdict = classify(amount_minor=amount, currency=currency, local=local)
        if verdict is None:
            continue
        problem_lines[(subject, reference)] = problem_lines.get((subject, reference), 0) + 1
        if reference in found:
            continue
        kind, heal = verdict
        found[reference] = Found(
            kind=kind, subject=subject, reference=reference,
            payment_id=local.payment_id if local else None,
            refund_id=local.id if local and subject == LineKind.REFUND else None,
            order_id=local.order_id if local else None,
            bill_amount_minor=amount, local_amount_minor=local.amount_minor if local else None,
            bill_currency=currency, local_currency=local.currency if local else "",
            local_status=local.status if local else "", line_no=line_no, occurred_at=_moment(occurred_at),
            heal_action=heal,
        )
    return [
        Found(**{**vars(item), "occurrences": problem_lines[(subject, item.reference)]})
        for item in found.values()
    ]


def _duplicates(statement_id: int, problem_lines: dict[tuple[str, str], int]) -> tuple[list[Found], int]:
    """A number billed twice or more; and how many of those extra lines are not already a problem."""
    rows = repeated_references(statement_id)
    if not rows:
        return [], 0
    payments = {payment.out_trade_no: payment for payment in Payment.objects.filter(
        out_trade_no__in=[row[1] for row in rows if row[0] == LineKind.PAYMENT])}
    refunds = {refund.out_refund_no: refund for refund in Refund.objects.filter(
        out_refund_no__in=[row[1] for row in rows if row[0] == LineKind.REFUND])}
    found = []
    extra = 0
    for kind, reference, count, line_no, amount, currency, occurred_at in rows:
        clean_lines = count - problem_lines.get((kind, reference), 0)
        extra += max(0, clean_lines - 1)
        payment = payments.get(reference) if kind == LineKind.PAYMENT else None
        refund = refunds.get(reference) if kind == LineKind.REFUND else None
        local = payment or refund
        found.append(Found(
            kind=DiscrepancyKind.DUPLICATE, subject=kind, reference=reference,
            payment_id=payment.pk if payment else (refund.payment_id if refund else None),
            refund_id=refund.pk if refund else None, order_id=local.order_id if local else None,
            bill_amount_minor=amount, local_amount_minor=local.amount_minor if local else None,
            bill_currency=currency, local_currency=local.currency if local else "",
            local_status=local.status if local else "", occurrences=count, line_no=line_no,
            occurred_at=_moment(occurred_at),
        ))
    return found, extra


def _local_side(scope: Scope) -> list[Found]:
    found = []
    for payment_id, reference, amount, currency, paid_at, order_id in payments_not_billed(scope):
        moment = _moment(paid_at)
        found.append(Found(
            kind=DiscrepancyKind.MISSING_AT_GATEWAY, subject=LineKind.PAYMENT, reference=reference,
            payment_id=payment_id, order_id=order_id, local_amount_minor=amount, local_currency=currency,
            local_status=PaymentStatus.SUCCEEDED, occurred_at=moment,
            carried=_carried(scope, moment),
        ))
    for refund_id, reference, amount, currency, dated_at, order_id, payment_id in refunds_not_billed(scope):
        moment = _moment(dated_at)
        found.append(Found(
            kind=DiscrepancyKind.MISSING_AT_GATEWAY, subject=LineKind.REFUND, reference=reference,
            payment_id=payment_id, refund_id=refund_id, order_id=order_id, local_amount_minor=amount,
            local_currency=currency, local_status=RefundStatus.SUCCEEDED, occurred_at=moment,
            carried=_carried(scope, moment),
        ))
    return found


def _carried(scope: Scope, moment: datetime | None) -> bool:
    return moment is not None and moment >= scope.carry_from and not scope.next_day_matched


def lines_billing(statement_id: int, references: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of (subject, reference) the statement's lines name (a refund also under its base number)."""
    if not references:
        return set()
    payments = [reference for subject, reference in references if subject == LineKind.PAYMENT]
    refunds = [reference for subject, reference in references if subject == LineKind.REFUND]
    billed: set[tuple[str, str]] = set()
    lines = StatementLine.objects.filter(statement_id=statement_id)
    if payments:
        billed |= {(LineKind.PAYMENT, number) for number in lines.filter(
            kind=LineKind.PAYMENT, out_trade_no__in=payments).values_list("out_trade_no", flat=True)}
    if refunds:
        bases = {number.partition("T")[0] if "T" in number[1:] else number: number for number in refunds}
        numbers = set(lines.filter(kind=LineKind.REFUND, out_refund_no__in=[*refunds, *bases]).values_list(
            "out_refund_no", flat=True))
        billed |= {(LineKind.REFUND, number) for number in refunds if number in numbers}
        billed |= {(LineKind.REFUND, number) for base, number in bases.items() if base in numbers}
    return billed
