"""Reading and checking request fields (docs/gateways-wechatpay.md §6.1, §6.2, §6.5, §7).

A missing or malformed field is 400 PARAM_ERROR with `detail` naming it
(`field`, `location`, `issue`, sometimes `value`).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sandbox import config
from sandbox.wechatpay.errors import WechatPayError, param_error

MAX_AMOUNT_FEN = 10**11


def text(
    data: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    required: bool = True,
    pattern: re.Pattern[str] | None = None,
    label: str = "",
    location: str = "body",
) -> str:
    label = label or name
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise param_error(label, "为必填字段", location=location)
        return ""
    if not isinstance(value, str):
        raise param_error(label, "必须是字符串", location=location)
    if len(value) > max_length:
        raise param_error(label, f"长度超过{max_length}", location=location)
    if pattern is not None and not pattern.fullmatch(value):
        raise param_error(label, "格式错误", value=value[:64], location=location)
    return value


def node(data: Mapping[str, Any], name: str, *, required: bool = True, label: str = "") -> dict[str, Any]:
    label = label or name
    value = data.get(name)
    if value is None:
        if required:
            raise param_error(label, "为必填字段")
        return {}
    if not isinstance(value, dict):
        raise param_error(label, "必须是JSON对象")
    return value


def fen(data: Mapping[str, Any], name: str, *, label: str) -> int:
    """An amount: a JSON integer of fen, at least 1 (never a float, string or bool)."""
    value = data.get(name)
    if value is None:
        raise param_error(label, "为必填字段")
    if isinstance(value, bool) or not isinstance(value, int):
        raise param_error(label, "必须是整数(单位: 分)", value=value if isinstance(value, str | float) else None)
    if not 1 <= value <= MAX_AMOUNT_FEN:
        raise param_error(label, "金额超出范围", value=value)
    return value


def currency(data: Mapping[str, Any], *, label: str, required: bool) -> str:
    value = text(data, "currency", max_length=16, required=required, label=label)
    if value and value != "CNY":
        raise param_error(label, "只支持CNY", value=value)
    return value or "CNY"


def notify_url(data: Mapping[str, Any], name: str, *, max_length: int, required: bool) -> str:
    """§5: an absolute http(s) URL without a query string (the sandbox
    accepts http: it serves loopback tests, where real WeChat wants https)."""
    value = text(data, name, max_length=max_length, required=required)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise param_error(name, "必须是http(s)绝对地址", value=value[:64])
    if "?" in value or "#" in value:
        raise param_error(name, "不能携带参数", value=value[:64])
    return value


def check_mchid(value: str, *, location: str) -> None:
    """The mchid a request names must be the merchant who signed it."""
    if value != config.WECHATPAY_MCHID:
        raise param_error("mchid", "与Authorization中的商户号不一致", value=value[:32], location=location)


def check_appid(value: str) -> None:
    if value != config.WECHATPAY_APPID:
        raise WechatPayError("APPID_MCHID_NOT_MATCH", f"AppID {value[:32]} 和 mch_id 不匹配")
