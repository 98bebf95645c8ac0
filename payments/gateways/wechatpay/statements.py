"""WeChat Pay's daily trade bill (交易账单): integrity check and parsing, as streams.

Follows docs/gateways-wechatpay.md §6.8 (gunzip, then SHA-1 of the uncompressed
bytes against the verified `hash_value`) and §6.9 (the file, the same for
API v2 and v3): UTF-8 with an optional BOM, CRLF or LF; a plain header
row; detail rows whose every field starts with a backtick, split on the
two characters `` ,` `` so that commas inside product names survive; a
plain summary header and a backticked summary row. Columns are found by
header name (27-column ALL, 20-column SUCCESS, 29-column REFUND bills).
Amounts are yuan strings converted to fen exactly, in integers.

Both the check and the parser read the bill as a stream (gunzipping as they
go), so a bill of a million rows is never held uncompressed in memory; the
file is kept as it was downloaded.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import io
import re
import zlib
from collections.abc import Generator, Iterator, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, BinaryIO

from payments.exceptions import StatementFormatError, StatementIntegrityError, StatementTotalsMismatch
from payments.gateways.base import StatementLine, StatementLineKind
from payments.gateways.wechatpay.formats import (
    FEE_PLACES,
    count_of,
    parse_bill_time,
    round_fee_to_fen,
    scaled_yuan,
    summary_decimal,
)

HASH_TYPE_SHA1 = "SHA1"
GZIP_MAGIC = b"\x1f\x8b"
# A bill of a busy shop is a few hundred megabytes; refuse to inflate a bomb.
MAX_BILL_BYTES = 2 * 1024 * 1024 * 1024
_CHUNK = 1024 * 1024

FIELD_MARK = "`"
FIELD_SEPARATOR = ",`"
BOM = "\ufeff"
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
# Amounts are summed exactly in units of 0.00001 yuan (the fee's five decimals).
PLACES = FEE_PLACES
_PER_FEN: int = 10 ** (PLACES - 2)
_ZERO_AMOUNTS = frozenset({"0", "0.0", "0.00", "0.000", "0.0000", "0.00000"})
# Distinct amounts and times remembered per bill (a day has 86,400 seconds).
MEMO_LIMIT = 300_000


# -- the downloaded file (§6.8) -----------------------------------------------


def check_bill(stream: BinaryIO, *, hash_type: str, hash_value: str) -> None:
    """Pass when the bill's uncompressed SHA-1 equals `hash_value` (case-insensitive).

    Reads `stream` once, gunzipping it when it is gzip; a body without the
    gzip magic is taken as already uncompressed (requests inflates it itself
    when the server labels it `Content-Encoding: gzip`): the hash decides
    either way. Raises StatementIntegrityError.
    """
    if hash_type.upper() != HASH_TYPE_SHA1:
        raise StatementIntegrityError(f"hash_type {hash_type[:16]!r} is not {HASH_TYPE_SHA1}")
    if not _SHA1_HEX.fullmatch(hash_value):
        raise StatementIntegrityError("hash_value is not 40 hex characters")
    digest = hashlib.sha1()
    size = 0
    with _uncompressed(stream) as content:
        try:
            while chunk := content.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if size > MAX_BILL_BYTES:
                    raise StatementIntegrityError(f"the bill inflates beyond {MAX_BILL_BYTES} bytes")
        except (OSError, EOFError, zlib.error) as exc:
            raise StatementIntegrityError(f"the bill does not gunzip ({type(exc).__name__})") from None
    if not hmac.compare_digest(digest.hexdigest(), hash_value.lower()):
        raise StatementIntegrityError(
            f"the bill's SHA-1 {digest.hexdigest()} is not the announced {hash_value.lower()}: "
            "discard it and download again"
        )


@contextlib.contextmanager
def _uncompressed(stream: BinaryIO) -> Iterator[BinaryIO]:
    """The bill's uncompressed bytes as a stream; the caller's stream stays open."""
    head = stream.read(len(GZIP_MAGIC))
    stream.seek(0)
    if head != GZIP_MAGIC:
        yield stream
        return
    with gzip.GzipFile(fileobj=stream, mode="rb") as content:
        yield content  # type: ignore[misc]  # GzipFile is a binary stream


# -- the bill's text (§6.9) ---------------------------------------------------


class BillRow(Mapping[str, str]):
    """One detail row by column name (the `raw` of a line), built without copying its cells."""

    __slots__ = ("_cells", "_columns")

    def __init__(self, columns: Mapping[str, int], cells: list[str]) -> None:
        self._columns = columns
        self._cells = cells

    def __getitem__(self, name: str) -> str:
        return self._cells[self._columns[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)

    def __repr__(self) -> str:
        return f"BillRow({dict(self)!r})"


def parse_trade_bill(stream: BinaryIO, *, mchid: str) -> Iterator[StatementLine]:
    """Yield payment (交易状态 SUCCESS) and refund (REFUND) lines, then check the summary row.

    PAYMENT lines carry 订单金额 (the order amount, `amount.total` of the
    API; 应结订单金额 when a bill has no 订单金额 column). REFUND lines
    carry 申请退款金额 (the refund amount asked for, `amount.refund` of the
    API; 退款金额 when the column is absent). The settlement amounts stay
    in `raw`. `fee_minor` is 手续费 in whole fen rounded half up on its
    absolute value, signed as written (refund rows give the fee back, so it
    is negative there); the exact string stays in `raw`. Every row must
    name our `mchid`. Raises StatementFormatError (StatementTotalsMismatch
    for the summary).
    """
    with _uncompressed(stream) as content:
        text = io.TextIOWrapper(content, encoding="utf-8", newline="")
        try:
            yield from _parse(text, mchid=mchid)
        except UnicodeDecodeError:
            raise StatementFormatError("the bill is not UTF-8 text") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise StatementFormatError(f"the bill does not gunzip ({type(exc).__name__})") from None


def _lines(text: Iterator[str]) -> Iterator[str]:
    """The non-blank lines without their line ends (CRLF or LF), the BOM dropped."""
    first = True
    for line in text:
        if first:
            line = line.removeprefix(BOM)
            first = False
        line = line.rstrip("\r\n")
        if line.strip():
            yield line


def _parse(text: Iterator[str], *, mchid: str) -> Iterator[StatementLine]:
    lines = _lines(text)
    header = next(lines, None)
    if header is None or header.startswith(FIELD_MARK):
        raise StatementFormatError("the bill does not start with its header row")
    names = _names(header, "detail header")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise StatementFormatError(f"missing columns: {', '.join(missing)}")
    columns = {name: index for index, name in enumerate(names)}
    ending: list[str] = []
    sums = yield from _detail_rows(text, columns, mchid=mchid, ending=ending)
    rest = [line for line in (ending + list(lines)) if line]
    if len(rest) != 2 or rest[0].startswith(FIELD_MARK) or not rest[1].startswith(FIELD_MARK):
        raise StatementFormatError("the bill does not end with a summary header and one summary row")
    count, totals = sums
    _check_summary(rest[0], rest[1], count=count, sums=totals)


def _detail_rows(text: Iterator[str], columns: dict[str, int], *, mchid: str,
                 ending: list[str]) -> Generator[StatementLine, None, tuple[int, dict[str, int]]]:
    """The detail rows as lines; returns (rows, the column sums the summary must equal).

    One loop with everything it needs in locals: it runs once per row of
    a bill that may have millions. The first line that is not a detail row
    (the summary header) is left in `ending`. Amounts (summed exactly in
    units of 0.00001 yuan) and times are memoised: prices and seconds recur.
    """
    width = len(columns)
    time_at = columns[COL_TIME]
    merchant_at = columns[COL_MCHID]
    transaction_id_at = columns[COL_TRANSACTION_ID]
    out_trade_no_at = columns[COL_OUT_TRADE_NO]
    state_at = columns[COL_STATE]
    currency_at = columns[COL_CURRENCY]
    fee_at = columns[COL_FEE]
    payment_name = COL_ORDER_AMOUNT if COL_ORDER_AMOUNT in columns else COL_SETTLEMENT_AMOUNT
    payment_at = columns[payment_name]
    has_refund_columns = all(name in columns for name in REFUND_COLUMNS)
    refund_name = COL_REFUND_REQUESTED if COL_REFUND_REQUESTED in columns else COL_REFUND_AMOUNT
    refund_at = columns.get(refund_name, -1)
    refund_id_at = columns.get(COL_REFUND_ID, -1)
    out_refund_no_at = columns.get(COL_OUT_REFUND_NO, -1)
    refund_status_at = columns.get(COL_REFUND_STATUS)
    summed = [(name, columns[name]) for name in SUMMARY_SUMS.values() if name in columns]
    summed_at = [index for _name, index in summed]
    totals = [0] * len(summed)
    positions = range(len(summed))
    scaled: dict[str, int] = dict.fromkeys(_ZERO_AMOUNTS, 0)
    times: dict[str, datetime] = {}
    payment, refund = StatementLineKind.PAYMENT, StatementLineKind.REFUND
    line_type = StatementLine
    per_fen = _PER_FEN
    number = 0
    first = True
    for line in text:
        if first:
            line = line.removeprefix(BOM)
            first = False
        if line[:1] != FIELD_MARK:
            if not line.strip():
                continue
            ending.append(line.rstrip("\r\n"))
            break
        number += 1
        # Drop the first backtick, split on ",`": a comma inside a product
        # name is not followed by a backtick and stays in its field.
        cells = line.rstrip("\r\n")[1:].split(FIELD_SEPARATOR)
        if len(cells) != width:
            raise StatementFormatError(f"row {number} has {len(cells)} fields for {width} columns")
        if cells[merchant_at] != mchid:
            raise StatementFormatError(f"row {number}: {COL_MCHID} {cells[merchant_at][:16]!r} is not ours")
        for position in positions:
            value = scaled.get(cells[summed_at[position]])
            if value is None:
                value = _scaled(scaled, cells[summed_at[position]], summed[position][0], number)
            totals[position] += value
        state = cells[state_at]
        if state == STATE_PAYMENT:
            kind = payment
            text_amount = cells[payment_at]
            amount_name = payment_name
            out_refund_no = gateway_refund_id = ""
            status = state
        elif state == STATE_REFUND:
            if not has_refund_columns:
                absent = [name for name in REFUND_COLUMNS if name not in columns]
                raise StatementFormatError(f"row {number}: a refund row without {', '.join(absent)}")
            kind = refund
            text_amount = cells[refund_at]
            amount_name = refund_name
            out_refund_no = cells[out_refund_no_at]
            gateway_refund_id = cells[refund_id_at]
            status = cells[refund_status_at] if refund_status_at is not None else ""
        else:
            raise StatementFormatError(f"row {number}: unknown {COL_STATE} {state[:16]!r}")
        value = scaled.get(text_amount)
        if value is None:
            value = _scaled(scaled, text_amount, amount_name, number)
        fen, rest = divmod(abs(value), per_fen)
        if rest:
            raise StatementFormatError(f"row {number}: {amount_name} {text_amount[:24]!r} is not a whole number of fen")
        fee = scaled.get(cells[fee_at])
        if fee is None:
            fee = _scaled(scaled, cells[fee_at], COL_FEE, number)
        moment = cells[time_at]
        occurred_at = times.get(moment) or _time(times, moment, number)
        yield line_type(kind, cells[out_trade_no_at], cells[transaction_id_at], fen, cells[currency_at],
                        out_refund_no, gateway_refund_id, round_fee_to_fen(fee), occurred_at, status,
                        BillRow(columns, cells))
    return number, {name: total for (name, _index), total in zip(summed, totals, strict=True)}


def _scaled(memo: dict[str, int], text: str, column: str, number: int) -> int:
    try:
        value = scaled_yuan(text, PLACES)
    except ValueError:
        raise StatementFormatError(f"row {number}: {column} {text[:24]!r} is not an amount") from None
    if len(memo) < MEMO_LIMIT:
        memo[text] = value
    return value


def _time(memo: dict[str, datetime], text: str, number: int) -> datetime:
    try:
        moment = parse_bill_time(text)
    except ValueError:
        raise StatementFormatError(f"row {number}: {COL_TIME} {text[:24]!r} is not a time") from None
    if len(memo) < MEMO_LIMIT:
        memo[text] = moment
    return moment


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


def _check_summary(header: str, row: str, *, count: int, sums: Mapping[str, int]) -> None:
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
        computed = Decimal(sums[column]).scaleb(-PLACES)
        matches = stated == computed
        if not matches and column == COL_FEE:
            # [unconfirmed] The fee total may be written to the fen while
            # the fees carry five decimals: accept the exact sum rounded.
            matches = stated == computed.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if not matches:
            raise StatementTotalsMismatch(f"{total_name} says {stated}; the {column} column sums to {computed}")


# -- the same bill in bulk -------------------------------------------------------------

_SUMMARY_START = re.compile(rb"\n[^`\r\n]")
_AMOUNT_PATTERN = r"^-?[0-9]{1,15}(\.[0-9]{1,8})?$"


def trade_bill_columns(stream: BinaryIO, *, mchid: str) -> Iterator[Any]:
    """The bill's lines as column batches (payments.gateways.statement_columns), the summary checked at the end.

    The same lines as parse_trade_bill for a bill of the plain shape (no
    backtick inside a cell, no blank line among the rows); StatementFormatError
    for anything else, which parse_trade_bill then reads and judges.

    Arrow's reader splits on one character, so the rows are split on the
    backtick: every row then starts with an empty cell, and every cell but
    the last ends with the comma of the ",`" that followed it, which is
    checked and dropped.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from payments.gateways import statement_columns as sc

    with _uncompressed(stream) as content:
        try:
            header = b""
            while not header.strip():
                header = content.readline()
                if not header:
                    raise StatementFormatError("the bill does not start with its header row")
            text = header.decode("utf-8").removeprefix(BOM).rstrip("\r\n")
            if text.startswith(FIELD_MARK):
                raise StatementFormatError("the bill does not start with its header row")
            names = _names(text, "detail header")
            missing = [name for name in REQUIRED_COLUMNS if name not in names]
            if missing:
                raise StatementFormatError(f"missing columns: {', '.join(missing)}")
            columns = {name: index + 1 for index, name in enumerate(names)}
            pieces = [f"c{index}" for index in range(len(names) + 1)]
            try:
                body = sc.RowsUntil(content, _SUMMARY_START)
                reader = pa_csv.open_csv(
                    io.BufferedReader(body, 1 << 20),
                    read_options=pa_csv.ReadOptions(column_names=pieces, block_size=1 << 20),
                    parse_options=pa_csv.ParseOptions(delimiter=FIELD_MARK, quote_char=False, newlines_in_values=False),
                    convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(pieces, pa.string())))
                summed = [name for name in SUMMARY_SUMS.values() if name in columns]
                sums = dict.fromkeys(summed, 0)
                count = 0
                for cells in reader:
                    count += cells.num_rows
                    yield _column_batch(cells, columns, mchid=mchid, sums=sums)
            except pa.ArrowInvalid as exc:
                raise sc.unsuitable(str(exc).splitlines()[0][:200]) from None
            rest = [line for line in _lines(iter(body.rest().decode("utf-8").splitlines())) if line]
        except UnicodeDecodeError:
            raise StatementFormatError("the bill is not UTF-8 text") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise StatementFormatError(f"the bill does not gunzip ({type(exc).__name__})") from None
    if len(rest) != 2 or rest[0].startswith(FIELD_MARK) or not rest[1].startswith(FIELD_MARK):
        raise sc.unsuitable("no summary header and one summary row right after the rows")
    _check_summary(rest[0], rest[1], count=count, sums=sums)


def _column_batch(cells: Any, columns: dict[str, int], *, mchid: str, sums: dict[str, int]) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    from payments.gateways import statement_columns as sc

    # A backtick inside a cell would shift the cells: every piece but the
    # first (empty: the row's own backtick) and the last must end with the
    # comma of a ",`".
    last = cells.num_columns - 1
    sc.require(pc.equal(cells.column(0), ""), "a row that does not start with a backtick")
    for index in range(1, last):
        sc.require(pc.ends_with(cells.column(index), ","), "a backtick inside a cell")
    texts: dict[str, Any] = {}
    values: dict[str, Any] = {}

    def text(name: str) -> Any:
        if name not in texts:
            index = columns[name]
            texts[name] = cells.column(index) if index == last else pc.utf8_slice_codeunits(
                cells.column(index), 0, -1)
        return texts[name]

    def amounts(name: str) -> Any:
        if name not in values:
            values[name] = sc.scaled(text(name), pattern=_AMOUNT_PATTERN, places=PLACES, what=name)
        return values[name]

    length = cells.num_rows
    sc.require(pc.equal(text(COL_MCHID), mchid), f"a {COL_MCHID} not ours")
    for name in sums:
        sums[name] += pc.sum(amounts(name)).as_py() or 0
    state = text(COL_STATE)
    refund = pc.equal(state, STATE_REFUND)
    sc.require(pc.or_(refund, pc.equal(state, STATE_PAYMENT)), f"a {COL_STATE} other than SUCCESS and REFUND")
    empty = sc.constant("", length)
    payment_amount = amounts(COL_ORDER_AMOUNT if COL_ORDER_AMOUNT in columns else COL_SETTLEMENT_AMOUNT)
    if pc.any(refund).as_py():
        if not all(name in columns for name in REFUND_COLUMNS):
            raise sc.unsuitable("a refund row without the refund columns")
        refund_amount = amounts(COL_REFUND_REQUESTED if COL_REFUND_REQUESTED in columns else COL_REFUND_AMOUNT)
        value = pc.if_else(refund, refund_amount, payment_amount)
        out_refund_no = pc.if_else(refund, text(COL_OUT_REFUND_NO), empty)
        refund_id = pc.if_else(refund, text(COL_REFUND_ID), empty)
        status = (pc.if_else(refund, text(COL_REFUND_STATUS), state) if COL_REFUND_STATUS in columns
                  else pc.if_else(refund, empty, state))
    else:
        value, out_refund_no, refund_id, status = payment_amount, empty, empty, state
    magnitude = pc.abs(value)
    per_fen = pa.scalar(_PER_FEN, pa.int64())
    fen = pc.divide(magnitude, per_fen)
    sc.require(pc.equal(pc.multiply(fen, per_fen), magnitude), "an amount that is not a whole number of fen")
    fee = amounts(COL_FEE)
    # Half up on the absolute value, the sign kept (round_fee_to_fen).
    fee_fen = pc.divide(pc.add(pc.abs(fee), _PER_FEN // 2), per_fen)
    return sc.batch({
        "kind": pc.if_else(refund, StatementLineKind.REFUND.value, StatementLineKind.PAYMENT.value),
        "out_trade_no": text(COL_OUT_TRADE_NO),
        "out_refund_no": out_refund_no,
        "gateway_trade_no": text(COL_TRANSACTION_ID),
        "gateway_refund_id": refund_id,
        "amount_minor": fen,
        "fee_minor": pc.if_else(pc.less(fee, 0), pc.negate(fee_fen), fee_fen),
        "currency": text(COL_CURRENCY),
        "occurred_at": sc.beijing_times(text(COL_TIME), what=COL_TIME, required=True),
        "bill_status": status,
    })
