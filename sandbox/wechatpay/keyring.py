"""The WeChat Pay keys the sandbox process uses, loaded once from the keys directory.

The merchant's public key verifies requests; the platform private key (the
"WeChat Pay public key" pair, id config.WECHATPAY_PUBLIC_KEY_ID) signs
answers and notifications (layout: sandbox/keys.py). The APIv3 key is a
fixed identity (sandbox/config.py).
"""
from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from sandbox import config
from sandbox.keys import private_key_path, public_key_path
from sandbox.wechatpay.signing import load_private_key, load_public_key

PROVIDER = "wechatpay"


@cache
def merchant_public_key() -> rsa.RSAPublicKey:
    return load_public_key(public_key_path(settings.SANDBOX_KEYS_DIR, PROVIDER, "merchant").read_bytes())


@cache
def platform_private_key() -> rsa.RSAPrivateKey:
    return load_private_key(private_key_path(settings.SANDBOX_KEYS_DIR, PROVIDER, "platform").read_bytes())


@cache
def forger_private_key() -> rsa.RSAPrivateKey:
    """A key nobody trusts: forged notifications are signed with it."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def api_v3_key() -> bytes:
    return config.WECHATPAY_API_V3_KEY.encode("ascii")
