"""Loading a bill: the bulk path (Arrow batches, COPY) stores what the line path stores, or steps aside.

On PostgreSQL a bill whose adapter has a bulk reader is loaded from its
column batches; a bulk reader that refuses the bill part way leaves nothing
behind and the line parser's lines are loaded instead (its verdict stands).
On SQLite the lines are always loaded: the same tests hold there.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from django.db import connection, transaction

from payments.exceptions import StatementFormatError
from payments.gateways import statement_columns as sc
from payments.gateways.base import StatementLine, StatementLineKind
from reconciliation.models import StatementLine as StoredLine
from reconciliation.services.loading import lines_replace
from reconciliation.services.statements import statement_for
from tests.reconciliation.support import DAY

pytestmark = pytest.mark.django_db

PAYMENT, REFUND = StatementLineKind.PAYMENT, StatementLineKind.REFUND
WHEN = datetime(2026, 11, 30, 2, 3, 4, tzinfo=UTC)
LINES = [
    StatementLine(PAYMENT, "SO1P01", "T1", 8800, "CNY", fee_minor=53, occurred_at=WHEN, status="SUCCESS"),
    StatementLine(PAYMENT, "SO2P01", "T2", 1999, "CNY", occurred_at=None),
    StatementLine(REFUND, "SO1P01", "T1", 800, "CNY", out_refund_no="SO1R01", gateway_refund_id="R1", fee_minor=-5,
                  occurred_at=WHEN, status="SUCCESS"),
    # Billed twice: counted as repeated by both paths.
    StatementLine(PAYMENT, "SO2P01", "T2", 1999, "USD", occurred_at=WHEN),
]


def as_batches(lines: list[StatementLine], size: int = 2) -> list[pa.RecordBatch]:
    batches = []
    for start in range(0, len(lines), size):
        chunk = lines[start:start + size]
        batches.append(sc.batch({
            "kind": pa.array([str(line.kind) for line in chunk]),
            **{name: pa.array([getattr(line, name) for line in chunk]) for name in (
                "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id", "currency")},
            "amount_minor": pa.array([line.amount_minor for line in chunk], pa.int64()),
            "fee_minor": pa.array([line.fee_minor for line in chunk], pa.int64()),
            "occurred_at": pa.array([line.occurred_at for line in chunk], pa.timestamp("s", tz="UTC")),
            "bill_status": pa.array([line.status for line in chunk]),
        }))
    return batches


def never_read():
    """The line parser's lines where only the bulk reader may be read: on PostgreSQL (SQLite loads lines)."""
    if connection.vendor != "postgresql":
        yield from LINES
        return
    raise AssertionError("the line parser was asked although the bulk reader took the bill")


def stored(statement_id: int) -> list[tuple]:
    return list(StoredLine.objects.filter(statement_id=statement_id).order_by("line_no").values_list(
        "line_no", "kind", "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id", "amount_minor",
        "fee_minor", "currency", "occurred_at", "bill_status"))


def totals(loaded) -> tuple:
    return (loaded.line_count, loaded.payment_count, loaded.payment_minor, loaded.refund_count, loaded.refund_minor,
            loaded.fee_minor, loaded.currencies, loaded.repeated)


@pytest.fixture
def statement_ids():
    return [statement_for(gateway_code="alipay", day=DAY).pk, statement_for(gateway_code="wechatpay", day=DAY).pk]


def test_the_bulk_path_stores_what_the_line_path_stores(statement_ids, caplog):
    by_line, in_bulk = statement_ids
    caplog.set_level(logging.INFO, logger="reconciliation.services.loading")
    with transaction.atomic():
        line_totals = lines_replace(statement_id=by_line, lines=iter(LINES))
        bulk_totals = lines_replace(statement_id=in_bulk, lines=never_read(), columns=as_batches(LINES))
    assert stored(in_bulk) == stored(by_line) and len(stored(in_bulk)) == 4
    assert totals(bulk_totals) == totals(line_totals)
    assert bulk_totals.repeated == {"payment:SO2P01": 2}
    assert (bulk_totals.payment_count, bulk_totals.payment_minor, bulk_totals.fee_minor) == (3, 12798, 48)
    assert stored(in_bulk)[1][9] is None and stored(in_bulk)[0][3] == ""
    assert "line by line" not in caplog.text


def test_a_bulk_reader_that_refuses_part_way_leaves_nothing_and_the_lines_are_loaded(statement_ids, caplog):
    statement_id = statement_ids[0]
    caplog.set_level(logging.INFO, logger="reconciliation.services.loading")

    def refusing():
        yield from as_batches(LINES)[:1]
        raise sc.unsuitable("a quoted cell")

    with transaction.atomic():
        StoredLine.objects.create(statement_id=statement_id, line_no=1, kind="payment", out_trade_no="OLD",
                                  amount_minor=1, currency="CNY")
        loaded = lines_replace(statement_id=statement_id, lines=iter(LINES), columns=refusing())
    assert [row[2] for row in stored(statement_id)] == ["SO1P01", "SO2P01", "SO1P01", "SO2P01"]
    assert loaded.line_count == 4
    if connection.vendor == "postgresql":
        assert "read line by line (not read in bulk: a quoted cell)" in caplog.text


def test_a_value_the_line_table_cannot_hold_is_named_by_the_line_path(statement_ids):
    statement_id = statement_ids[0]
    long = [StatementLine(PAYMENT, "X" * 65, "T", 100, "CNY")]
    with pytest.raises(StatementFormatError, match="does not fit"), transaction.atomic():
        lines_replace(statement_id=statement_id, lines=iter(long), columns=as_batches(long))
    assert stored(statement_id) == []


def test_without_a_bulk_reader_the_lines_are_loaded(statement_ids):
    statement_id = statement_ids[0]
    with transaction.atomic():
        loaded = lines_replace(statement_id=statement_id, lines=iter(LINES), columns=None)
    assert loaded.line_count == 4 and len(stored(statement_id)) == 4
