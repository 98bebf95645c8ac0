"""Loading a bill's lines into the statement's line table, in bulk.

The lines stream from the adapter's parser straight into the database: on
PostgreSQL through one `COPY ... FROM STDIN` (the line table is the staging
table matching joins against), elsewhere (SQLite, `make run`'s embedded
default) through batched INSERTs. Both run inside the caller's transaction:
the parser checks the bill's control totals only after its last line, so a
bill that fails them rolls back every line already sent. Nothing is held
in memory beyond one batch.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import connection

from payments.exceptions import StatementFormatError
from payments.gateways.base import StatementLine, StatementLineKind
from reconciliation.models import StatementLine as StoredLine

logger = logging.getLogger(__name__)

COLUMNS = (
    "statement_id", "line_no", "kind", "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id",
    "amount_minor", "fee_minor", "currency", "occurred_at", "bill_status",
)  # fmt: skip
# The widths of the line table's text columns; a longer value is a malformed
# bill, said in words instead of a database error halfway through.
_WIDTHS: dict[str, int] = {
    name: int(getattr(StoredLine._meta.get_field(name), "max_length", 0) or 0)
    for name in ("out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id", "currency", "bill_status")
}
_BIGINT = 2**63 - 1
BATCH = 5000


@dataclass
class LoadedTotals:
    """What was loaded, counted on the way (the bill's totals, from its own lines)."""

    line_count: int = 0
    payment_count: int = 0
    payment_minor: int = 0
    refund_count: int = 0
    refund_minor: int = 0
    fee_minor: int = 0
    currencies: set[str] = field(default_factory=set)


def lines_replace(*, statement_id: int, lines: Iterable[StatementLine]) -> LoadedTotals:
    """Replace the statement's stored lines with `lines`, in the caller's transaction.

    Raises StatementFormatError (from the parser, or for a value that does
    not fit): the caller's transaction must then roll back.
    """
    table = StoredLine._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE statement_id = %s", [statement_id])
    totals = LoadedTotals()
    rows = _rows(statement_id, lines, totals)
    if connection.vendor == "postgresql":
        _copy(table, rows)
    else:
        _insert(table, rows)
    return totals


def _rows(statement_id: int, lines: Iterable[StatementLine], totals: LoadedTotals) -> Iterator[tuple[Any, ...]]:
    payment = StatementLineKind.PAYMENT
    widths = _WIDTHS
    number = 0
    for line in lines:
        number += 1
        kind = line.kind
        amount = line.amount_minor
        if kind is payment:
            totals.payment_count += 1
            totals.payment_minor += amount
        else:
            totals.refund_count += 1
            totals.refund_minor += amount
        totals.fee_minor += line.fee_minor
        if line.currency not in totals.currencies:
            totals.currencies.add(line.currency)
        row = (statement_id, number, kind.value, line.out_trade_no, line.out_refund_no, line.gateway_trade_no,
               line.gateway_refund_id, amount, line.fee_minor, line.currency, line.occurred_at, line.status)
        if (len(line.out_trade_no) > widths["out_trade_no"] or len(line.out_refund_no) > widths["out_refund_no"]
                or len(line.gateway_trade_no) > widths["gateway_trade_no"]
                or len(line.gateway_refund_id) > widths["gateway_refund_id"]
                or len(line.currency) > widths["currency"] or len(line.status) > widths["bill_status"]
                or not 0 <= amount <= _BIGINT or abs(line.fee_minor) > _BIGINT):
            raise StatementFormatError(f"line {number}: a value does not fit ({line.out_trade_no[:24]!r})")
        yield row
    totals.line_count = number


def _copy(table: str, rows: Iterator[tuple[Any, ...]]) -> None:
    with connection.cursor() as cursor:
        # The psycopg cursor under Django's wrapper speaks COPY.
        raw = cursor.cursor
        with raw.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _insert(table: str, rows: Iterator[tuple[Any, ...]]) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    occurred_at = COLUMNS.index("occurred_at")
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with connection.cursor() as cursor:
        while batch := list(islice(rows, BATCH)):
            cursor.executemany(sql, [(*row[:occurred_at], adapt(row[occurred_at]), *row[occurred_at + 1:])
                                     for row in batch])
