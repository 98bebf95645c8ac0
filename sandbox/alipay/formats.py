"""How Alipay writes amounts and times on the wire (docs/gateways-alipay-unionpay.md A12).

Amounts are yuan strings with two decimals ("88.88"); the sandbox keeps
integer fen and converts here, exactly, with Decimal. Times are Beijing time
as `yyyy-MM-dd HH:mm:ss` without a zone.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

# China has no daylight saving: a fixed offset needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# One Go SDK documents wap time_expire without seconds (A7, unconfirmed).
SHORT_TIME_FORMAT = "%Y-%m-%d %H:%M"

YUAN_PATTERN = re.compile(r"\d{1,9}(\.\d{1,2})?")
MIN_AMOUNT_FEN = 1
MAX_AMOUNT_FEN = 100_000_000_00


def yuan_text(fen: int) -> str:
    """8888 -> "88.88"; -1000 -> "-10.00" (refund lines in bills)."""
    return str(Decimal(fen).scaleb(-2).quantize(Decimal("0.01")))


def fen_from_yuan(text: str) -> int:
    """"88.88" -> 8888. Raises ValueError for anything not an exact amount in range."""
    if not YUAN_PATTERN.fullmatch(text):
        raise ValueError(f"not a yuan amount: {text!r}")
    fen = Decimal(text).scaleb(2)
    if fen != fen.to_integral_value() or not MIN_AMOUNT_FEN <= fen <= MAX_AMOUNT_FEN:
        raise ValueError(f"amount out of range: {text!r}")
    return int(fen)


def beijing_text(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing(text: str) -> datetime:
    """Parse `yyyy-MM-dd HH:mm:ss` (or without seconds) as Beijing time."""
    for time_format in (TIME_FORMAT, SHORT_TIME_FORMAT):
        try:
            return datetime.strptime(text, time_format).replace(tzinfo=BEIJING)
        except ValueError:
            continue
    raise ValueError(f"not a Beijing time: {text!r}")
