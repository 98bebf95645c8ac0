"""Alipay's daily `trade` bill (业务明细) read as a stream of statement lines.

Follows docs/gateways-alipay-unionpay.md A11: a ZIP whose entry names are GBK
without the UTF-8 flag; the `_业务明细.csv` entry (not `_业务明细(汇总).csv`)
is GBK CSV with `#` comment lines (the `#账号：[<PID>0156]` line names the
merchant), a header row after the 业务明细列表 marker, identifier cells
padded with a TAB, and footer control totals. Columns are found by header
name, since 25- and 29-column variants exist.

The entry is decompressed and decoded as it is read, one line at a time, so a
bill of a million lines never sits in memory; the footer is checked against
the rows once the last row has been yielded.
"""
from __future__ import annotations

import csv
import functools
import io
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, BinaryIO

from payments.exceptions import StatementFormatError, StatementTotalsMismatch
from payments.gateways.alipay.formats import parse_bill_time, yuan_to_fen
from payments.gateways.base import StatementLine, StatementLineKind

# GB18030 decodes every GBK byte sequence the same way, and a few more.
BILL_ENCODING = "gb18030"
DETAIL_ENTRY_SUFFIX = "_业务明细.csv"
LIST_START = "业务明细列表"
LIST_END = "业务明细列表结束"
# The account a bill belongs to: the merchant PID with "0156" appended (A11).
ACCOUNT_SUFFIX = "0156"
ACCOUNT_LINE = re.compile(r"#\s*账号[：:]\s*\[([^\]]*)\]")

COL_TRADE_NO = "支付宝交易号"
COL_OUT_TRADE_NO = "商户订单号"
COL_KIND = "业务类型"
COL_FINISHED_AT = "完成时间"
COL_ORDER_AMOUNT = "订单金额（元）"
COL_MERCHANT_RECEIVED = "商家实收（元）"
COL_FEE = "服务费（元）"
# Later variants name the merchant PID on every row.
COL_MERCHANT_PID = "商户识别号"
# The refund's out_request_no; one later variant names it without "/请求号".
COL_REFUND_NO = ("退款批次号/请求号", "退款批次号")
REQUIRED_COLUMNS = (
    COL_TRADE_NO,
    COL_OUT_TRADE_NO,
    COL_KIND,
    COL_FINISHED_AT,
    COL_ORDER_AMOUNT,
    COL_MERCHANT_RECEIVED,
)

KINDS = {"交易": StatementLineKind.PAYMENT, "退款": StatementLineKind.REFUND}
# Distinct amounts and times remembered per bill (a day has 86,400 seconds).
MEMO_LIMIT = 300_000

_AMOUNT = r"(-?[0-9]+(?:\.[0-9]+)?)"
PAYMENT_TOTAL = re.compile(rf"#\s*交易合计[：:]\s*([0-9]+)\s*笔[，,]\s*商家实收共\s*{_AMOUNT}\s*元")
REFUND_TOTAL = re.compile(rf"#\s*退款合计[：:]\s*([0-9]+)\s*笔[，,]\s*商家实收退款共\s*{_AMOUNT}\s*元")


class BillRow(Mapping[str, str]):
    """One detail row by column name, every cell stripped (the `raw` of a line).

    Built per row at the cost of one small object; the cells are only
    looked at when someone reads them.
    """

    __slots__ = ("_cells", "_columns")

    def __init__(self, columns: Mapping[str, int], cells: list[str]) -> None:
        self._columns = columns
        self._cells = cells

    def __getitem__(self, name: str) -> str:
        return self._cells[self._columns[name]].strip()

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"BillRow({dict(self)!r})"


def parse_trade_bill(stream: BinaryIO, *, account: str = "") -> Iterator[StatementLine]:
    """Yield the payment and refund lines of a zipped `trade` bill, then check its footer.

    Amounts are positive fen (`kind` gives the direction); `fee_minor` is
    the 服务费 in fen, charged on payment lines and given back on refund
    lines, since the column's own sign convention is unconfirmed (A11).
    Every line of this bill is a completed movement, so `status` stays "".
    `account` (the merchant PID) is checked against the bill's 账号 line
    and any 商户识别号 column when given. Raises StatementFormatError
    (StatementTotalsMismatch when the footer disagrees with the rows).
    """
    with _detail_entry(stream) as text:
        try:
            yield from _parse(text, account=account)
        except UnicodeDecodeError:
            raise StatementFormatError("the detail file is not GBK text") from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise StatementFormatError(f"the ZIP entry is damaged ({type(exc).__name__})") from None


class _detail_entry:  # noqa: N801 (a context manager used like a function)
    """The `_业务明细.csv` entry of the archive, as text decoded while read."""

    def __init__(self, stream: BinaryIO) -> None:
        try:
            # Entry names carry no UTF-8 flag: they are GBK (names that do
            # carry the flag are still read as UTF-8).
            self.archive = zipfile.ZipFile(stream, metadata_encoding=BILL_ENCODING)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise StatementFormatError("the bill is not a ZIP file") from exc
        names = [
            info.filename
            for info in self.archive.infolist()
            if not info.is_dir() and info.filename.endswith(DETAIL_ENTRY_SUFFIX)
        ]
        if len(names) != 1:
            self.archive.close()
            raise StatementFormatError(f"expected one *{DETAIL_ENTRY_SUFFIX} entry, found {len(names)}")
        self.name = names[0]

    def __enter__(self) -> Iterator[str]:
        try:
            self.entry = self.archive.open(self.name)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            self.archive.close()
            raise StatementFormatError(f"cannot read {self.name}") from exc
        # newline="": csv sees the line ends, so a quoted cell may hold one.
        return iter(io.TextIOWrapper(self.entry, encoding=BILL_ENCODING, newline=""))

    def __exit__(self, *exc_info: object) -> None:
        self.entry.close()
        self.archive.close()


def _parse(text: Iterator[str], *, account: str) -> Iterator[StatementLine]:
    header = _preamble(text, account=account)
    # Control sums per kind, in fen signed as in the file: [count, 商家实收].
    totals = {kind: [0, 0] for kind in StatementLineKind}
    if header is not None:
        yield from _data_rows(text, _columns(header), account=account, totals=totals)
    _check_footer([stripped for line in text if (stripped := line.strip()).startswith("#")], totals)


def _data_rows(text: Iterator[str], columns: dict[str, int], *, account: str,
               totals: dict[StatementLineKind, list[int]]) -> Iterator[StatementLine]:
    """The data rows as lines, up to and including the end marker.

    One loop with everything it needs in locals: it runs once per row of
    a bill that may have millions. A row without a quote is split on commas
    (several times faster than csv); a quoted row goes through csv, taking
    the following lines while a quoted cell still holds a line break.
    Amounts and times are memoised: prices and seconds recur on many rows.
    """
    width = len(columns)
    trade_no_at = columns[COL_TRADE_NO]
    out_trade_no_at = columns[COL_OUT_TRADE_NO]
    kind_at = columns[COL_KIND]
    finished_at = columns[COL_FINISHED_AT]
    amount_at = columns[COL_ORDER_AMOUNT]
    received_at = columns[COL_MERCHANT_RECEIVED]
    fee_at = columns.get(COL_FEE)
    refund_no_at = next((columns[name] for name in COL_REFUND_NO if name in columns), None)
    pid_at = columns.get(COL_MERCHANT_PID) if account else None
    fen: dict[str, int] = {"0": 0, "0.00": 0, "": 0}
    times: dict[str, datetime | None] = {"": None}
    kinds = KINDS
    refund = StatementLineKind.REFUND
    line_type = StatementLine
    number = 0
    for line in text:
        head = line[:1]
        if head == "#" or not head or head.isspace():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                if LIST_END not in stripped:
                    raise StatementFormatError(f"no {LIST_END} marker before the footer: the list is cut short")
                return
        number += 1
        if '"' in line:
            while line.count('"') % 2:
                following = next(text, None)
                if following is None:
                    raise StatementFormatError("a quoted cell runs to the end of the file: the file is cut short")
                line += following
            cells = next(csv.reader([line]))
        else:
            cells = line.rstrip("\r\n").split(",")
        if len(cells) != width and (len(cells) < width or any(cells[width:])):
            raise StatementFormatError(f"row {number} has {len(cells)} cells for {width} columns")
        kind = kinds.get(cells[kind_at].strip())
        if kind is None:
            raise StatementFormatError(f"row {number}: unknown {COL_KIND} {cells[kind_at].strip()[:16]!r}")
        if pid_at is not None and (pid := cells[pid_at].strip()) and pid != account:
            raise StatementFormatError(f"row {number}: {COL_MERCHANT_PID} {pid[:24]!r} is not ours")
        text_amount = cells[amount_at].strip()
        amount = fen.get(text_amount)
        if amount is None:
            amount = _fen(fen, text_amount, number, COL_ORDER_AMOUNT)
        text_received = cells[received_at].strip()
        received = fen.get(text_received)
        if received is None:
            received = _fen(fen, text_received, number, COL_MERCHANT_RECEIVED)
        fee = 0
        if fee_at is not None:
            text_fee = cells[fee_at].strip()
            charged = fen.get(text_fee)
            fee = abs(charged if charged is not None else _fen(fen, text_fee, number, COL_FEE))
        moment = cells[finished_at].strip()
        occurred_at = times[moment] if moment in times else _time(times, moment, number)
        kind_totals = totals[kind]
        kind_totals[0] += 1
        kind_totals[1] += received
        if kind is refund:
            yield line_type(kind, cells[out_trade_no_at].strip(), cells[trade_no_at].strip(), abs(amount), "CNY",
                            cells[refund_no_at].strip() if refund_no_at is not None else "", "", -fee, occurred_at,
                            "", BillRow(columns, cells))
        else:
            yield line_type(kind, cells[out_trade_no_at].strip(), cells[trade_no_at].strip(), abs(amount), "CNY",
                            "", "", fee, occurred_at, "", BillRow(columns, cells))
    raise StatementFormatError(f"no {LIST_END} marker: the file is cut short")


def _fen(memo: dict[str, int], text: str, number: int, column: str) -> int:
    try:
        fen = yuan_to_fen(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {column} {text[:24]!r} is not an amount") from None
    if len(memo) < MEMO_LIMIT:
        memo[text] = fen
    return fen


def _time(memo: dict[str, datetime | None], text: str, number: int) -> datetime:
    try:
        moment = parse_bill_time(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {COL_FINISHED_AT} {text[:24]!r} is not a time") from None
    if len(memo) < MEMO_LIMIT:
        memo[text] = moment
    return moment


def _preamble(text: Iterator[str], *, account: str) -> str | None:
    """Read up to the header row (None: an empty list without one), checking the account line."""
    for line in text:
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        found = ACCOUNT_LINE.match(stripped)
        if found and account and found.group(1).strip() != account + ACCOUNT_SUFFIX:
            raise StatementFormatError(f"the bill is for account {found.group(1)[:24]!r}, not ours")
        if LIST_START in stripped and LIST_END not in stripped:
            break
    else:
        raise StatementFormatError(f"no {LIST_START} marker")
    for line in text:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if LIST_END in stripped:
                return None
            raise StatementFormatError("a comment where the header row should be")
        return line
    raise StatementFormatError(f"no {LIST_END} marker: the file is cut short")


def _normalise_header(name: str) -> str:
    return name.strip().replace("(", "（").replace(")", "）").replace(" ", "")


def _columns(header: str) -> dict[str, int]:
    names = [_normalise_header(name) for name in next(csv.reader([header]))]
    columns: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in columns:
            raise StatementFormatError(f"column {name} appears twice")
        columns[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise StatementFormatError(f"missing columns: {', '.join(missing)}")
    return columns


def _check_footer(footer: list[str], totals: dict[StatementLineKind, list[int]]) -> None:
    checks = (
        (StatementLineKind.PAYMENT, PAYMENT_TOTAL, "交易合计", True),
        # A day without refunds may lack its refund total; rows must then agree.
        (StatementLineKind.REFUND, REFUND_TOTAL, "退款合计", False),
    )
    for kind, pattern, label, required in checks:
        match = next((m for m in map(pattern.match, footer) if m), None)
        count, amount = totals[kind]
        if match is None:
            if required or count:
                raise StatementFormatError(f"no #{label} footer line")
            continue
        try:
            footer_amount = yuan_to_fen(match.group(2))
        except ValueError:
            raise StatementFormatError(f"#{label}: {match.group(2)!r} is not an amount") from None
        if int(match.group(1)) != count or footer_amount != amount:
            raise StatementTotalsMismatch(
                f"#{label} says {match.group(1)} rows and {match.group(2)} yuan; "
                f"the rows hold {count} and {amount} fen"
            )


# -- the same bill in bulk -------------------------------------------------------------

# The kind cells as bytes, bare or padded with Alipay's TAB (other padding is left to the parser).
_KIND_CELLS = {StatementLineKind.PAYMENT: "交易", StatementLineKind.REFUND: "退款"}
# GBK's trail bytes are 0x40 and above: a byte 0x23 is always "#".
_FOOTER_START = re.compile(rb"\n#")
_YUAN_PATTERN = r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,2})?$"


@functools.cache
def _kind_cells(kind: StatementLineKind) -> Any:
    """The kind's cells as bytes, bare and TAB-padded, as an Arrow array (built on first use: pyarrow loads late)."""
    import pyarrow as pa

    word = _KIND_CELLS[kind].encode(BILL_ENCODING)
    return pa.array([word, word + b"\t"], pa.binary())


def trade_bill_columns(stream: BinaryIO, *, account: str = "") -> Iterator[Any]:
    """The bill's lines as column batches (payments.gateways.statement_columns), the footer checked at the end.

    The same lines as parse_trade_bill for a bill of the plain shape (no
    quoted cells, ASCII numbers, amounts and times in their strict form);
    StatementFormatError for anything else, which parse_trade_bill then
    reads and judges.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from payments.gateways import statement_columns as sc

    try:
        archive = zipfile.ZipFile(stream, metadata_encoding=BILL_ENCODING)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise StatementFormatError("the bill is not a ZIP file") from exc
    with archive:
        names = [info.filename for info in archive.infolist()
                 if not info.is_dir() and info.filename.endswith(DETAIL_ENTRY_SUFFIX)]
        if len(names) != 1:
            raise StatementFormatError(f"expected one *{DETAIL_ENTRY_SUFFIX} entry, found {len(names)}")
        try:
            with archive.open(names[0]) as entry:
                head = (line.decode(BILL_ENCODING) for line in iter(entry.readline, b""))
                header = _preamble(head, account=account)
                if header is None:
                    raise sc.unsuitable("an empty list")
                columns = _columns(header)
                try:
                    body = sc.RowsUntil(entry, _FOOTER_START, watch=b'"')
                    reader = pa_csv.open_csv(
                        io.BufferedReader(body, 1 << 20),
                        read_options=pa_csv.ReadOptions(column_names=[f"c{index}" for index in range(len(columns))],
                                                        block_size=1 << 20),
                        parse_options=pa_csv.ParseOptions(quote_char=False, newlines_in_values=False),
                        convert_options=pa_csv.ConvertOptions(
                            column_types={f"c{index}": pa.binary() for index in range(len(columns))}))
                    totals = {kind: [0, 0] for kind in StatementLineKind}
                    for cells in reader:
                        yield _column_batch(cells, columns, account=account, totals=totals)
                except pa.ArrowInvalid as exc:
                    raise sc.unsuitable(str(exc).splitlines()[0][:200]) from None
                if body.watched:
                    raise sc.unsuitable("a quoted cell")
                footer = body.rest().decode(BILL_ENCODING)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise StatementFormatError(f"the ZIP entry is damaged ({type(exc).__name__})") from None
        except UnicodeDecodeError:
            raise StatementFormatError("the detail file is not GBK text") from None
    lines = [stripped for line in footer.splitlines() if (stripped := line.strip())]
    if not lines or LIST_END not in lines[0]:
        raise sc.unsuitable(f"no {LIST_END} marker right after the rows")
    _check_footer([line for line in lines if line.startswith("#")], totals)


def _column_batch(cells: Any, columns: dict[str, int], *, account: str,
                  totals: dict[StatementLineKind, list[int]]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    from payments.gateways import statement_columns as sc

    def cell(name: str) -> Any:
        return cells.column(columns[name])

    length = cells.num_rows
    kind_cells = cell(COL_KIND)
    payment_mask = pc.is_in(kind_cells, value_set=_kind_cells(StatementLineKind.PAYMENT))
    refund_mask = pc.is_in(kind_cells, value_set=_kind_cells(StatementLineKind.REFUND))
    sc.require(pc.or_(payment_mask, refund_mask), f"a {COL_KIND} other than 交易 and 退款")
    if account and COL_MERCHANT_PID in columns:
        pids = sc.identifiers(sc.ascii_text(cell(COL_MERCHANT_PID), COL_MERCHANT_PID), COL_MERCHANT_PID)
        sc.require(pc.or_(pc.equal(pids, ""), pc.equal(pids, account)), f"a {COL_MERCHANT_PID} not ours")

    def amounts(name: str) -> Any:
        text = sc.stripped(sc.ascii_text(cell(name), name))
        # An empty amount cell is 0, as in the line parser.
        return sc.scaled(pc.if_else(pc.equal(text, ""), "0", text), pattern=_YUAN_PATTERN, places=2, what=name)

    amount = pc.abs(amounts(COL_ORDER_AMOUNT))
    received = amounts(COL_MERCHANT_RECEIVED)
    fee_at = columns.get(COL_FEE)
    fee = pc.abs(amounts(COL_FEE)) if fee_at is not None else pa.repeat(pa.scalar(0, pa.int64()), length)
    refund_no_name = next((name for name in COL_REFUND_NO if name in columns), None)
    empty = sc.constant("", length)
    refund_no = (sc.identifiers(sc.ascii_text(cell(refund_no_name), refund_no_name), refund_no_name)
                 if refund_no_name else empty)
    for kind, mask in ((StatementLineKind.PAYMENT, payment_mask), (StatementLineKind.REFUND, refund_mask)):
        totals[kind][0] += pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
        totals[kind][1] += pc.sum(pc.if_else(mask, received, 0)).as_py() or 0
    return sc.batch({
        "kind": pc.if_else(refund_mask, StatementLineKind.REFUND.value, StatementLineKind.PAYMENT.value),
        "out_trade_no": sc.identifiers(sc.ascii_text(cell(COL_OUT_TRADE_NO), COL_OUT_TRADE_NO), COL_OUT_TRADE_NO),
        "out_refund_no": pc.if_else(refund_mask, refund_no, empty),
        "gateway_trade_no": sc.identifiers(sc.ascii_text(cell(COL_TRADE_NO), COL_TRADE_NO), COL_TRADE_NO),
        "gateway_refund_id": empty,
        "amount_minor": amount,
        "fee_minor": pc.if_else(refund_mask, pc.negate(fee), fee),
        "currency": sc.constant("CNY", length),
        "occurred_at": sc.beijing_times(sc.stripped(sc.ascii_text(cell(COL_FINISHED_AT), COL_FINISHED_AT)),
                                        what=COL_FINISHED_AT),
        "bill_status": empty,
    })
