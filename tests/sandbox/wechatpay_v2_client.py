"""Test-side WeChat Pay API v2 pieces: our own signer and XML, apart from the sandbox and the shop.

`post()` signs a v2 call with hashlib and sends it with plain `requests`,
so a test can send deliberately wrong calls (no sign, another key, no
client certificate, another CA's certificate). The shop's
`WechatPayV2Gateway` pointed at the sandbox is the other client.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path

import requests

from payments.gateways.wechatpay_v2 import WechatPayV2Gateway
from tests.conftest import sandbox_wechatpay_v2_options
from tests.sandbox_process import SandboxProcess

MCHID = "1900000001"
APPID = "wx8888888888888888"
API_KEY = "SandboxApiV2KeyNotASecret0000002"
EXACT_ACK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


def sign(fields: Mapping[str, str], key: str = API_KEY, sign_type: str = "MD5") -> str:
    text = "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != "sign" and fields[name])
    message = f"{text}&key={key}".encode()
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), message, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(message).hexdigest().upper()


def xml_of(fields: Mapping[str, str]) -> bytes:
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>").encode()


def fields_of(body: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ElementTree.fromstring(body)}


def signed_body(fields: Mapping[str, str], *, key: str = API_KEY, sign_type: str = "MD5",
                with_sign: bool = True) -> bytes:  # fmt: skip
    message = {"appid": APPID, "mch_id": MCHID, "nonce_str": secrets.token_hex(16), **fields}
    if sign_type != "MD5":
        message["sign_type"] = sign_type
    if with_sign:
        message["sign"] = sign(message, key, sign_type)
    return xml_of(message)


def https_base(sandbox: SandboxProcess) -> str:
    return sandbox.control("GET", "config")["wechatpay_v2"]["api_base"]


def tls_file(sandbox: SandboxProcess, name: str) -> Path:
    return sandbox.keys_dir / "wechatpay" / name


def post(sandbox: SandboxProcess, path: str, body: bytes, *, secure_base: bool = True,
         cert: tuple[str, str] | None = None, verify: str | bool | None = None) -> requests.Response:  # fmt: skip
    """POST to the sandbox's v2 API: over its HTTPS listener (verified with its CA) or plain HTTP."""
    base = https_base(sandbox) if secure_base else sandbox.url("/wechatpay")
    if verify is None:
        verify = str(tls_file(sandbox, "sandbox_ca.pem"))
    return requests.post(f"{base}{path}", data=body, cert=cert, verify=verify, timeout=10,
                         headers={"Content-Type": "text/xml"})  # fmt: skip


def client_cert(sandbox: SandboxProcess) -> tuple[str, str]:
    return str(tls_file(sandbox, "apiclient_cert.pem")), str(tls_file(sandbox, "apiclient_key.pem"))


def make_v2_gateway(sandbox: SandboxProcess, **overrides: object) -> WechatPayV2Gateway:
    return WechatPayV2Gateway(sandbox_wechatpay_v2_options(sandbox, **overrides))
