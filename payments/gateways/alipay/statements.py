"""Alipay's daily `trade` bill (业务明细) parsed into statement lines.

Follows docs/gateways-alipay-unionpay.md A11: a ZIP whose entry names are GBK
without the UTF-8 flag; the `_业务明细.csv` entry (not `_业务明细(汇总).csv`)
is GBK CSV with `#` comment lines, a header row after the 业务明细列表
marker, identifier cells padded with a TAB, and footer control totals.
Columns are found by header name, since 25- and 29-column variants exist.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from datetime import datetime

from payments.exceptions import StatementFormatError
from payments.gateways.alipay.formats import parse_beijing, yuan_to_fen
from payments.gateways.base import StatementLine, StatementLineKind

# GB18030 decodes every GBK byte sequence the same way, and a few more.
BILL_ENCODING = "gb18030"
DETAIL_ENTRY_SUFFIX = "_业务明细.csv"
LIST_START = "业务明细列表"
LIST_END = "业务明细列表结束"

COL_TRADE_NO = "支付宝交易号"
COL_OUT_TRADE_NO = "商户订单号"
COL_KIND = "业务类型"
COL_FINISHED_AT = "完成时间"
COL_ORDER_AMOUNT = "订单金额（元）"
COL_MERCHANT_RECEIVED = "商家实收（元）"
COL_FEE = "服务费（元）"
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

_AMOUNT = r"(-?[0-9]+(?:\.[0-9]+)?)"
PAYMENT_TOTAL = re.compile(rf"#\s*交易合计[：:]\s*([0-9]+)\s*笔[，,]\s*商家实收共\s*{_AMOUNT}\s*元")
REFUND_TOTAL = re.compile(rf"#\s*退款合计[：:]\s*([0-9]+)\s*笔[，,]\s*商家实收退款共\s*{_AMOUNT}\s*元")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def parse_trade_bill(content: bytes) -> list[StatementLine]:
    """The payment and refund lines of a zipped `trade` bill, checked against its footer.

    Amounts are positive fen (`kind` gives the direction); `fee_minor` is
    the absolute 服务费 in fen, since its sign convention is unconfirmed.
    Every line of this bill is a completed movement, so `status` stays "".
    Raises StatementFormatError.
    """
    header, rows, footer = _sections(_detail_text(content))
    if header is None:
        columns: dict[str, int] = {}
        if rows:
            raise StatementFormatError("data rows without a header row")
    else:
        columns = _columns(header)
    lines = []
    # Control sums in fen, signed as in the file, per kind: [count, 商家实收].
    totals = {kind: [0, 0] for kind in StatementLineKind}
    for number, cells in enumerate(_csv_rows(rows), start=1):
        line, merchant_received = _line(cells, columns, number)
        totals[line.kind][0] += 1
        totals[line.kind][1] += merchant_received
        lines.append(line)
    _check_footer(footer, totals)
    return lines


def _detail_text(content: bytes) -> str:
    try:
        # Entry names carry no UTF-8 flag: they are GBK (names that do carry
        # the flag are still read as UTF-8).
        archive = zipfile.ZipFile(io.BytesIO(content), metadata_encoding=BILL_ENCODING)
    except zipfile.BadZipFile as exc:
        raise StatementFormatError("the bill is not a ZIP file") from exc
    with archive:
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and info.filename.endswith(DETAIL_ENTRY_SUFFIX)
        ]
        if len(names) != 1:
            raise StatementFormatError(f"expected one *{DETAIL_ENTRY_SUFFIX} entry, found {len(names)}")
        try:
            data = archive.read(names[0])
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise StatementFormatError(f"cannot read {names[0]}") from exc
    try:
        return data.decode(BILL_ENCODING)
    except UnicodeDecodeError as exc:
        raise StatementFormatError("the detail file is not GBK text") from exc


def _sections(text: str) -> tuple[str | None, list[str], list[str]]:
    """(header row, data rows, footer comments) of the detail file."""
    header: str | None = None
    rows: list[str] = []
    footer: list[str] = []
    state = "preamble"
    for line in _LINE_BREAK.split(text):
        stripped = line.strip()
        is_comment = stripped.startswith("#")
        if state == "preamble":
            if is_comment and LIST_START in stripped and LIST_END not in stripped:
                state = "header"
        elif is_comment and LIST_END in stripped and state in ("header", "rows"):
            state = "footer"
        elif state == "header":
            if is_comment:
                raise StatementFormatError("a comment where the header row should be")
            if stripped:
                header, state = line, "rows"
        elif state == "rows":
            if is_comment:
                raise StatementFormatError(f"no {LIST_END} marker before the footer: the list is cut short")
            if stripped:
                rows.append(line)
        elif is_comment:
            footer.append(stripped)
    if state == "preamble":
        raise StatementFormatError(f"no {LIST_START} marker")
    if state != "footer":
        raise StatementFormatError(f"no {LIST_END} marker: the file is cut short")
    return header, rows, footer


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


def _csv_rows(rows: list[str]) -> list[list[str]]:
    # One reader over the whole block, so a quoted cell may hold a comma
    # or even a line break.
    return [[cell.strip() for cell in cells] for cells in csv.reader(io.StringIO("\n".join(rows)))]


def _line(cells: list[str], columns: dict[str, int], number: int) -> tuple[StatementLine, int]:
    if len(cells) < len(columns) or any(cells[len(columns) :]):
        raise StatementFormatError(f"row {number} has {len(cells)} cells for {len(columns)} columns")
    names = sorted(columns, key=columns.__getitem__)
    raw = {name: cells[columns[name]] for name in names}
    kind = KINDS.get(raw[COL_KIND])
    if kind is None:
        raise StatementFormatError(f"row {number}: unknown {COL_KIND} {raw[COL_KIND]!r}")
    refund_column = next((name for name in COL_REFUND_NO if name in columns), None)
    line = StatementLine(
        kind=kind,
        out_trade_no=raw[COL_OUT_TRADE_NO],
        gateway_trade_no=raw[COL_TRADE_NO],
        amount_minor=abs(_fen(raw[COL_ORDER_AMOUNT], number, COL_ORDER_AMOUNT)),
        out_refund_no=raw[refund_column] if refund_column and kind is StatementLineKind.REFUND else "",
        fee_minor=abs(_fen(raw.get(COL_FEE) or "0", number, COL_FEE)),
        occurred_at=_time(raw[COL_FINISHED_AT], number),
        raw=raw,
    )
    return line, _fen(raw[COL_MERCHANT_RECEIVED], number, COL_MERCHANT_RECEIVED)


def _fen(text: str, number: int, column: str) -> int:
    try:
        return yuan_to_fen(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {column} {text!r} is not an amount") from None


def _time(text: str, number: int) -> datetime | None:
    if not text:
        return None
    try:
        return parse_beijing(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {COL_FINISHED_AT} {text!r} is not a time") from None


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
            raise StatementFormatError(
                f"#{label} says {match.group(1)} rows and {match.group(2)} yuan; "
                f"the rows hold {count} and {amount} fen"
            )
