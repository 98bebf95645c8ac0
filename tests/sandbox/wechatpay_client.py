"""Test-side WeChat Pay v3 pieces: our own signer, verifier and decryptor, and
the shop's adapter pointed at the sandbox.

`WechatTestClient` signs requests and verifies answers with code written
here, apart from the sandbox's `sandbox/wechatpay/signing.py` and from the
shop's adapter, so that it can also send deliberately wrong requests. The
shop's `WechatPayGateway` is the other client: the sandbox and the adapter
are independent implementations, and every test that uses both proves they
agree with each other.
"""
from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from payments.gateways.base import PaymentRequest, PayMethod, RawNotification, RefundRequest
from payments.gateways.wechatpay import WechatPayGateway
from tests.sandbox.receiver import MerchantReceiver, Received
from tests.sandbox_process import SandboxProcess

MCHID = "1900000001"
APPID = "wx8888888888888888"
SERIAL_NO = "3775B6A45ACD588826D15E583A95F5DD00000001"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000002025112200000000000001"
API_V3_KEY = "SandboxApiV3KeyNotASecret0000001"
SCHEME = "WECHATPAY2-SHA256-RSA2048"


def key_path(sandbox: SandboxProcess, owner: str, kind: str) -> Path:
    """owner "merchant" or "platform"; kind "private" or "public"."""
    return sandbox.keys_dir / "wechatpay" / f"{owner}_{kind}_key.pem"


def rsa_sign(message: bytes, private_key_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(message: bytes, signature: str, public_key_pem: bytes) -> bool:
    key = serialization.load_pem_public_key(public_key_pem)
    try:
        key.verify(base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def compact_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class WechatTestClient:
    """Signs calls to `<sandbox>/wechatpay/v3/...` the way §3 says, or wrongly on request."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        self.api_base = sandbox.url("/wechatpay")
        self.merchant_key = key_path(sandbox, "merchant", "private").read_bytes()
        self.platform_public_key = key_path(sandbox, "platform", "public").read_bytes()
        self.http = requests.Session()

    def authorization(
        self,
        method: str,
        target: str,
        body: bytes,
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
        mchid: str = MCHID,
        serial_no: str = SERIAL_NO,
        private_key_pem: bytes | None = None,
    ) -> str:
        timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
        nonce = nonce or secrets.token_hex(16).upper()
        message = f"{method}\n{target}\n{timestamp_text}\n{nonce}\n".encode() + body + b"\n"
        signature = rsa_sign(message, private_key_pem or self.merchant_key)
        return (
            f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp_text}",serial_no="{serial_no}"'
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        payload: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        query: str = "",
        url: str = "",
        sign_target: str | None = None,
        authorization: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        **signing: Any,
    ) -> requests.Response:
        """One call; `sign_target` signs another path than the one sent,
        `authorization` replaces the header ("" sends none), `signing`
        overrides its parts (timestamp, nonce, mchid, serial_no, private_key_pem)."""
        url = url or self.api_base + path + (f"?{query}" if query else "")
        data = compact_json(payload) if payload is not None else (body or b"")
        prepared = self.http.prepare_request(requests.Request(method, url, data=data or None))
        target = prepared.path_url if sign_target is None else sign_target
        if authorization is None:
            authorization = self.authorization(method, target, data, **signing)
        if authorization:
            prepared.headers["Authorization"] = authorization
        prepared.headers.update({"Accept": "application/json", "User-Agent": "sandbox-tests/1.0",
                                 "Wechatpay-Serial": PUBLIC_KEY_ID})  # fmt: skip
        if data:
            prepared.headers["Content-Type"] = "application/json"
        prepared.headers.update(headers or {})
        return self.http.send(prepared, timeout=timeout, allow_redirects=False)

    def answer_verifies(self, response: requests.Response) -> bool:
        """§4.2 over the raw body: `ts\\nnonce\\nbody\\n` with the platform public key."""
        headers = response.headers
        if headers.get("Wechatpay-Serial") != PUBLIC_KEY_ID or headers.get("Wechatpay-Signature-Type") != SCHEME:
            return False
        message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n".encode() + response.content + b"\n"
        return rsa_verify(message, headers["Wechatpay-Signature"], self.platform_public_key)


def decrypt_resource(resource: Mapping[str, str], api_v3_key: str = API_V3_KEY) -> dict:
    """§5.2, test-side: AES-256-GCM, ciphertext || tag in base64."""
    plaintext = AESGCM(api_v3_key.encode()).decrypt(
        resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]), resource["associated_data"].encode()
    )
    return json.loads(plaintext)


def notification_resource(request: Received) -> dict | None:
    """The decrypted resource of a notification; None when it does not decrypt."""
    try:
        return decrypt_resource(json.loads(request.body)["resource"])
    except (InvalidTag, ValueError, KeyError, TypeError):
        return None


def wechatpay_reference(request: Received) -> str | None:
    """The out_trade_no a notification (decrypted) or a browser return is about."""
    if request.method != "POST":
        return request.fields.get("out_trade_no")
    resource = notification_resource(request)
    return resource.get("out_trade_no") if resource else None


def wechatpay_receiver(answer=None) -> MerchantReceiver:
    if answer is None:
        return MerchantReceiver(reference=wechatpay_reference)
    return MerchantReceiver(answer, reference=wechatpay_reference)


# -- the shop's adapter ---------------------------------------------------------


def gateway_options(sandbox: SandboxProcess, **overrides: Any) -> dict[str, Any]:
    return {
        "mchid": MCHID,
        "appid": APPID,
        "api_v3_key": API_V3_KEY,
        "private_key_path": str(key_path(sandbox, "merchant", "private")),
        "cert_serial_no": SERIAL_NO,
        "public_key_path": str(key_path(sandbox, "platform", "public")),
        "public_key_id": PUBLIC_KEY_ID,
        "api_base": sandbox.url("/wechatpay"),
        "connect_timeout": 5,
        "read_timeout": 10,
        **overrides,
    }


def make_gateway(sandbox: SandboxProcess, **overrides: Any) -> WechatPayGateway:
    return WechatPayGateway(gateway_options(sandbox, **overrides))


def raw_notification(request: Received) -> RawNotification:
    return RawNotification(
        body=request.body,
        headers=request.headers,
        received_at=request.received_at,
        content_type=request.headers.get("Content-Type", ""),
    )


def payment_request(
    merchant: MerchantReceiver,
    out_trade_no: str,
    *,
    amount_minor: int = 8888,
    method: PayMethod = PayMethod.QR,
    expires_in: timedelta = timedelta(minutes=30),
    return_url: str = "",
) -> PaymentRequest:
    return PaymentRequest(
        out_trade_no=out_trade_no,
        amount_minor=amount_minor,
        currency="CNY",
        subject="龙井茶 Longjing tea",
        method=method,
        notify_url=merchant.wechatpay_notify_url,
        return_url=return_url,
        expires_at=datetime.now(UTC) + expires_in,
        client_ip="203.0.113.7",
    )


def refund_request(
    merchant: MerchantReceiver | None, out_trade_no: str, out_refund_no: str, amount_minor: int, total_minor: int = 8888
) -> RefundRequest:
    return RefundRequest(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        amount_minor=amount_minor,
        total_minor=total_minor,
        currency="CNY",
        reason="缺货 out of stock",
        notify_url=merchant.wechatpay_refund_notify_url if merchant else "",
    )
