"""How API v2 writes amounts and times (docs/gateways-wechatpay.md §1, §10.3-§10.5).

Amounts are integer fen written as decimal digits (`total_fee`); times are
China time, `yyyyMMddHHmmss` in calls and the payment notification,
`yyyy-MM-dd HH:mm:ss` in refund results. Identifiers follow §7, as for v3.
"""
from __future__ import annotations

import re
from datetime import datetime

from payments.gateways.wechatpay.formats import BEIJING, check_fen

COMPACT_TIME_FORMAT = "%Y%m%d%H%M%S"
REFUND_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BILL_DATE_FORMAT = "%Y%m%d"

_FEN = re.compile(r"[0-9]{1,13}")
_COMPACT_TIME = re.compile(r"[0-9]{14}")
_REFUND_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


def fen_text(amount_minor: int, name: str) -> str:
    """An amount to send: integer fen (checked as for v3), as digits."""
    return str(check_fen(amount_minor, name))


def parse_fen(text: str, name: str) -> int:
    """`"8800"` -> 8800; ValueError for signs, decimals, spaces, non-ASCII digits or 0."""
    if not _FEN.fullmatch(text):
        raise ValueError(f"{name} is not a whole number of fen")
    return check_fen(int(text), name)


def format_compact_time(moment: datetime) -> str:
    """An aware datetime as `yyyyMMddHHmmss` in China time; ValueError when naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("WeChat Pay times are built from aware datetimes only")
    return moment.astimezone(BEIJING).strftime(COMPACT_TIME_FORMAT)


def parse_compact_time(text: str) -> datetime:
    """`"20251122095830"` (China time) -> an aware datetime; ValueError otherwise."""
    if not _COMPACT_TIME.fullmatch(text):
        raise ValueError("not a yyyyMMddHHmmss time")
    return datetime.strptime(text, COMPACT_TIME_FORMAT).replace(tzinfo=BEIJING)


def parse_refund_time(text: str) -> datetime:
    """`"2025-11-22 09:59:10"` (China time) -> an aware datetime; ValueError otherwise."""
    if not _REFUND_TIME.fullmatch(text):
        raise ValueError("not a yyyy-MM-dd HH:mm:ss time")
    return datetime.strptime(text, REFUND_TIME_FORMAT).replace(tzinfo=BEIJING)
