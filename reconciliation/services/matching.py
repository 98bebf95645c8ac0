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

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

from payments.models import Payment, PaymentStatus, RefundRequired
from reconciliation.models import DiscrepancyKind, HealAction, LineKind, StatementLine
from refunds.models import Refund, RefundEvent, RefundStatus

_LINES = StatementLine._meta.db_table
_PAYMENTS = Payment._meta.db_table
_REFUNDS = Refund._meta.db_table
_REFUND_EVENTS = RefundEvent._meta.db_table


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

# Memory for the hash joins of one match (a million lines hash in ~200 MB);
# set for the match's own transaction only.
MATCH_WORK_MEM = "256MB"
_LOOKUP_CHUNK = 500


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
    return make_aware(moment, timezone=UTC) if is_naive(moment) else moment


def _db_time(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def full_outer_join_supported() -> bool:
    return connection.vendor != "sqlite" or sqlite3.sqlite_version_info >= (3, 39)


def _full_join(select: str, left: str, right: str, on: str, where: str) -> str:
    """`SELECT select FROM left l FULL OUTER JOIN right r ON on WHERE where`, portable.

    SQLite has FULL OUTER JOIN from 3.39; before that the same rows come
    from a LEFT JOIN and the right side's unmatched rows.
    """
    if full_outer_join_supported():
        return f"SELECT {select} FROM ({left}) l FULL OUTER JOIN ({right}) r ON {on} WHERE {where}"
    return (f"SELECT {select} FROM ({left}) l LEFT JOIN ({right}) r ON {on} WHERE {where} "
            f"UNION ALL SELECT {select} FROM ({right}) r LEFT JOIN ({left}) l ON {on} WHERE l.line_no IS NULL")


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


def payments_compared(scope: Scope) -> list[tuple[Any, ...]]:
    """The day's payment lines FULL OUTER JOINed with our successes of the bill day; only rows that disagree.

    Columns: line_no, out_trade_no, amount, currency, occurred_at of the
    line, then id, out_trade_no, amount, currency, order_id,
    refund_required, paid_at of the payment (either side may be NULL).
    """
    lines = (f"SELECT line_no, out_trade_no, amount_minor, currency, occurred_at FROM {_LINES} "
             "WHERE statement_id = %s AND kind = 'payment'")
    payments = (f"SELECT id, out_trade_no AS number, amount_minor AS local_amount, currency AS local_currency, "
                f"order_id, refund_required, paid_at FROM {_PAYMENTS} "
                "WHERE gateway = %s AND status = %s AND paid_at >= %s AND paid_at < %s")
    select = ("l.line_no, l.out_trade_no, l.amount_minor, l.currency, l.occurred_at, r.id, r.number, r.local_amount, "
              "r.local_currency, r.order_id, r.refund_required, r.paid_at")
    sql = _full_join(select, lines, payments, "r.number = l.out_trade_no",
                     "l.line_no IS NULL OR r.id IS NULL OR r.local_amount <> l.amount_minor "
                     "OR r.local_currency <> l.currency OR r.refund_required = %s")
    params = [scope.statement_id, scope.gateway, PaymentStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end)]
    if "UNION ALL" in sql:
        return _fetch(sql, [*params, RefundRequired.DUPLICATE, *params[1:], *params[:1]])
    return _fetch(sql, [*params, RefundRequired.DUPLICATE])


def refunds_compared(scope: Scope) -> list[tuple[Any, ...]]:
    """The day's refund lines FULL OUTER JOINed with our successes dated in the bill day; only disagreements.

    Columns: line_no, out_refund_no, amount, currency, occurred_at of the
    line, then id, out_refund_no, amount, currency, order_id, payment_id,
    the dating moment of the refund.
    """
    moment, join, join_params = _refund_moment(scope)
    lines = (f"SELECT line_no, out_refund_no, amount_minor, currency, occurred_at FROM {_LINES} "
             "WHERE statement_id = %s AND kind = 'refund'")
    refunds = (f"SELECT r.id, r.out_refund_no AS number, r.amount_minor AS local_amount, "
               f"r.currency AS local_currency, r.order_id, r.payment_id, {moment} AS dated_at "
               f"FROM {_REFUNDS} r JOIN {_PAYMENTS} p ON p.id = r.payment_id {join} "
               f"WHERE p.gateway = %s AND r.status = %s AND {moment} >= %s AND {moment} < %s")
    select = ("l.line_no, l.out_refund_no, l.amount_minor, l.currency, l.occurred_at, r.id, r.number, r.local_amount, "
              "r.local_currency, r.order_id, r.payment_id, r.dated_at")
    sql = _full_join(select, lines, refunds, "r.number = l.out_refund_no",
                     "l.line_no IS NULL OR r.id IS NULL OR r.local_amount <> l.amount_minor "
                     "OR r.local_currency <> l.currency")
    left = [scope.statement_id]
    right = [*join_params, scope.gateway, RefundStatus.SUCCEEDED, _db_time(scope.start), _db_time(scope.end)]
    if "UNION ALL" in sql:
        return _fetch(sql, [*left, *right, *right, *left])
    return _fetch(sql, [*left, *right])


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


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _LOOKUP_CHUNK):
        yield values[start:start + _LOOKUP_CHUNK]


def base_number(out_refund_no: str) -> str:
    """The number a refund retried as `<no>T<n>` was first asked under; itself otherwise."""
    position = out_refund_no.find("T", 1)
    return out_refund_no[:position] if position > 0 else out_refund_no


def _payments_named(gateway: str, numbers: Sequence[str]) -> dict[str, Local]:
    found = {}
    for chunk in _chunks(numbers):
        for payment in Payment.objects.filter(gateway=gateway, out_trade_no__in=chunk).values(
                "id", "out_trade_no", "status", "amount_minor", "currency", "order_id", "refund_required"):
            found[payment["out_trade_no"]] = Local(
                id=payment["id"], status=payment["status"], amount_minor=payment["amount_minor"],
                currency=payment["currency"], order_id=payment["order_id"], payment_id=payment["id"],
                refund_required=payment["refund_required"])
    return found


def _refunds_named(gateway: str, numbers: Sequence[str]) -> dict[str, Local]:
    """Our refunds of the gateway under each number, or retried from it (the agreeing one first)."""
    found: dict[str, Local] = {}
    for chunk in _chunks(numbers):
        retried = Q()
        for number in chunk:
            retried |= Q(out_refund_no__startswith=f"{number}T")
        rows = Refund.objects.filter(Q(out_refund_no__in=chunk) | retried, payment__gateway=gateway).values(
            "id", "out_refund_no", "status", "amount_minor", "currency", "order_id", "payment_id")
        for refund in rows:
            number = refund["out_refund_no"] if refund["out_refund_no"] in chunk else base_number(
                refund["out_refund_no"])
            if number not in chunk:
                continue
            local = Local(id=refund["id"], status=refund["status"], amount_minor=refund["amount_minor"],
                          currency=refund["currency"], order_id=refund["order_id"], payment_id=refund["payment_id"])
            known = found.get(number)
            if known is None or (known.status != RefundStatus.SUCCEEDED and local.status == RefundStatus.SUCCEEDED):
                found[number] = local
    return found


def _billed_in(statement_ids: Sequence[int], kind: str, numbers: Sequence[str]) -> set[str]:
    """Which of `numbers` the lines of these statements carry (refunds also under their base number)."""
    if not statement_ids or not numbers:
        return set()
    column = "out_trade_no" if kind == LineKind.PAYMENT else "out_refund_no"
    wanted = {number: number for number in numbers}
    if kind == LineKind.REFUND:
        wanted.update({base_number(number): number for number in numbers if base_number(number) != number})
    billed: set[str] = set()
    keys = list(wanted)
    for chunk in _chunks(keys):
        for value in StatementLine.objects.filter(statement_id__in=statement_ids, kind=kind, **{
                f"{column}__in": chunk}).values_list(column, flat=True).distinct():
            billed.add(wanted[value])
    return billed


# -- the match ----------------------------------------------------------------------


def statement_match_lines(scope: Scope, *, line_count: int, repeated: dict[str, int]) -> Match:
    """Every disagreement between the statement's loaded lines and our records (read only).

    `repeated` is what loading found billed more than once.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL work_mem = '{MATCH_WORK_MEM}'")
    problem_lines: dict[tuple[str, str], int] = {}
    found = [
        *_compare(LineKind.PAYMENT, payments_compared(scope), scope, problem_lines),
        *_compare(LineKind.REFUND, refunds_compared(scope), scope, problem_lines),
    ]
    duplicates, duplicate_extra = _duplicates(scope.gateway, repeated, problem_lines)
    found += duplicates
    payments, paid, refunds, refunded = local_totals(scope)
    return Match(
        found=found,
        matched_count=line_count - sum(problem_lines.values()) - duplicate_extra,
        local_payment_count=payments,
        local_payment_minor=paid,
        local_refund_count=refunds,
        local_refund_minor=refunded,
    )


def _compare(subject: str, rows: list[tuple[Any, ...]], scope: Scope,
             problem_lines: dict[tuple[str, str], int]) -> list[Found]:
    """Findings of one kind's FULL OUTER JOIN: lines that disagree, and our successes no bill names."""
    pairs: list[tuple[tuple[Any, ...], Local]] = []
    lines_alone: list[tuple[Any, ...]] = []
    ours_alone: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        line, ours = row[:5], row[5:]
        if line[0] is None:
            ours_alone[ours[1]] = ours
        elif ours[0] is None:
            lines_alone.append(line)
        else:
            pairs.append((line, _local(subject, ours, status=PaymentStatus.SUCCEEDED if subject == LineKind.PAYMENT
                                       else RefundStatus.SUCCEEDED)))
    named = (_payments_named if subject == LineKind.PAYMENT else _refunds_named)(
        scope.gateway, sorted({line[1] for line in lines_alone}))
    pairs += [(line, named[line[1]]) for line in lines_alone if line[1] in named]
    pairs += [(line, None) for line in lines_alone if line[1] not in named]  # type: ignore[misc]
    found = _bill_side(subject, sorted(pairs, key=lambda pair: pair[0][0]), problem_lines)
    # Our successes this bill does not list may be on the day before's or after's (or, for a
    # refund, here under the number it was retried from).
    elsewhere = [item for item in scope.billed_statement_ids if item != scope.statement_id]
    if subject == LineKind.REFUND:
        elsewhere.append(scope.statement_id)
    billed = _billed_in(elsewhere, subject, sorted(ours_alone))
    found += _local_side(subject, [ours for number, ours in sorted(ours_alone.items()) if number not in billed],
                         scope)
    return found


def _local(subject: str, ours: tuple[Any, ...], *, status: str) -> Local:
    local_id, _number, amount, currency, order_id, extra, _moment_value = ours
    if subject == LineKind.PAYMENT:
        return Local(id=local_id, status=status, amount_minor=amount, currency=currency, order_id=order_id,
                     payment_id=local_id, refund_required=extra)
    return Local(id=local_id, status=status, amount_minor=amount, currency=currency, order_id=order_id,
                 payment_id=extra)


def _bill_side(subject: str, pairs: list[tuple[tuple[Any, ...], Local | None]],
               problem_lines: dict[tuple[str, str], int]) -> list[Found]:
    """One Found per reference (its first line), counting the lines that disagree."""
    found: dict[str, Found] = {}
    classify = classify_payment if subject == LineKind.PAYMENT else classify_refund
    for (line_no, reference, amount, currency, occurred_at), local in pairs:
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


def _duplicates(gateway: str, repeated: dict[str, int],
                problem_lines: dict[tuple[str, str], int]) -> tuple[list[Found], int]:
    """A number billed twice or more; and how many of those extra lines are not already a problem."""
    if not repeated:
        return [], 0
    by_kind: dict[str, list[str]] = {LineKind.PAYMENT: [], LineKind.REFUND: []}
    for key in repeated:
        kind, _, reference = key.partition(":")
        by_kind[kind].append(reference)
    payments = _payments_named(gateway, by_kind[LineKind.PAYMENT])
    refunds = _refunds_named(gateway, by_kind[LineKind.REFUND])
    found = []
    extra = 0
    for key, count in sorted(repeated.items()):
        kind, _, reference = key.partition(":")
        clean_lines = count - problem_lines.get((kind, reference), 0)
        extra += max(0, clean_lines - 1)
        local = (payments if kind == LineKind.PAYMENT else refunds).get(reference)
        found.append(Found(
            kind=DiscrepancyKind.DUPLICATE, subject=kind, reference=reference,
            payment_id=local.payment_id if local else None,
            refund_id=local.id if local and kind == LineKind.REFUND else None,
            order_id=local.order_id if local else None,
            local_amount_minor=local.amount_minor if local else None,
            local_currency=local.currency if local else "", local_status=local.status if local else "",
            occurrences=count,
        ))
    return found, extra


def _local_side(subject: str, rows: list[tuple[Any, ...]], scope: Scope) -> list[Found]:
    found = []
    for local_id, reference, amount, currency, order_id, extra, dated_at in rows:
        moment = _moment(dated_at)
        found.append(Found(
            kind=DiscrepancyKind.MISSING_AT_GATEWAY, subject=subject, reference=reference,
            payment_id=local_id if subject == LineKind.PAYMENT else extra,
            refund_id=local_id if subject == LineKind.REFUND else None,
            order_id=order_id, local_amount_minor=amount, local_currency=currency,
            local_status=PaymentStatus.SUCCEEDED if subject == LineKind.PAYMENT else RefundStatus.SUCCEEDED,
            occurred_at=moment, carried=_carried(scope, moment),
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
        bases = {base_number(number): number for number in refunds}
        numbers = set(lines.filter(kind=LineKind.REFUND, out_refund_no__in=[*refunds, *bases]).values_list(
            "out_refund_no", flat=True))
        billed |= {(LineKind.REFUND, number) for number in refunds if number in numbers}
        billed |= {(LineKind.REFUND, number) for base, number in bases.items() if base in numbers}
    return billed
