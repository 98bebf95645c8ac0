"""Test-side Alipay clients: our own signer and python-alipay-sdk.

`AlipayTestClient` signs and verifies with code written here, apart from the
sandbox's `sandbox/alipay/signing.py` and from the shop's adapter, so a
mistake made in one of them shows up as a disagreement. `sdk_client` wraps
python-alipay-sdk (fzlee/alipay), an implementation that is not ours at all.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
from alipay import AliPay
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

APP_ID = "2021000149600001"
SELLER_ID = "2088721000000001"
BEIJING = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def beijing_now_text(shift: timedelta = timedelta(0)) -> str:
    return (datetime.now(BEIJING) + shift).strftime(TIME_FORMAT)


def signed_text(params: dict[str, str], *, without: tuple[str, ...]) -> str:
    """A4 (requests: without=("sign",)) and A8/A9 (without=("sign", "sign_type"))."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params) if name not in without and params[name])


def rsa2_sign(text: str, private_key_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(text: str, signature: str, public_key_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem)
    try:
        key.verify(base64.b64decode(signature), text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def node_text(raw: str, node_key: str) -> str:
    """The raw text of `"node_key": {...}` in a response, found by counting
    braces outside string literals (A5); never re-serialised."""
    start = raw.index("{", raw.index(f'"{node_key}"') + len(node_key) + 2)
    depth, in_string, escaped = 0, False, False
    for position in range(start, len(raw)):
        char = raw[position]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return raw[start : position + 1]
    raise ValueError(f"unterminated {node_key} node")


class ResponseSignatureInvalid(AssertionError):
    pass


@dataclass(frozen=True)
class AlipayAnswer:
    node_key: str
    node: dict[str, Any]
    raw: str
    node_text: str

    @property
    def code(self) -> str:
        return self.node["code"]

    @property
    def sub_code(self) -> str:
        return self.node.get("sub_code", "")


class AlipayTestClient:
    """Signs requests with the merchant key, verifies answers with the gateway key."""

    def __init__(self, gateway_url: str, keys_dir: Path, *, app_id: str = APP_ID) -> None:
        self.gateway_url = gateway_url
        self.app_id = app_id
        self.app_private_key = (Path(keys_dir) / "alipay" / "app_private_key.pem").read_bytes()
        self.alipay_public_key = (Path(keys_dir) / "alipay" / "alipay_public_key.pem").read_bytes()

    def signed_params(self, method: str, biz: dict[str, Any] | None, **common: str) -> dict[str, str]:
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_now_text(),
            "version": "1.0",
        }
        if biz is not None:
            # Serialised once: this exact text is signed and sent.
            params["biz_content"] = json.dumps(biz, ensure_ascii=False, separators=(",", ":"))
        params.update(common)
        params = {name: value for name, value in params.items() if value is not None}
        params["sign"] = rsa2_sign(signed_text(params, without=("sign",)), self.app_private_key)
        return params

    def send(self, params: dict[str, str], *, transport: str = "form", timeout: float = 10.0) -> requests.Response:
        """transport: "query" (all in the URL, GET), "form" (all in the body),
        "split" (common parameters in the URL, biz_content in the body)."""
        if transport == "query":
            return requests.get(self.gateway_url, params=params, timeout=timeout, allow_redirects=False)
        if transport == "form":
            return requests.post(self.gateway_url, data=params, timeout=timeout, allow_redirects=False)
        body = {"biz_content": params["biz_content"]}
        query = {name: value for name, value in params.items() if name != "biz_content"}
        return requests.post(self.gateway_url, params=query, data=body, timeout=timeout, allow_redirects=False)

    def answer(self, method: str, response: requests.Response) -> AlipayAnswer:
        """Parse and verify a signed JSON answer (method node or error_response)."""
        raw = response.content.decode("utf-8")
        envelope = json.loads(raw)
        node_key = method.replace(".", "_") + "_response"
        if node_key not in envelope:
            node_key = "error_response"
        text = node_text(raw, node_key)
        if not rsa2_verify(text, envelope["sign"], self.alipay_public_key):
            raise ResponseSignatureInvalid(f"bad response signature over {text!r}")
        return AlipayAnswer(node_key, json.loads(text), raw, text)

    def call(
        self, method: str, biz: dict[str, Any] | None, *, transport: str = "form", timeout: float = 10.0, **common: str
    ) -> AlipayAnswer:
        params = self.signed_params(method, biz, **common)
        return self.answer(method, self.send(params, transport=transport, timeout=timeout))

    def verify_callback(self, params: dict[str, str]) -> bool:
        """A notification's or a return's signature (A8/A9)."""
        return rsa2_verify(signed_text(params, without=("sign", "sign_type")), params["sign"], self.alipay_public_key)

    def page_pay_url(self, biz: dict[str, Any], *, method: str = "alipay.trade.page.pay", **common: str) -> str:
        return self.gateway_url + "?" + urlencode(self.signed_params(method, biz, **common))


class BeijingClockAliPay(AliPay):
    """python-alipay-sdk stamps requests with the local clock; Alipay (and the
    sandbox) expect Beijing time, and these machines run on UTC."""

    def build_body(self, *args: Any, **kwargs: Any) -> dict:
        data = super().build_body(*args, **kwargs)
        data["timestamp"] = beijing_now_text()
        return data


def sdk_client(gateway_url: str, keys_dir: Path, *, notify_url: str | None = None) -> AliPay:
    client = BeijingClockAliPay(
        appid=APP_ID,
        app_notify_url=notify_url,
        app_private_key_string=(Path(keys_dir) / "alipay" / "app_private_key.pem").read_text(),
        alipay_public_key_string=(Path(keys_dir) / "alipay" / "alipay_public_key.pem").read_text(),
        sign_type="RSA2",
    )
    # The SDK knows only Alipay's own hosts; point it at the sandbox.
    client._gateway = gateway_url
    return client


def sdk_verifies(client: AliPay, params: dict[str, str]) -> bool:
    """python-alipay-sdk's verdict on a notification or return (it drops sign_type itself)."""
    data = dict(params)
    signature = data.pop("sign")
    return client.verify(data, signature)
