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
import io
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import BinaryIO

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
MEMO_LIMIT = 100_000

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
        reader = _RowReader(_columns(header), account=account)
        for cells in _data_rows(text):
            line, merchant_received = reader.line(cells)
            kind_totals = totals[line.kind]
            kind_totals[0] += 1
            kind_totals[1] += merchant_received
            yield line
    _check_footer([stripped for line in text if (stripped := line.strip()).startswith("#")], totals)


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


def _data_rows(text: Iterator[str]) -> Iterator[list[str]]:
    """The cells of each data row, up to and including the end marker.

    A row without a quote is split on commas (most rows: several times
    faster than csv); a quoted row goes through csv, taking the following
    lines while a quoted cell still holds a line break.
    """
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
        if '"' not in line:
            yield line.rstrip("\r\n").split(",")
            continue
        while line.count('"') % 2:
            following = next(text, None)
            if following is None:
                raise StatementFormatError("a quoted cell runs to the end of the file: the file is cut short")
            line += following
        yield next(csv.reader([line]))
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


class _RowReader:
    """Turns the cells of one row into a line; column positions are looked up once.

    Amounts and times are memoised per bill: the same prices and seconds
    recur on many rows, and converting them is most of the work.
    """

    def __init__(self, columns: dict[str, int], *, account: str) -> None:
        self.columns = columns
        self.width = len(columns)
        self.number = 0
        self.trade_no = columns[COL_TRADE_NO]
        self.out_trade_no = columns[COL_OUT_TRADE_NO]
        self.kind = columns[COL_KIND]
        self.finished_at = columns[COL_FINISHED_AT]
        self.amount = columns[COL_ORDER_AMOUNT]
        self.received = columns[COL_MERCHANT_RECEIVED]
        self.fee = columns.get(COL_FEE)
        self.refund_no = next((columns[name] for name in COL_REFUND_NO if name in columns), None)
        self.pid = columns.get(COL_MERCHANT_PID) if account else None
        self.account = account
        self.fen: dict[str, int] = {"0": 0, "0.00": 0, "": 0}
        self.times: dict[str, datetime | None] = {"": None}

    def line(self, cells: list[str]) -> tuple[StatementLine, int]:
        self.number += 1
        if len(cells) != self.width and (len(cells) < self.width or any(cells[self.width:])):
            raise StatementFormatError(f"row {self.number} has {len(cells)} cells for {self.width} columns")
        kind = KINDS.get(cells[self.kind].strip())
        if kind is None:
            raise StatementFormatError(f"row {self.number}: unknown {COL_KIND} {cells[self.kind].strip()[:16]!r}")
        if self.pid is not None and (pid := cells[self.pid].strip()) and pid != self.account:
            raise StatementFormatError(f"row {self.number}: {COL_MERCHANT_PID} {pid[:24]!r} is not ours")
        fee = abs(self._fen(cells[self.fee].strip(), COL_FEE)) if self.fee is not None else 0
        is_refund = kind is StatementLineKind.REFUND
        finished_at = cells[self.finished_at].strip()
        occurred_at = self.times[finished_at] if finished_at in self.times else self._time(finished_at)
        line = StatementLine(
            kind=kind,
            out_trade_no=cells[self.out_trade_no].strip(),
            gateway_trade_no=cells[self.trade_no].strip(),
            amount_minor=abs(self._fen(cells[self.amount].strip(), COL_ORDER_AMOUNT)),
            out_refund_no=cells[self.refund_no].strip() if is_refund and self.refund_no is not None else "",
            fee_minor=-fee if is_refund else fee,
            occurred_at=occurred_at,
            raw=BillRow(self.columns, cells),
        )
        return line, self._fen(cells[self.received].strip(), COL_MERCHANT_RECEIVED)

    def _fen(self, text: str, column: str) -> int:
        fen = self.fen.get(text)
        if fen is None:
            try:
                fen = yuan_to_fen(text)
            except ValueError:
                raise StatementFormatError(f"row {self.number}: {column} {text[:24]!r} is not an amount") from None
            if len(self.fen) < MEMO_LIMIT:
                self.fen[text] = fen
        return fen

    def _time(self, text: str) -> datetime:
        try:
            moment = parse_bill_time(text)
        except ValueError:
            raise StatementFormatError(
                f"row {self.number}: {COL_FINISHED_AT} {text[:24]!r} is not a time") from None
        if len(self.times) < MEMO_LIMIT:
            self.times[text] = moment
        return moment


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
