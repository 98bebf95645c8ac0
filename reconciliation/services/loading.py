"""Loading a bill's lines into the statement's line table, in bulk.

The lines stream from the adapter's parser straight into the database: on
PostgreSQL through one `COPY ... FROM STDIN` (the line table is the staging
table that matching joins against; the server takes the rows in while the
parser reads on), elsewhere (SQLite, `make run`'s embedded default) through
batched INSERTs. Both run inside the caller's transaction: the parser checks
the bill's control totals only after its last line, so a bill that fails
them rolls back every line already sent. Nothing is held in memory beyond
one batch, and the per-line work here is kept to the minimum: the totals and
the numbers billed twice are counted on the way; a value that does not fit
its column is refused by the database itself.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.db import DatabaseError, connection, transaction

from payments.exceptions import StatementFormatError
from payments.gateways.base import StatementLine, StatementLineKind
from reconciliation.models import StatementLine as StoredLine

logger = logging.getLogger(__name__)

COLUMNS = (
    "statement_id", "line_no", "kind", "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id",
    "amount_minor", "fee_minor", "currency", "occurred_at", "bill_status",
)  # fmt: skip
BATCH = 5000


@dataclass
class Loaded:
    """What was loaded, counted on the way: the bill's totals from its own lines."""

    line_count: int = 0
    payment_count: int = 0
    payment_minor: int = 0
    refund_count: int = 0
    refund_minor: int = 0
    fee_minor: int = 0
    currencies: set[str] = field(default_factory=set)
    # "<kind>:<reference>" -> lines, for every number the bill lists twice or more.
    repeated: dict[str, int] = field(default_factory=dict)


def lines_replace(*, statement_id: int, lines: Iterable[StatementLine], columns: Iterable[Any] | None = None) -> Loaded:
    """Replace the statement's stored lines with `lines`, in the caller's transaction.

    `columns`, when the adapter has a bulk reader, is the same bill as
    Arrow record batches (Gateway.statement_columns): on PostgreSQL they are
    loaded instead, and `lines` is only read when the bulk reader leaves the
    bill to the line parser. Raises StatementFormatError (from the parser,
    or for a value that does not fit): the caller's transaction must then
    roll back.
    """
    table = StoredLine._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE statement_id = %s", [statement_id])
    if columns is not None and connection.vendor == "postgresql":
        loaded = _bulk_or_none(table, statement_id, columns)
        if loaded is not None:
            _analyze(table)
            return loaded
    loaded = Loaded()
    seen = _Repeats()
    rows = _rows(statement_id, lines, loaded, seen)
    try:
        if connection.vendor == "postgresql":
            _copy(table, rows)
        else:
            _insert(table, rows)
    except DatabaseError as exc:
        raise StatementFormatError(f"a line does not fit the line table: {_first_line(exc)}") from None
    loaded.repeated = _confirmed(statement_id, seen)
    if connection.vendor == "postgresql":
        _analyze(table)
    return loaded


def _analyze(table: str) -> None:
    with connection.cursor() as cursor:
        # Fresh statistics, or the planner takes a million new rows for a few.
        cursor.execute(f"ANALYZE {table}")


def _bulk_or_none(table: str, statement_id: int, columns: Iterable[Any]) -> Loaded | None:
    """The bulk reader's batches COPYed in; None (nothing kept) when it leaves the bill to the line parser."""
    import pyarrow as pa

    try:
        with transaction.atomic():
            return _copy_batches(table, statement_id, columns)
    except (StatementFormatError, DatabaseError, pa.ArrowException) as exc:
        # Also a bill that is simply wrong: the line parser names its fault.
        logger.info("statement %s: the bill is read line by line (%s)", statement_id, _first_line(exc))
        return None


def _copy_batches(table: str, statement_id: int, batches: Iterable[Any]) -> Loaded:
    """COPY the batches as CSV written by Arrow; the totals and the repeated numbers counted over whole columns."""
    import psycopg
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    loaded = Loaded()
    references: dict[str, list[Any]] = {StatementLineKind.PAYMENT: [], StatementLineKind.REFUND: []}
    # Unquoted: Arrow refuses a value that would need quotes, and the
    # server reads plain cells faster; "" is then an empty string, not NULL,
    # for every text column.
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none", batch_size=4096)
    texts = ", ".join(name for name in COLUMNS
                      if StoredLine._meta.get_field(name).get_internal_type() == "CharField")
    number = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        try:
            with raw.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT csv, FORCE_NOT_NULL ({texts}))",
                          writer=_bounded_writer(raw)) as copy:
                for batch in batches:
                    length = batch.num_rows
                    if not length:
                        continue
                    refund = pc.equal(batch.column("kind"), StatementLineKind.REFUND.value)
                    amounts = batch.column("amount_minor")
                    refunds = pc.sum(pc.cast(refund, pa.int64())).as_py() or 0
                    refunded = pc.sum(pc.if_else(refund, amounts, 0)).as_py() or 0
                    loaded.refund_count += refunds
                    loaded.refund_minor += refunded
                    loaded.payment_count += length - refunds
                    loaded.payment_minor += (pc.sum(amounts).as_py() or 0) - refunded
                    loaded.fee_minor += pc.sum(batch.column("fee_minor")).as_py() or 0
                    loaded.currencies.update(pc.unique(batch.column("currency")).to_pylist())
                    references[StatementLineKind.PAYMENT].append(
                        pc.filter(batch.column("out_trade_no"), pc.invert(refund)))
                    references[StatementLineKind.REFUND].append(pc.filter(batch.column("out_refund_no"), refund))
                    columns = dict(zip(batch.schema.names, batch.columns, strict=True))
                    # As text with its offset: Arrow formats a zoned timestamp 25 times slower.
                    columns["occurred_at"] = pc.binary_join_element_wise(
                        pc.cast(pc.cast(columns["occurred_at"], pa.timestamp("s")), pa.string()), "+00", "")
                    rows = pa.RecordBatch.from_arrays(
                        [pa.repeat(pa.scalar(statement_id, pa.int64()), length),
                         pa.array(range(number + 1, number + length + 1), pa.int64()),
                         *(columns[name] for name in COLUMNS[2:])],
                        names=list(COLUMNS))
                    sink = pa.BufferOutputStream()
                    pa_csv.write_csv(rows, sink, options)
                    copy.write(memoryview(sink.getvalue()))
                    number += length
        except psycopg.errors.DataError as exc:
            raise DatabaseError(str(exc)) from None
    loaded.line_count = number
    for kind, chunks in references.items():
        for reference, count in _repeated(pa.chunked_array(chunks, pa.string())).items():
            loaded.repeated[f"{kind}:{reference}"] = count
    return loaded


def _repeated(references: Any) -> dict[str, int]:
    """The references listed more than once, with their counts.

    Sorted, then compared with their neighbours: a hash table of every
    reference (value_counts) peaks at four times the references' own size,
    which pushed a three-million-line bill past 500 MB.
    """
    import pyarrow.compute as pc

    if len(references) < 2:
        return {}
    ordered = references.take(pc.sort_indices(references))
    later = ordered.slice(1)
    repeats = pc.filter(later, pc.equal(later, ordered.slice(0, len(ordered) - 1)))
    # Each repeat is one more line than the first.
    return {item["values"]: item["counts"] + 1 for item in pc.value_counts(repeats).to_pylist()}


# Numbers billed twice are spotted with a fixed bit array (32 MB whatever the
# bill's size; two bits a number, a Bloom filter) and confirmed in SQL: a
# set of every number would grow by some 100 MB per million lines.
_BITS = 1 << 28
_MASK = _BITS - 1


class _Repeats:
    """Numbers maybe seen before (a Bloom filter says so, sometimes wrongly), confirmed afterwards in SQL."""

    def __init__(self) -> None:
        self.bits = bytearray(_BITS >> 3)
        self.candidates: set[tuple[str, str]] = set()


def _rows(statement_id: int, lines: Iterable[StatementLine], loaded: Loaded,
          repeats: _Repeats) -> Iterator[tuple[Any, ...]]:
    payment = StatementLineKind.PAYMENT
    bits = repeats.bits
    mask = _MASK
    candidates = repeats.candidates
    currencies = loaded.currencies
    number = payments = paid = refunds = refunded = fees = 0
    for line in lines:
        number += 1
        kind = line.kind
        amount = line.amount_minor
        fees += line.fee_minor
        if kind is payment:
            payments += 1
            paid += amount
            reference = line.out_trade_no
            key = hash(reference)
        else:
            refunds += 1
            refunded += amount
            reference = line.out_refund_no
            key = ~hash(reference)
        first = key & mask
        second = (key >> 28) & mask
        if bits[first >> 3] & (1 << (first & 7)) and bits[second >> 3] & (1 << (second & 7)):
            candidates.add((kind, reference))
        else:
            bits[first >> 3] |= 1 << (first & 7)
            bits[second >> 3] |= 1 << (second & 7)
        if line.currency not in currencies:
            currencies.add(line.currency)
        yield (statement_id, number, kind, line.out_trade_no, line.out_refund_no, line.gateway_trade_no,
               line.gateway_refund_id, amount, line.fee_minor, line.currency, line.occurred_at, line.status)
    loaded.line_count = number
    loaded.payment_count, loaded.payment_minor = payments, paid
    loaded.refund_count, loaded.refund_minor = refunds, refunded
    loaded.fee_minor = fees


def _confirmed(statement_id: int, repeats: _Repeats) -> dict[str, int]:
    """The candidates that really repeat (the filter errs on the side of "seen"), with their line counts."""
    repeated: dict[str, int] = {}
    candidates = sorted(repeats.candidates)
    repeats.bits = bytearray()
    for start in range(0, len(candidates), 500):
        chunk = candidates[start:start + 500]
        for kind in (StatementLineKind.PAYMENT, StatementLineKind.REFUND):
            numbers = [reference for candidate_kind, reference in chunk if candidate_kind == kind]
            if not numbers:
                continue
            column = "out_trade_no" if kind == StatementLineKind.PAYMENT else "out_refund_no"
            found = StoredLine.objects.filter(statement_id=statement_id, kind=kind, **{f"{column}__in": numbers})
            for reference in found.values_list(column, flat=True):
                repeated[f"{kind}:{reference}"] = repeated.get(f"{kind}:{reference}", 0) + 1
    return {key: count for key, count in repeated.items() if count > 1}


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def _copy(table: str, rows: Iterator[tuple[Any, ...]]) -> None:
    import psycopg
    from psycopg.copy import QueuedLibpqWriter

    with connection.cursor() as cursor:
        # The psycopg cursor under Django's wrapper speaks COPY; the queued
        # writer sends from a thread of its own, so that the parser never
        # waits on the socket while the server takes the rows in.
        raw = cursor.cursor
        try:
            with raw.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN",
                          writer=QueuedLibpqWriter(raw)) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.errors.DataError as exc:
            # Too long for its column, or out of range: the bill's fault.
            raise DatabaseError(str(exc)) from None


def _bounded_writer(cursor: Any) -> Any:
    """psycopg's queued COPY writer, holding at most 64 buffers (8 MB) instead of 1024.

    Arrow writes CSV faster than the server takes it in: with psycopg's
    default room the queue held most of a million-line bill (peak RSS
    410 MB); now the reader waits for the server instead.
    """
    import queue

    from psycopg.copy import QueuedLibpqWriter

    writer = QueuedLibpqWriter(cursor)
    writer._queue = queue.Queue(maxsize=64)  # type: ignore[assignment]  # noqa: SLF001 (no public knob; psycopg is pinned)
    return writer


def _insert(table: str, rows: Iterator[tuple[Any, ...]]) -> None:
    adapt = connection.ops.adapt_datetimefield_value
    occurred_at = COLUMNS.index("occurred_at")
    widths: dict[int, int] = {index: width for index, name in enumerate(COLUMNS)
                              if (width := getattr(StoredLine._meta.get_field(name), "max_length", None))}
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    with connection.cursor() as cursor:
        while batch := list(islice(rows, BATCH)):
            for row in batch:
                # SQLite does not enforce VARCHAR widths: refuse as PostgreSQL would.
                for index, width in widths.items():
                    if len(row[index]) > width:  # type: ignore[operator]
                        raise DatabaseError(f"value too long for type character varying({width}): line {row[1]}")
            cursor.executemany(sql, [(*row[:occurred_at], adapt(row[occurred_at]), *row[occurred_at + 1:])
                                     for row in batch])
