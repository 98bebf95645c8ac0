"""UnionPay ACP 5.1.0 wire formats: fields, money, times and the raw answer body.

docs/gateways-alipay-unionpay.md B3 (message format), B5 (common fields), B12
(response codes), B13 (amounts, identifiers, time). Money is integer fen on
the wire, as in the shop; times are Beijing time without a zone.
"""
from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone

# China has kept UTC+8 without daylight saving since 1991.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TXN_TIME_FORMAT = "%Y%m%d%H%M%S"

VERSION = "5.1.0"
ENCODING = "UTF-8"
SIGN_METHOD_RSA = "01"
CURRENCY = "CNY"
CURRENCY_CODE = "156"
ACCESS_DIRECT_MERCHANT = "0"
CHANNEL_DESKTOP = "07"
CHANNEL_MOBILE = "08"

# B5 transaction types and their sub-types / business types.
TXN_QUERY = "00"
TXN_CONSUME = "01"
TXN_REFUND = "04"
TXN_UNDO = "31"
TXN_FILE_TRANSFER = "76"
BIZ_GATEWAY_B2C = "000201"
BIZ_NONE = "000000"
SUB_CONSUME = "01"
SUB_NONE = "00"
SUB_FILE_TRANSFER = "01"
FILE_TYPE_GENERAL = "00"

# B12 respCode / origRespCode values read in context.
RESP_SUCCESS = "00"
# Success with a defect: the issuer's answer did not arrive; still success (B7).
RESP_DEFECTIVE_SUCCESS = "A6"
SUCCESSES = frozenset({RESP_SUCCESS, RESP_DEFECTIVE_SUCCESS})
# Outcome unknown: query (or wait for the notification).
IN_FLIGHT = frozenset({"03", "04", "05"})
# System not open, busy, too many queries, outside acceptance hours: later.
TRY_LATER = frozenset({"02", "06", "37", "39"})
RESP_DUPLICATE = "12"
RESP_NO_SUCH_TRANSACTION = "34"
# The money was taken after payTimeout: UnionPay reverses it itself [sdk].
RESP_PAID_TOO_LATE = "42"
RESP_FILE_NOT_FOUND = "98"

# B13: orderId is 8 to 32 letters and digits.
ORDER_ID = re.compile(r"[0-9A-Za-z]{8,32}")
MER_ID = re.compile(r"[0-9A-Za-z]{15}")
QUERY_ID = re.compile(r"[0-9A-Za-z]{1,32}")
_FEN = re.compile(r"0|[1-9][0-9]{0,15}")
MAX_AMOUNT_FEN = 10**15

UNIONPAY_CN_PART = "中国银联股份有限公司"


def check_fen(value: int, name: str) -> str:
    """An amount to send: an int of at least 1 fen (never a bool or float), as digits."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < MAX_AMOUNT_FEN:
        raise ValueError(f"{name} must be a positive integer number of fen, got {value!r}")
    return str(value)


def parse_fen(text: str) -> int:
    """`"8800"` -> 8800: ASCII digits, no sign, no leading zeros; ValueError otherwise."""
    if not isinstance(text, str) or not _FEN.fullmatch(text):
        raise ValueError(f"not an amount in fen: {text!r}")
    return int(text)


def format_txn_time(moment: datetime) -> str:
    """An aware datetime as `YYYYMMDDhhmmss` in Beijing time (txnTime, payTimeout)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("UnionPay times are built from aware datetimes only")
    return moment.astimezone(BEIJING).strftime(TXN_TIME_FORMAT)


def parse_txn_time(text: str) -> datetime:
    """`"20240501100304"` (Beijing) -> an aware datetime; ValueError if malformed."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{14}", text):
        raise ValueError(f"not a YYYYMMDDhhmmss time: {text!r}")
    return datetime.strptime(text, TXN_TIME_FORMAT).replace(tzinfo=BEIJING)


def parse_short_time(text: str, *, near: datetime) -> datetime:
    """`MMDDhhmmss` (traceTime, ZM txnTime) -> the aware datetime closest to `near`.

    The field has no year (B13): take the year that puts it within half a
    year of `near`, so December times read in January land in the old year.
    """
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{10}", text):
        raise ValueError(f"not an MMDDhhmmss time: {text!r}")
    local = near.astimezone(BEIJING)
    candidates = []
    for year in (local.year - 1, local.year, local.year + 1):
        try:
            candidates.append(datetime.strptime(f"{year}{text}", TXN_TIME_FORMAT).replace(tzinfo=BEIJING))
        except ValueError:  # 29 February outside a leap year
            continue
    if not candidates:
        raise ValueError(f"not a time: {text!r}")
    return min(candidates, key=lambda candidate: abs(candidate - local))


def settle_date_text(day: date) -> str:
    """settleDate as sent: `MMDD` (B11), no year."""
    return day.strftime("%m%d")


def split_answer(body: str) -> dict[str, str]:
    """A back-channel answer `key=value&key=value...` (B3), never form-decoded.

    Values are raw: `+`, `/`, `=` and the CRLF inside signPubKeyCert are
    literal. An `&` inside `{...}` or `[...]` belongs to the value. One outer
    pair of braces around the whole body is stripped. Raises ValueError for
    a body that is not such a list, or names a field twice.
    """
    text = body.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    if not text:
        raise ValueError("empty answer")
    pairs: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(depth - 1, 0)
        elif char == "&" and depth == 0:
            pairs.append(text[start:index])
            start = index + 1
    pairs.append(text[start:])
    fields: dict[str, str] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise ValueError(f"not a key=value pair: {pair[:40]!r}")
        if name in fields:
            raise ValueError(f"field {name!r} appears twice")
        fields[name] = value
    return fields


def decode_form(body: bytes) -> dict[str, str]:
    """A notification's form body (B3, B7): percent-decoded UTF-8, each field once.

    Raises ValueError when the body is not a UTF-8 form or names a field
    twice (which of two values was signed is anyone's guess).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("a form body is ASCII (percent-encoded)") from None
    pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                   encoding="utf-8", errors="strict", max_num_fields=200)
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise ValueError(f"field {name!r} appears twice")
        fields[name] = value
    return fields


def without_blanks(fields: Mapping[str, str]) -> dict[str, str]:
    """B3: blank fields are neither signed nor sent."""
    return {name: value for name, value in fields.items() if value != ""}
