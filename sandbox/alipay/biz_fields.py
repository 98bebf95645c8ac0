"""Reading and checking biz_content fields (docs/gateways-alipay-unionpay.md A7, A12).

A missing or malformed business field is answered with
`40004 ACQ.INVALID_PARAMETER`, naming the field in sub_msg.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sandbox.alipay.errors import invalid_parameter
from sandbox.alipay.formats import BEIJING, fen_from_yuan, parse_beijing
from sandbox.models import Trade
from sandbox.services import trade_find

# timeout_express: integer minutes, hours or days, or "1c" (midnight today).
TIMEOUT_EXPRESS = re.compile(r"(\d+)([mhd])")
TIMEOUT_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def biz_text(biz: dict[str, Any], name: str, *, max_length: int = 64, required: bool = True) -> str:
    value = biz.get(name)
    if value is None or value == "":
        if required:
            raise invalid_parameter(f"缺少{name}")
        return ""
    if not isinstance(value, str):
        raise invalid_parameter(f"{name}必须是字符串")
    if len(value) > max_length:
        raise invalid_parameter(f"{name}超过{max_length}个字符")
    return value


def biz_amount(biz: dict[str, Any], name: str) -> int:
    """A yuan amount as fen; JSON numbers arrive as their text (gateway.py)."""
    text = biz_text(biz, name, max_length=16)
    try:
        return fen_from_yuan(text)
    except ValueError:
        raise invalid_parameter(f"{name}金额格式错误: {text}") from None


def biz_expiry(biz: dict[str, Any], now: datetime) -> datetime | None:
    """time_expire (absolute) or timeout_express (relative to `now`), if either is given."""
    time_expire = biz_text(biz, "time_expire", max_length=32, required=False)
    if time_expire:
        try:
            return parse_beijing(time_expire)
        except ValueError:
            raise invalid_parameter(f"time_expire格式错误: {time_expire}") from None
    timeout_express = biz_text(biz, "timeout_express", max_length=8, required=False)
    if not timeout_express:
        return None
    if timeout_express == "1c":
        today = now.astimezone(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        return today + timedelta(days=1)
    match = TIMEOUT_EXPRESS.fullmatch(timeout_express)
    if not match:
        raise invalid_parameter(f"timeout_express格式错误: {timeout_express}")
    return now + timedelta(**{TIMEOUT_UNITS[match.group(2)]: int(match.group(1))})


def biz_trade(biz: dict[str, Any]) -> Trade | None:
    """The trade named by trade_no (which wins) or out_trade_no."""
    trade_no = biz_text(biz, "trade_no", required=False)
    out_trade_no = biz_text(biz, "out_trade_no", required=False)
    if not trade_no and not out_trade_no:
        raise invalid_parameter("out_trade_no和trade_no不能同时为空")
    return trade_find("alipay", out_trade_no=out_trade_no, trade_no=trade_no)


def query_options(biz: dict[str, Any]) -> set[str]:
    options = biz.get("query_options") or []
    return {option for option in options if isinstance(option, str)} if isinstance(options, list) else set()
