"""How WeChat Pay writes times, amounts and ids (docs/gateways-wechatpay.md §1, §6.9, §7).

API amounts are integer fen; bills write yuan strings (fees with five
decimals). Times are RFC 3339 with WeChat's `+08:00`; bills write Beijing
time as `yyyy-MM-dd HH:mm:ss`.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta, timezone
from decimal import Decimal

# China has no daylight saving: a fixed offset needs no tz database.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%S+08:00"
BILL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# §7: 6-32 characters; newer pages allow `|` and `*` besides `_` and `-`.
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
# §6.5: up to 64 characters of digits, letters and `_ - | * @`.
OUT_REFUND_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(RFC3339_FORMAT)


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 date-time with an offset; ValueError otherwise."""
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def bill_time(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(BILL_TIME_FORMAT)


def yuan_text(fen: int) -> str:
    """8888 -> "88.88"; -150 -> "-1.50"."""
    return str(Decimal(fen).scaleb(-2).quantize(Decimal("0.01")))


def fee_text(hundred_thousandths: int) -> str:
    """A fee in units of 0.00001 yuan -> five decimals: 53328 -> "0.53328"."""
    return str(Decimal(hundred_thousandths).scaleb(-5).quantize(Decimal("0.00001")))


def _digits(count: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(count))


def new_transaction_id(now: datetime) -> str:
    """28 digits like WeChat's: 4200 + 6 digits + the Beijing date + 10 digits."""
    return "4200" + _digits(6) + now.astimezone(BEIJING).strftime("%Y%m%d") + _digits(10)


def new_refund_id(now: datetime) -> str:
    """29 digits like WeChat's: 503 + the Beijing date + 18 digits."""
    return "503" + now.astimezone(BEIJING).strftime("%Y%m%d") + _digits(18)


def new_prepay_id(now: datetime) -> str:
    """`wx` + the Beijing time to the second + 20 hex digits."""
    return "wx" + now.astimezone(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(13)


def new_notification_id() -> str:
    """`EV-` + 32 hex digits (35 characters, within string(36))."""
    return "EV-" + secrets.token_hex(16)


def new_request_id() -> str:
    return secrets.token_hex(20).upper() + "-0"
