"""A bill's lines read in bulk: column batches instead of one StatementLine per line.

`Gateway.statement_columns` hands over the bill as Apache Arrow record
batches with the columns below, one row per line, in the bill's order. The
per-line cost of a Python parser is several microseconds; a day's bill of a
million lines spent most of reconciliation's time there. Arrow's CSV reader
and compute kernels do the same work in C++ over whole columns.

The line parser (`parse_statement`) stays the authority on what a bill
means: a columnar reader accepts only the plain shape of its format (no
quoted cells, ASCII identifiers, amounts and times in their strict form)
and raises StatementFormatError on anything else. The loader then reads the
same bill line by line, whose verdict stands, so an unusual bill costs time,
never a different answer. tests/reconciliation/test_columns.py checks that
both readings store identical lines.

Imported only when a bill is read (pyarrow is a large import).
"""
from __future__ import annotations

import io
import re
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from payments.exceptions import StatementFormatError

# name -> type, in the loader's column order.
SCHEMA = pa.schema([
    ("kind", pa.string()),  # "payment" or "refund"
    ("out_trade_no", pa.string()),
    ("out_refund_no", pa.string()),
    ("gateway_trade_no", pa.string()),
    ("gateway_refund_id", pa.string()),
    ("amount_minor", pa.int64()),  # always positive
    ("fee_minor", pa.int64()),
    ("currency", pa.string()),
    ("occurred_at", pa.timestamp("s", tz="UTC")),
    ("bill_status", pa.string()),
])

# Printable ASCII without the space: what every provider's numbers are made of.
IDENTIFIER = r"^[!-~]*$"
BEIJING_OFFSET_SECONDS = 8 * 3600


def unsuitable(what: str) -> StatementFormatError:
    """The error a columnar reader raises for a bill it leaves to the line parser."""
    return StatementFormatError(f"not read in bulk: {what}")


def require(condition: pa.Array | pa.ChunkedArray, what: str) -> None:
    """Raise `unsuitable(what)` unless `condition` (booleans) is true on every row."""
    if len(condition) and not pc.all(condition).as_py():
        raise unsuitable(what)


def ascii_text(cells: pa.Array, what: str) -> pa.Array:
    """Binary cells as strings, refusing any that is not plain ASCII (the line parser decides those)."""
    try:
        text = pc.cast(cells, pa.string())
    except pa.ArrowInvalid:
        raise unsuitable(f"{what}: not ASCII") from None
    require(pc.string_is_ascii(text), f"{what}: not ASCII")
    return text


def stripped(text: pa.Array) -> pa.Array:
    return pc.ascii_trim_whitespace(text)


def identifiers(text: pa.Array, what: str) -> pa.Array:
    """Stripped cells that hold only printable ASCII."""
    cells = stripped(text)
    require(pc.match_substring_regex(cells, IDENTIFIER), f"{what}: not a plain identifier")
    return cells


def scaled(text: pa.Array, *, pattern: str, places: int, what: str) -> pa.Array:
    """Decimal yuan strings matching `pattern` as int64 counts of 10**-places yuan.

    A string with more decimals than `places` passes only when the extra
    ones are zeros, as the line parsers do.
    """
    require(pc.match_substring_regex(text, pattern), f"{what}: not an amount")
    try:
        exact = pc.cast(text, pa.decimal128(20 + places, places))
        unit = pa.scalar(10**places, pa.decimal128(places + 1, 0))
        return pc.cast(pc.multiply(exact, unit), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise unsuitable(f"{what}: more than {places} decimals") from None


def beijing_times(text: pa.Array, *, what: str, required: bool = False) -> pa.Array:
    """`yyyy-MM-dd HH:mm:ss` Beijing times ("" is no time, unless `required`) as UTC timestamps."""
    present = pc.not_equal(text, "")
    if required:
        require(present, f"{what}: no time")
    require(pc.or_(pc.invert(present), pc.match_substring_regex(
        text, r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$")), f"{what}: not a time")
    try:
        # The ISO parser, not strptime: strptime takes 04-31 for 05-01.
        local = pc.cast(pc.if_else(present, text, pa.scalar(None, pa.string())), pa.timestamp("s"))
    except pa.ArrowInvalid:
        raise unsuitable(f"{what}: not a time") from None
    # China has kept UTC+8 all year since 1991.
    seconds = pc.subtract(pc.cast(local, pa.int64()), BEIJING_OFFSET_SECONDS)
    return pc.cast(seconds, pa.timestamp("s", tz="UTC"))


def constant(value: str, length: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), length)


def batch(columns: dict[str, pa.Array]) -> pa.RecordBatch:
    """A record batch in SCHEMA's order and types."""
    return pa.RecordBatch.from_arrays([columns[name] for name in SCHEMA.names], schema=SCHEMA)


class RowsUntil(io.RawIOBase):
    """A bill's bytes up to the first line that `end` matches (a pattern starting with a line end).

    What follows is the footer, which `rest()` returns. `watch` is a byte
    the rows must not hold; `watched` says whether they did.
    """

    def __init__(self, stream: IO[bytes], end: re.Pattern[bytes], *, watch: bytes = b"") -> None:
        self.stream = stream
        self.end = end
        self.watch = watch
        self.watched = False
        # A line end before the first byte: a footer right after the header is found too.
        self.pending = b"\n"
        self.ready = b""
        self.tail = b""
        self.ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.ready and not self.ended:
            chunk = self.stream.read(1 << 20)
            data = self.pending + chunk
            self.pending = b""
            if not chunk:
                self.ready, self.ended = data, True
            elif found := self.end.search(data):
                self.ready, self.tail, self.ended = data[:found.start() + 1], data[found.start() + 1:], True
            else:
                # The last line waits from its line end on, so that no line is looked at in two halves.
                cut = max(data.rfind(b"\n"), 0)
                self.ready, self.pending = data[:cut], data[cut:]
            self.watched = self.watched or bool(self.watch and self.watch in self.ready)
        size = min(len(buffer), len(self.ready))
        buffer[:size] = self.ready[:size]
        self.ready = self.ready[size:]
        return size

    def rest(self) -> bytes:
        return self.tail + self.stream.read()
