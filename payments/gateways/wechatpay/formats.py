"""WeChat Pay's wire formats for money, time and identifiers, checked at the edge.

Money: API v3 speaks integer fen in JSON (`amount.total`), the trade bill
speaks yuan strings, and its fee column carries five decimals
(docs/gateways-wechatpay.md §1, §6.9, §7). Time: RFC 3339 with an offset; WeChat
writes `+08:00` (§1, §7). Never a float: `Decimal` only while converting.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

# China has kept UTC+8 without daylight saving since 1991: a fixed offset
# needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
RFC3339_BEIJING_FORMAT = "%Y-%m-%dT%H:%M:%S+08:00"
BILL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

MIN_AMOUNT_FEN = 1  # §7: amount.total >= 1
# Far above any real trade: a sanity bound so that a verified but absurd
# number can never overflow a bigint column downstream.
MAX_AMOUNT_FEN = 10**12

# §7: 6-32 characters. Newer pages also allow `*` and `|`, older v3 pages
# only `_-*`; the doc advises the intersection that every page accepts.
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-]{6,32}")
# §6.5: up to 64 characters of digits, letters and `_ - | * @`.
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
# Provider-issued ids (transaction_id string(32), refund_id string(32),
# notification id string(36)) kept within our columns' 64 characters.
PROVIDER_ID = re.compile(r"[\x21-\x7e]{1,64}")

# ASCII digits only (`\d` would take any Unicode digit).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_YUAN = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,8})?")
_BILL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
# Summary cells look like Java doubles printed: `45.0`, `0.47`, `1.0E7`.
_SUMMARY_NUMBER = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,8})?(?:E[0-9]{1,2})?")


def check_fen(value: object, name: str) -> int:
    """An amount to send or read: an int (not a bool, never a float), 1 fen or more.

    Raises ValueError for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be integer fen, got {type(value).__name__}")
    if not MIN_AMOUNT_FEN <= value <= MAX_AMOUNT_FEN:
        raise ValueError(f"{name} must be from {MIN_AMOUNT_FEN} to {MAX_AMOUNT_FEN} fen, got {value}")
    return value


def format_rfc3339(moment: datetime) -> str:
    """An aware datetime as WeChat writes it: `2018-06-08T10:34:56+08:00`.

    Whole seconds (fractions are dropped); ValueError for a naive datetime.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("WeChat Pay times are built from aware datetimes only")
    return moment.astimezone(BEIJING).strftime(RFC3339_BEIJING_FORMAT)


def parse_rfc3339(text: object) -> datetime:
    """`"2018-06-08T10:34:56+08:00"` -> an aware datetime (offset kept).

    Only the RFC 3339 date-time form: `fromisoformat` alone would also take
    dates without a time and naive values. Raises ValueError.
    """
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return datetime.fromisoformat(text)


def parse_bill_time(text: str) -> datetime:
    """`"2019-02-19 05:01:46"` from a bill (Beijing time) -> an aware datetime; ValueError if malformed.

    The shape is checked first, then the fast ISO parser reads it (a bill
    parses a million of these; strptime would dominate).
    """
    if not isinstance(text, str) or not _BILL_TIME.fullmatch(text):
        raise ValueError(f"not a bill time: {text!r}")
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def yuan_decimal(text: str) -> Decimal:
    """A bill's yuan string (`"0.01"`, `"0.01000"`, `"45.0"`, `"-0.01"`) as an exact Decimal.

    Raises ValueError for anything else: `""`, `"1e3"`, `"+1"`, `"1,000"`,
    spaces, non-ASCII digits.
    """
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise ValueError(f"not a yuan amount: {text!r}")
    return Decimal(text)


def scaled_yuan(text: str, places: int) -> int:
    """A bill's yuan string as an exact integer count of 10**-places yuan.

    `scaled_yuan("0.52800", 5)` -> 52800, `("-0.18", 5)` -> -18000,
    `("88", 5)` -> 8800000. The same strings as yuan_decimal, within
    `places` decimals; ValueError otherwise. Integer arithmetic and string
    checks only (no regex, no Decimal): a bill's rows are summed with it a
    few million times a day.
    """
    if not isinstance(text, str):
        raise ValueError(f"not a yuan amount: {text!r}")
    whole, dot, fraction = text.partition(".")
    negative = whole[:1] == "-"
    if negative:
        whole = whole[1:]
    # isdigit() alone takes other scripts' digits; isascii() keeps to 0-9.
    if not (whole.isascii() and whole.isdigit()) or len(whole) > 15 or (
            dot and not (fraction.isascii() and fraction.isdigit() and len(fraction) <= 8)):
        raise ValueError(f"not a yuan amount: {text!r}")
    if len(fraction) > places:
        fraction = fraction.rstrip("0")
        if len(fraction) > places:
            raise ValueError(f"more than {places} decimals: {text!r}")
    scale: int = 10**places
    value = int(whole) * scale + (int(fraction.ljust(places, "0")) if fraction else 0)
    return -value if negative else value


def yuan_to_fen(text: str) -> int:
    """`"0.03"` -> `3`, `"88.8"` -> `8880`; ValueError unless it is a whole number of fen."""
    fen = yuan_decimal(text).scaleb(2)
    if fen != fen.to_integral_value():
        raise ValueError(f"not a whole number of fen: {text!r}")
    return int(fen)


FEE_PLACES = 5  # §6.9: the fee column carries five decimals


def round_fee_to_fen(value: int) -> int:
    """A fee in 0.00001 yuan as whole fen, rounded half up on its absolute value, sign kept."""
    per_fen: int = 10 ** (FEE_PLACES - 2)
    fen = (abs(value) + per_fen // 2) // per_fen
    return -fen if value < 0 else fen


def fee_yuan_to_fen(text: str) -> int:
    """A bill fee (five decimals) in whole fen, rounded half up on its absolute value, signed as written.

    `"0.01000"` -> 1 exactly; `"0.00600"` (0.6 fen) -> 1; `"0.00400"` -> 0;
    `"0.00500"` -> 1; `"-0.18000"` (given back on a refund row) -> -18.
    The exact string stays in the line's `raw`.
    """
    return round_fee_to_fen(scaled_yuan(text, FEE_PLACES))


def summary_decimal(text: str) -> Decimal:
    """A summary cell (`"0.47"`, `"45.0"`, `"1.0E7"`) as an exact Decimal; ValueError otherwise."""
    if not isinstance(text, str) or not _SUMMARY_NUMBER.fullmatch(text):
        raise ValueError(f"not a summary number: {text!r}")
    return Decimal(text)


def count_of(text: str) -> int:
    """A bill's count cell (`"45"`, `"45.0"`, `"1.2E7"`) as an int; ValueError if not whole."""
    value = summary_decimal(text)
    if value < 0 or value != value.to_integral_value():
        raise ValueError(f"not a count: {text!r}")
    return int(value)
