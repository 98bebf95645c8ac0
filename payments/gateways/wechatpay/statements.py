"""WeChat Pay's daily trade bill (交易账单): integrity check and parsing.

Follows docs/gateways-wechatpay.md §6.8 (gunzip, then SHA-1 of the uncompressed
bytes against the verified `hash_value`) and §6.9 (the file, the same for
API v2 and v3): UTF-8 with an optional BOM, CRLF or LF; a plain header
row; detail rows whose every field starts with a backtick, split on the
two characters `` ,` `` so that commas inside product names survive; a
plain summary header and a backticked summary row. Columns are found by
header name (27-column ALL, 20-column SUCCESS, 29-column REFUND bills).
Amounts are yuan strings converted to fen exactly with Decimal.
"""
from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import re
import zlib
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TypedDict

from payments.exceptions import StatementFormatError, StatementIntegrityError, StatementTotalsMismatch
from payments.gateways.base import StatementLine, StatementLineKind
from payments.gateways.wechatpay.formats import (
    count_of,
    fee_yuan_to_fen,
    parse_bill_time,
    summary_decimal,
    yuan_decimal,
    yuan_to_fen,
)

HASH_TYPE_SHA1 = "SHA1"
GZIP_MAGIC = b"\x1f\x8b"
# A bill of a busy shop is a few megabytes; refuse to inflate a bomb.
MAX_BILL_BYTES = 256 * 1024 * 1024

FIELD_MARK = "`"
FIELD_SEPARATOR = ",`"
_LINE_BREAK = re.compile(r"\r?\n")
_SHA1_HEX = re.compile(r"[0-9A-Fa-f]{40}")

# Detail columns (§6.9).
COL_TIME = "交易时间"
COL_MCHID = "商户号"
COL_TRANSACTION_ID = "微信订单号"
COL_OUT_TRADE_NO = "商户订单号"
COL_STATE = "交易状态"
COL_CURRENCY = "货币种类"
COL_SETTLEMENT_AMOUNT = "应结订单金额"
COL_REFUND_ID = "微信退款单号"
COL_OUT_REFUND_NO = "商户退款单号"
COL_REFUND_AMOUNT = "退款金额"
COL_RECHARGE_REFUND = "充值券退款金额"
COL_REFUND_STATUS = "退款状态"
COL_FEE = "手续费"
COL_ORDER_AMOUNT = "订单金额"
COL_REFUND_REQUESTED = "申请退款金额"
REQUIRED_COLUMNS = (
    COL_TIME,
    COL_MCHID,
    COL_TRANSACTION_ID,
    COL_OUT_TRADE_NO,
    COL_STATE,
    COL_CURRENCY,
    COL_SETTLEMENT_AMOUNT,
    COL_FEE,
)
REFUND_COLUMNS = (COL_REFUND_ID, COL_OUT_REFUND_NO, COL_REFUND_AMOUNT)

STATE_PAYMENT = "SUCCESS"
STATE_REFUND = "REFUND"

# Summary column -> the detail column it totals.
SUM_COUNT = "总交易单数"
SUMMARY_SUMS = {
    "应结订单总金额": COL_SETTLEMENT_AMOUNT,
    "退款总金额": COL_REFUND_AMOUNT,
    "充值券退款总金额": COL_RECHARGE_REFUND,
    "手续费总金额": COL_FEE,
    "订单总金额": COL_ORDER_AMOUNT,
    "申请退款总金额": COL_REFUND_REQUESTED,
}


# -- the downloaded file (§6.8) -----------------------------------------------


def unpack_bill(data: bytes, *, hash_type: str, hash_value: str) -> bytes:
    """The uncompressed bill, only when its SHA-1 equals `hash_value` (case-insensitive).

    Gunzips `data` when it is gzip. A body without the gzip magic is taken
    as already uncompressed: requests inflates it itself when the server
    labels it `Content-Encoding: gzip`; the hash decides either way.
    Raises StatementIntegrityError.
    """
    if hash_type.upper() != HASH_TYPE_SHA1:
        raise StatementIntegrityError(f"hash_type {hash_type[:16]!r} is not {HASH_TYPE_SHA1}")
    if not _SHA1_HEX.fullmatch(hash_value):
        raise StatementIntegrityError("hash_value is not 40 hex characters")
    content = _gunzip(data) if data.startswith(GZIP_MAGIC) else data
    digest = hashlib.sha1(content).hexdigest()
    if not hmac.compare_digest(digest, hash_value.lower()):
        raise StatementIntegrityError(
            f"the bill's SHA-1 {digest} is not the announced {hash_value.lower()}: discard it and download again"
        )
    return content


def _gunzip(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            content = stream.read(MAX_BILL_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise StatementIntegrityError(f"the bill does not gunzip ({type(exc).__name__})") from None
    if len(content) > MAX_BILL_BYTES:
        raise StatementIntegrityError(f"the bill inflates beyond {MAX_BILL_BYTES} bytes")
    return content


# -- the bill's text (§6.9) ---------------------------------------------------


def parse_trade_bill(content: bytes, *, mchid: str) -> list[StatementLine]:
    """Payment (交易状态 SUCCESS) and refund (REFUND) lines, checked against the summary row.

    PAYMENT lines carry 订单金额 (the order amount, `amount.total` of the
    API; 应结订单金额 when a bill has no 订单金额 column). REFUND lines
    carry 申请退款金额 (the refund amount asked for, `amount.refund` of the
    API; 退款金额 when the column is absent). The settlement amounts stay
    in `raw`. `fee_minor` is |手续费| in whole fen rounded half up (the
    column has five decimals: 0.00600 yuan is 0.6 fen -> 1); the exact
    string stays in `raw`. Every row must name our `mchid`.
    Raises StatementFormatError (StatementTotalsMismatch for the summary).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise StatementFormatError("the bill is not UTF-8 text") from None
    header, rows, summary_header, summary_row = _sections(text.removeprefix("\ufeff"))
    columns = _names(header, "detail header")
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise StatementFormatError(f"missing columns: {', '.join(missing)}")
    lines = []
    sums: dict[str, Decimal] = {name: Decimal(0) for name in SUMMARY_SUMS.values() if name in columns}
    for number, row in enumerate(rows, start=1):
        cells = _cells(row, len(columns), f"row {number}")
        values = dict(zip(columns, cells, strict=True))
        for name in sums:
            sums[name] += _yuan(values[name], number, name)
        lines.append(_line(values, number, mchid=mchid))
    _check_summary(summary_header, summary_row, count=len(rows), sums=sums)
    return lines


def _sections(text: str) -> tuple[str, list[str], str, str]:
    lines = [line for line in _LINE_BREAK.split(text) if line.strip()]
    if not lines or lines[0].startswith(FIELD_MARK):
        raise StatementFormatError("the bill does not start with its header row")
    index = 1
    while index < len(lines) and lines[index].startswith(FIELD_MARK):
        index += 1
    rows = lines[1:index]
    rest = lines[index:]
    if len(rest) != 2 or rest[0].startswith(FIELD_MARK) or not rest[1].startswith(FIELD_MARK):
        raise StatementFormatError("the bill does not end with a summary header and one summary row")
    return lines[0], rows, rest[0], rest[1]


def _names(header: str, what: str) -> list[str]:
    names = [name.strip() for name in header.split(",")]
    if len(set(names)) != len(names):
        raise StatementFormatError(f"the {what} names a column twice")
    return names


def _cells(row: str, expected: int, where: str) -> list[str]:
    # Drop the first backtick, split on ",`": a comma inside a product name
    # is not followed by a backtick and stays in its field.
    cells = row[len(FIELD_MARK):].split(FIELD_SEPARATOR)
    if len(cells) != expected:
        raise StatementFormatError(f"{where} has {len(cells)} fields for {expected} columns")
    return cells


class _CommonFields(TypedDict):
    """The StatementLine fields that payment and refund rows share."""

    out_trade_no: str
    gateway_trade_no: str
    currency: str
    fee_minor: int
    occurred_at: datetime
    raw: dict[str, str]


def _line(values: Mapping[str, str], number: int, *, mchid: str) -> StatementLine:
    if values[COL_MCHID] != mchid:
        raise StatementFormatError(f"row {number}: {COL_MCHID} {values[COL_MCHID][:16]!r} is not ours")
    state = values[COL_STATE]
    common: _CommonFields = {
        "out_trade_no": values[COL_OUT_TRADE_NO],
        "gateway_trade_no": values[COL_TRANSACTION_ID],
        "currency": values[COL_CURRENCY],
        "fee_minor": _fee(values[COL_FEE], number),
        "occurred_at": _time(values[COL_TIME], number),
        "raw": dict(values),
    }
    if state == STATE_PAYMENT:
        column = COL_ORDER_AMOUNT if COL_ORDER_AMOUNT in values else COL_SETTLEMENT_AMOUNT
        return StatementLine(
            kind=StatementLineKind.PAYMENT,
            amount_minor=abs(_fen(values[column], number, column)),
            status=state,
            **common,
        )
    if state == STATE_REFUND:
        absent = [name for name in REFUND_COLUMNS if name not in values]
        if absent:
            raise StatementFormatError(f"row {number}: a refund row without {', '.join(absent)}")
        column = COL_REFUND_REQUESTED if COL_REFUND_REQUESTED in values else COL_REFUND_AMOUNT
        return StatementLine(
            kind=StatementLineKind.REFUND,
            amount_minor=abs(_fen(values[column], number, column)),
            out_refund_no=values[COL_OUT_REFUND_NO],
            gateway_refund_id=values[COL_REFUND_ID],
            status=values.get(COL_REFUND_STATUS, ""),
            **common,
        )
    raise StatementFormatError(f"row {number}: unknown {COL_STATE} {state[:16]!r}")


def _check_summary(header: str, row: str, *, count: int, sums: Mapping[str, Decimal]) -> None:
    names = _names(header, "summary header")
    summary = dict(zip(names, _cells(row, len(names), "the summary row"), strict=True))
    if SUM_COUNT not in summary:
        raise StatementFormatError(f"the summary has no {SUM_COUNT}")
    try:
        stated_count = count_of(summary[SUM_COUNT])
    except ValueError:
        raise StatementFormatError(f"{SUM_COUNT} {summary[SUM_COUNT][:16]!r} is not a count") from None
    if stated_count != count:
        raise StatementTotalsMismatch(f"the summary counts {stated_count} rows; the bill holds {count}")
    for total_name, column in SUMMARY_SUMS.items():
        if total_name not in summary or column not in sums:
            continue
        try:
            stated = summary_decimal(summary[total_name])
        except ValueError:
            raise StatementFormatError(f"{total_name} {summary[total_name][:24]!r} is not an amount") from None
        computed = sums[column]
        matches = stated == computed
        if not matches and column == COL_FEE:
            # [unconfirmed] The fee total may be written to the fen while
            # the fees carry five decimals: accept the exact sum rounded.
            matches = stated == computed.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if not matches:
            raise StatementTotalsMismatch(f"{total_name} says {stated}; the {column} column sums to {computed}")


def _yuan(text: str, number: int, column: str) -> Decimal:
    try:
        return yuan_decimal(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {column} {text[:24]!r} is not an amount") from None


def _fen(text: str, number: int, column: str) -> int:
    try:
        return yuan_to_fen(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {column} {text[:24]!r} is not a whole number of fen") from None


def _fee(text: str, number: int) -> int:
    try:
        return fee_yuan_to_fen(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {COL_FEE} {text[:24]!r} is not an amount") from None


def _time(text: str, number: int) -> datetime:
    try:
        return parse_bill_time(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {COL_TIME} {text[:24]!r} is not a time") from None
