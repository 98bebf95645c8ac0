"""ACP 5.1.0 messages as UnionPay writes and reads them (docs/gateways-alipay-unionpay.md B3-B5, B12, B16).

The sandbox's own implementation, sharing nothing with the shop's adapter:
signing text `name=value&...` sorted by name without `signature`, SHA-256 as
64 lowercase hex characters, SHA256withRSA over those characters. Answers
are raw `key=value&...` bodies (never URL-encoded) with signPubKeyCert (PEM,
CRLF line breaks) and the signature last.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
PROVIDER = "unionpay"
VERSION = "5.1.0"
SIGN_METHOD = "01"
CURRENCY_CODE = "156"

# B12 codes the sandbox answers with, and their messages.
MESSAGES = {
    "00": "成功[0000000]",
    "01": "交易失败[1000000]",
    "03": "交易通讯超时，请发起查询交易[0000003]",
    "05": "交易已受理，请稍后查询交易结果[0000005]",
    "06": "系统繁忙，请稍后再试[0000006]",
    "10": "报文格式错误[2010010]",
    "11": "验证签名失败[2011011]",
    "12": "重复交易[2012012]",
    "13": "报文交易要素缺失[2013013]",
    "31": "商户状态不正确[2031031]",
    "34": "查无此交易[2034034]",
    "35": "原交易不存在或状态不正确[2035035]",
    "36": "交易金额超过原交易金额[2036036]",
    "45": "原交易已被退货或撤销[2045045]",
    "98": "文件不存在[2098098]",
    "99": "通用错误[2099099]",
}


def message(code: str) -> str:
    return MESSAGES.get(code, f"错误[{code}]")


def signing_text(fields: Mapping[str, str]) -> str:
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != "signature")


def _digest_text(fields: Mapping[str, str]) -> bytes:
    return hashlib.sha256(signing_text(fields).encode("utf-8")).hexdigest().encode("ascii")


def sign(fields: Mapping[str, str], key: rsa.RSAPrivateKey) -> str:
    signature = key.sign(_digest_text(fields), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(fields: Mapping[str, str], key: rsa.RSAPublicKey) -> bool:
    try:
        signature = base64.b64decode(fields.get("signature", ""), validate=True)
        key.verify(signature, _digest_text(fields), padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def raw_body(fields: Mapping[str, str]) -> str:
    """B3/B16: unencoded `key=value&...`, the certificate and the signature last."""
    last = ("signPubKeyCert", "signature")
    ordered = [name for name in sorted(fields) if name not in last] + [name for name in last if name in fields]
    return "&".join(f"{name}={fields[name]}" for name in ordered)


def txn_time(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def short_time(moment: datetime) -> str:
    """traceTime / ZM txnTime: `MMDDhhmmss`, Beijing."""
    return moment.astimezone(BEIJING).strftime("%m%d%H%M%S")


def parse_txn_time(text: str) -> datetime:
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)


def settle_date(moment: datetime) -> str:
    """The clearing day of a moment (B11: 23:00 to 23:00), as `MMDD`."""
    return (moment.astimezone(BEIJING) + timedelta(hours=1)).strftime("%m%d")


def new_query_id(moment: datetime) -> str:
    """21 digits (B13): the time, then random digits."""
    return moment.astimezone(BEIJING).strftime("%y%m%d%H%M%S") + f"{secrets.randbelow(10**9):09d}"


def new_trace_no() -> str:
    return f"{secrets.randbelow(10**6):06d}"


def fen_text(value: str) -> int:
    """A txnAmt as sent: digits, no sign, no leading zero; ValueError otherwise."""
    if not value.isascii() or not value.isdigit() or (len(value) > 1 and value[0] == "0") or value == "0":
        raise ValueError(value)
    return int(value)
