"""Alipay's wire formats for money and time, converted exactly at the edge.

Money: Alipay speaks yuan strings with two decimals, `"0.01"` to
`"100000000.00"` (docs/gateways-alipay-unionpay.md A7, A12); the shop speaks
integer fen. Time: Beijing time written `yyyy-MM-dd HH:mm:ss` with no zone
suffix (A3, A12). Never a float: `Decimal` only while converting.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

# China has kept UTC+8 without daylight saving since 1991: a fixed offset
# needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
WIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
WIRE_DATE_FORMAT = "%Y-%m-%d"

MIN_AMOUNT_FEN = 1  # "0.01"
MAX_AMOUNT_FEN = 10_000_000_000  # "100000000.00"

# ASCII digits only (`\d` would take any Unicode digit), an optional minus,
# no leading zeros, at most two decimals.
_YUAN = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]{1,2})?")
# A bill's time cell, exactly as Alipay writes it (A11): checked before the
# fast ISO parser reads it, which alone would take other shapes too.
_BILL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def fen_to_yuan(fen: int) -> str:
    """`8888` -> `"88.88"`: an amount to send to Alipay.

    Only amounts Alipay accepts: an int (not a bool, never a float) from 1 fen
    to 100000000.00 yuan. Anything else raises ValueError.
    """
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise ValueError(f"amounts are integer fen, got {fen!r}")
    if not MIN_AMOUNT_FEN <= fen <= MAX_AMOUNT_FEN:
        raise ValueError(f"Alipay amounts run from 0.01 to 100000000.00 yuan, got {fen} fen")
    yuan = str(Decimal(fen).scaleb(-2))
    if yuan_to_fen(yuan) != fen:  # cannot happen; guards the round trip the style asks for
        raise ValueError(f"{fen} fen does not convert exactly")
    return yuan


def yuan_to_fen(text: str) -> int:
    """`"88.88"` -> `8888`, `"88.8"` -> `8880`, `"-0.01"` -> `-1`: an amount from Alipay.

    Accepts what Alipay writes: ASCII digits, an optional leading minus
    (refund lines of a bill are negative; callers take abs() where a
    direction is implied), no leading zeros, and at most two decimals.
    Raises ValueError for anything else: `"88.888"` (not whole fen), `""`,
    `"abc"`, `"1e3"`, `"+1"`, `"1,000.00"`, `".5"`, surrounding spaces, and
    non-strings (a float is never an amount).
    """
    if not isinstance(text, str):
        raise ValueError(f"yuan amounts are strings, got {text!r}")
    if not _YUAN.fullmatch(text):
        raise ValueError(f"not a yuan amount with at most two decimals: {text!r}")
    # The pattern admits whole fen only (at most two decimals), so integer
    # arithmetic is exact; a bill calls this a few million times a day.
    negative = text.startswith("-")
    whole, _dot, fraction = text.removeprefix("-").partition(".")
    fen = int(whole) * 100 + int(fraction.ljust(2, "0") if fraction else "0")
    return -fen if negative else fen


def format_beijing(moment: datetime) -> str:
    """An aware datetime as Alipay writes it: Beijing time, `yyyy-MM-dd HH:mm:ss`."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("Alipay times are built from aware datetimes only")
    return moment.astimezone(BEIJING).strftime(WIRE_TIME_FORMAT)


def parse_bill_time(text: str) -> datetime:
    """A bill's `"2019-08-15 15:56:24"` (Beijing time) -> an aware datetime; ValueError if malformed.

    The same result as parse_beijing for what bills hold, several times
    faster: a bill of a million lines parses a million of them.
    """
    if not isinstance(text, str) or not _BILL_TIME.fullmatch(text):
        raise ValueError(f"not a bill time: {text!r}")
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def parse_beijing(text: str) -> datetime:
    """`"2019-08-15 15:56:24"` (Beijing time) -> an aware datetime; ValueError if malformed."""
    if not isinstance(text, str):
        raise ValueError(f"Alipay times are strings, got {text!r}")
    return datetime.strptime(text, WIRE_TIME_FORMAT).replace(tzinfo=BEIJING)
