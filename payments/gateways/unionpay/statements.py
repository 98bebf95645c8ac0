"""UnionPay's settlement file (对账文件) parsed into statement lines.

docs/gateways-alipay-unionpay.md B11: the file transfer answer's
`fileContent` is base64 of a zlib-compressed ZIP. In it, the `ZM_` file
(`INN<yyMMdd><2 chars>ZM_<merId>`) has one fixed-width line per transaction:
GBK, CRLF, fields of fixed *byte* width separated by one space; the `RD`
file is the summary report whose totals the lines must add up to. The
settlement day runs from 23:00 of the day before to 23:00 (B11, B13).
"""
from __future__ import annotations

import base64
import binascii
import io
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation

from payments.exceptions import StatementFormatError, StatementTotalsMismatch
from payments.gateways.base import StatementLine, StatementLineKind
from payments.gateways.unionpay.formats import (
    BEIJING,
    TXN_CONSUME,
    TXN_REFUND,
    TXN_UNDO,
    parse_short_time,
)

# GB18030 decodes every GBK byte sequence the same way, and a few more.
FILE_ENCODING = "gb18030"

# B11, the general transaction detail (ZM) line: (name, width in bytes).
ZM_FIELDS: tuple[tuple[str, int], ...] = (
    ("tradeNo", 3), ("acqInsCode", 11), ("sendInsCode", 11), ("traceNo", 6), ("txnTime", 10),
    ("payCardNo", 19), ("txnAmt", 12), ("merCatCode", 4), ("termType", 2), ("queryId", 21),
    ("oldPayType", 2), ("orderId", 32), ("payCardType", 2), ("origTraceNo", 6), ("origTxnTime", 10),
    ("merCharge", 13), ("settleAmt", 13), ("payType", 4), ("groupMerCode", 15), ("txnType", 2),
    ("txnSubType", 2), ("bizType", 6), ("accType", 2), ("billType", 4), ("billNo", 32),
    ("interactMode", 1), ("origQryId", 21), ("merId", 15), ("accountType", 1), ("subMerId", 15),
    ("subMerAbbr", 32), ("subMerAccountAmt", 13), ("settleNetAmt", 13), ("termId", 8), ("merReserved", 32),
    ("discountAmt", 13), ("invoiceAmt", 13), ("instalmentFee", 12), ("instalmentCount", 2), ("tradeMedia", 1),
    ("field41", 32), ("reserved", 98),
)  # fmt: skip


def _offsets() -> dict[str, tuple[int, int]]:
    offsets, start = {}, 0
    for name, width in ZM_FIELDS:
        offsets[name] = (start, start + width)
        start += width + 1  # one space between fields
    return offsets


ZM_OFFSETS = _offsets()
# A line must reach the merchant id; the fields after it are optional extras.
ZM_MIN_LENGTH = ZM_OFFSETS["merId"][1]

ZM_ENTRY = re.compile(r"INN\d{6}..ZM_(?P<mer_id>[0-9A-Za-z]+)")
ZME_ENTRY = re.compile(r"INN\d{6}..ZME_(?P<mer_id>[0-9A-Za-z]+)")
RD_ENTRY = re.compile(r"RD.*_(?P<mer_id>[0-9A-Za-z]+)")
# [unconfirmed] The RD report's layout was never seen: its total line is a
# row that starts with 合计 or 总计 and carries the count, then amount, fee
# and net in yuan (docs/gateways-alipay-unionpay.md B11).
_YUAN = r"(-?[0-9]+\.[0-9]{2})"
RD_TOTAL = re.compile(rf"^\s*(?:合计|总计)[:：]?\s+([0-9]+)\s+{_YUAN}\s+{_YUAN}\s+{_YUAN}\s*$")

_AMOUNT = re.compile(r"[0-9]{12}")
_SIGNED_AMOUNT = re.compile(r"[CD][0-9]{12}")
PAYMENT_TYPES = frozenset({TXN_CONSUME})
REFUND_TYPES = frozenset({TXN_REFUND, TXN_UNDO})
# The settlement day ends at 23:00 Beijing time (B11).
SETTLEMENT_CUTOFF = time(23, 0)


def settlement_window(day: date) -> tuple[datetime, datetime]:
    """When the transactions of settlement day `day` happened: 23:00 the day before to 23:00."""
    end = datetime.combine(day, SETTLEMENT_CUTOFF, tzinfo=BEIJING)
    start = datetime.combine(date.fromordinal(day.toordinal() - 1), SETTLEMENT_CUTOFF, tzinfo=BEIJING)
    return start, end


def unpack_file_content(file_content: str) -> bytes:
    """B11: `fileContent` -> the ZIP's bytes (base64, then zlib); checked to open.

    Raises StatementFormatError when any step fails.
    """
    try:
        compressed = base64.b64decode(file_content, validate=True)
    except (binascii.Error, ValueError):
        raise StatementFormatError("fileContent is not base64") from None
    try:
        archive = zlib.decompress(compressed)
    except zlib.error:
        raise StatementFormatError("fileContent is not zlib-compressed") from None
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            broken = opened.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError):
        raise StatementFormatError("fileContent does not hold a ZIP archive") from None
    if broken is not None:
        raise StatementFormatError(f"the settlement ZIP's entry {broken!r} is damaged")
    return archive


@dataclass(frozen=True)
class _Totals:
    count: int
    amount_minor: int
    fee_minor: int
    net_minor: int


def parse_settlement_zip(content: bytes, *, mer_id: str, day: date) -> list[StatementLine]:
    """The consume and refund lines of the ZM file, checked against the RD totals.

    `amount_minor` is positive fen and `kind` gives the direction;
    `fee_minor` is what UnionPay charged (merCharge D), negative when it
    gave a fee back (C, on refunds); the direction (consume: payment; refund and undo: refund, whose orderId is
    our out_refund_no and whose payment is named only by `gateway_trade_no`
    = origQryId: the file does not carry the payment's orderId). Raises
    StatementFormatError, or StatementTotalsMismatch when the lines and the
    report disagree.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise StatementFormatError("the settlement file is not a ZIP archive") from None
    with archive:
        names = archive.namelist()
        zm = _one_entry(names, ZM_ENTRY, mer_id, "ZM")
        rd = _one_entry(names, RD_ENTRY, mer_id, "RD")
        zme = [name for name in names if _matches(ZME_ENTRY, name, mer_id)]
        zm_text, rd_text = archive.read(zm), archive.read(rd)
        zme_texts = [archive.read(name) for name in zme]
    for text in zme_texts:
        if text.strip():
            # Their layout's names are unconfirmed (B11): never guess money.
            raise StatementFormatError("the settlement file has error/adjustment (ZME) lines: reconcile them by hand")
    lines, totals = [], _Totals(0, 0, 0, 0)
    for number, raw_line in enumerate(zm_text.split(b"\r\n"), start=1):
        if not raw_line.strip():
            continue
        line, signed = _line(raw_line, number, mer_id=mer_id, day=day)
        lines.append(line)
        totals = _Totals(totals.count + 1, totals.amount_minor + signed.amount_minor,
                         totals.fee_minor + signed.fee_minor, totals.net_minor + signed.net_minor)
    _check_totals(_report_totals(rd_text), totals)
    return lines


def _matches(pattern: re.Pattern[str], name: str, mer_id: str) -> bool:
    found = pattern.fullmatch(name.rsplit("/", 1)[-1])
    return found is not None and found.group("mer_id") == mer_id


def _one_entry(names: list[str], pattern: re.Pattern[str], mer_id: str, label: str) -> str:
    found = [name for name in names if _matches(pattern, name, mer_id)]
    if len(found) != 1:
        raise StatementFormatError(f"the settlement ZIP has {len(found)} {label} files for merchant {mer_id}, "
                                   f"not one (entries: {sorted(names)})")
    return found[0]


def _field(raw_line: bytes, name: str) -> str:
    start, end = ZM_OFFSETS[name]
    try:
        return raw_line[start:end].decode(FILE_ENCODING).strip()
    except UnicodeDecodeError:
        raise StatementFormatError(f"field {name} is not GBK text") from None


def _fen(text: str, name: str, number: int) -> int:
    if not _AMOUNT.fullmatch(text):
        raise StatementFormatError(f"line {number}: {name} {text!r} is not 12 digits of fen")
    return int(text)


def _signed_fen(text: str, name: str, number: int) -> int:
    """`D000000002861` -> 2861, `C...` -> -2861: D is debited from the merchant, C credited."""
    if not _SIGNED_AMOUNT.fullmatch(text):
        raise StatementFormatError(f"line {number}: {name} {text!r} is not C/D and 12 digits of fen")
    value = int(text[1:])
    return value if text[0] == "D" else -value


def _line(raw_line: bytes, number: int, *, mer_id: str, day: date) -> tuple[StatementLine, _Totals]:
    if len(raw_line) < ZM_MIN_LENGTH:
        raise StatementFormatError(f"line {number} is {len(raw_line)} bytes, shorter than a ZM line")
    values = {name: _field(raw_line, name) for name, _ in ZM_FIELDS if ZM_OFFSETS[name][0] < len(raw_line)}
    if values["merId"] != mer_id:
        raise StatementFormatError(f"line {number} is for merchant {values['merId']!r}, not {mer_id}")
    txn_type = values["txnType"]
    if txn_type in PAYMENT_TYPES:
        kind, direction = StatementLineKind.PAYMENT, 1
    elif txn_type in REFUND_TYPES:
        kind, direction = StatementLineKind.REFUND, -1
    else:
        raise StatementFormatError(f"line {number}: txnType {txn_type!r} is neither a consume nor a refund")
    amount = _fen(values["txnAmt"], "txnAmt", number)
    fee = _signed_fen(values["merCharge"], "merCharge", number)
    # settleAmt: C credited to the merchant, D debited (the opposite of a fee).
    net = -_signed_fen(values["settleAmt"], "settleAmt", number)
    if not values["queryId"] or not values["orderId"]:
        raise StatementFormatError(f"line {number} has no queryId or orderId")
    end_of_day = datetime.combine(day, SETTLEMENT_CUTOFF, tzinfo=BEIJING)
    try:
        occurred_at = parse_short_time(values["txnTime"], near=end_of_day)
    except ValueError:
        raise StatementFormatError(f"line {number}: txnTime {values['txnTime']!r} is not MMDDhhmmss") from None
    is_refund = kind is StatementLineKind.REFUND
    line = StatementLine(
        kind=kind,
        out_trade_no="" if is_refund else values["orderId"],
        gateway_trade_no=values["origQryId"] if is_refund else values["queryId"],
        amount_minor=amount,
        out_refund_no=values["orderId"] if is_refund else "",
        gateway_refund_id=values["queryId"] if is_refund else "",
        fee_minor=fee,
        occurred_at=occurred_at,
        status="undo" if txn_type == TXN_UNDO else "",
        raw=values,
    )
    return line, _Totals(1, direction * amount, fee, net)


def _yuan_to_fen(text: str) -> int:
    try:
        fen = Decimal(text).scaleb(2)
    except InvalidOperation:
        raise StatementFormatError(f"{text!r} is not an amount") from None
    return int(fen)


def _report_totals(report: bytes) -> _Totals:
    try:
        text = report.decode(FILE_ENCODING)
    except UnicodeDecodeError:
        raise StatementFormatError("the RD summary is not GBK text") from None
    found: Mapping[int, re.Match[str]] = {
        number: match for number, row in enumerate(text.splitlines()) if (match := RD_TOTAL.match(row))
    }
    if len(found) != 1:
        raise StatementFormatError(f"the RD summary has {len(found)} total lines, not one")
    (match,) = found.values()
    count, amount, fee, net = match.groups()
    return _Totals(int(count), _yuan_to_fen(amount), _yuan_to_fen(fee), _yuan_to_fen(net))


def _check_totals(report: _Totals, lines: _Totals) -> None:
    if report != lines:
        raise StatementTotalsMismatch(
            f"the ZM lines add up to {lines.count} transactions, {lines.amount_minor} fen, fee {lines.fee_minor}, "
            f"net {lines.net_minor}; the RD summary says {report.count}, {report.amount_minor}, fee "
            f"{report.fee_minor}, net {report.net_minor}"
        )
