"""The essential work of each measured request, and nothing else.

- a notification: verify the gateway's RSA signature (Alipay's RSA2 form;
  WeChat Pay v3's RSA-SHA256 headers, then AES-256-GCM decryption and JSON
  parsing of the resource) and move the payment row under a row lock: one
  transaction, SELECT ... FOR UPDATE and UPDATE;
- a checkout: INSERT the order and sign the gateway request for it;
- a payment start: INSERT the payment, sign the precreate and call the
  gateway (the sandbox, 200 ms slow in the bench) once.

The keys are the sandbox's (SANDBOX_KEYS_DIR), as the shop's are, and payment
starts call the sandbox at SANDBOX_URL: bench/web.py sets both.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.views.decorators.http import require_POST

ALIPAY_APP_ID = "2021000149600001"
WECHATPAY_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000000002025112200000000000001"
WECHATPAY_API_V3_KEY = b"SandboxApiV3KeyNotASecret0000001"
WECHATPAY_MAX_SKEW_SECONDS = 300
BEIJING = timezone(timedelta(hours=8))
CHECKOUT_AMOUNT_MINOR = 8800

_local = threading.local()


@cache
def _public_key(*parts: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(Path(os.environ["SANDBOX_KEYS_DIR"], *parts).read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@cache
def _private_key(*parts: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(os.environ["SANDBOX_KEYS_DIR"], *parts).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _verified(message: bytes, signature: str, key: rsa.RSAPublicKey) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def _sign(message: bytes) -> str:
    key = _private_key("alipay", "app_private_key.pem")
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def _canonical(params: dict[str, str], unsigned: tuple[str, ...]) -> bytes:
    return "&".join(f"{name}={params[name]}" for name in sorted(params) if name not in unsigned and params[name]).encode()


def _payment_succeed(out_trade_no: str, amount_minor: int, trade_no: str) -> bool:
    """Lock the payment row and move it pending -> succeeded; a repeat changes nothing."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT id, amount_minor, status FROM bench_baseline_payment WHERE out_trade_no = %s "
                       "FOR UPDATE", [out_trade_no])
        row = cursor.fetchone()
        if row is None or row[1] != amount_minor:
            return False
        if row[2] == "pending":
            cursor.execute("UPDATE bench_baseline_payment SET status = 'succeeded', gateway_trade_no = %s, "
                           "paid_at = now() WHERE id = %s", [trade_no, row[0]])
    return True


@require_POST
def alipay_notify(request: HttpRequest) -> HttpResponse:
    fields = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    if not _verified(_canonical(fields, ("sign", "sign_type")), fields.get("sign", ""),
                     _public_key("alipay", "alipay_public_key.pem")):
        return HttpResponseBadRequest("fail")
    try:
        amount_minor = round(float(fields["total_amount"]) * 100)
        applied = _payment_succeed(fields["out_trade_no"], amount_minor, fields["trade_no"])
    except (KeyError, ValueError):
        applied = False
    return HttpResponse("success") if applied else HttpResponseBadRequest("fail")


@require_POST
def wechatpay_notify(request: HttpRequest) -> HttpResponse:
    headers = request.headers
    timestamp, nonce = headers.get("Wechatpay-Timestamp", ""), headers.get("Wechatpay-Nonce", "")
    message = f"{timestamp}\n{nonce}\n".encode() + request.body + b"\n"
    if (headers.get("Wechatpay-Serial") != WECHATPAY_PUBLIC_KEY_ID or not timestamp.isdigit()
            or abs(time.time() - int(timestamp)) > WECHATPAY_MAX_SKEW_SECONDS
            or not _verified(message, headers.get("Wechatpay-Signature", ""),
                             _public_key("wechatpay", "platform_public_key.pem"))):
        return HttpResponse(status=401)
    try:
        resource = json.loads(request.body)["resource"]
        plain = AESGCM(WECHATPAY_API_V3_KEY).decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                                     resource["associated_data"].encode())
        transaction_object = json.loads(plain)
        applied = transaction_object["trade_state"] == "SUCCESS" and _payment_succeed(
            transaction_object["out_trade_no"], int(transaction_object["amount"]["total"]),
            transaction_object["transaction_id"])
    except (KeyError, ValueError, TypeError, InvalidTag):
        applied = False
    return HttpResponse(status=204) if applied else HttpResponse(status=400)


def _alipay_request(method: str, biz: dict[str, object], **extra: str) -> dict[str, str]:
    params = {
        "app_id": ALIPAY_APP_ID, "method": method, "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
        "timestamp": datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")), **extra,
    }  # fmt: skip
    params["sign"] = _sign(_canonical(params, ("sign",)))
    return params


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    consignee = request.POST.get("consignee_name", "")
    if not consignee:
        return HttpResponseBadRequest("consignee_name")
    order_no = secrets.token_hex(10)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_baseline_order (order_no, total_minor, consignee) VALUES (%s, %s, %s)",
                       [order_no, CHECKOUT_AMOUNT_MINOR, consignee])
    _alipay_request("alipay.trade.page.pay", {"out_trade_no": f"{order_no}P01", "total_amount": "88.00",
                                              "subject": "Bench tea", "product_code": "FAST_INSTANT_TRADE_PAY"})
    return HttpResponseRedirect(f"/orders/{order_no}/pay/")


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


@require_POST
def payment_start(request: HttpRequest, order_no: str) -> HttpResponse:
    out_trade_no = f"{order_no}P01"
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_baseline_payment (out_trade_no, amount_minor, status) "
                       "VALUES (%s, %s, 'created')", [out_trade_no, CHECKOUT_AMOUNT_MINOR])
    params = _alipay_request("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "88.00",
                                                        "subject": "Bench tea"})
    answer = _session().post(f"{os.environ['SANDBOX_URL']}/alipay/gateway.do", data=params, timeout=(5, 15))
    node = answer.json().get("alipay_trade_precreate_response", {})
    if node.get("code") != "10000":
        return HttpResponse(status=502)
    return HttpResponseRedirect(f"/payments/{out_trade_no}/qr/")
