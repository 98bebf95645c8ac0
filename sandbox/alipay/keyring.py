"""The Alipay keys the sandbox process uses, loaded once from the keys directory.

The merchant's public key verifies requests; the gateway's private key signs
responses, notifications and return parameters (layout: sandbox/keys.py).
"""
from __future__ import annotations

from functools import cache

from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from sandbox.alipay.signing import load_private_key, load_public_key
from sandbox.keys import private_key_path, public_key_path


@cache
def merchant_public_key() -> rsa.RSAPublicKey:
    return load_public_key(public_key_path(settings.SANDBOX_KEYS_DIR, "alipay", "app").read_bytes())


@cache
def gateway_private_key() -> rsa.RSAPrivateKey:
    return load_private_key(private_key_path(settings.SANDBOX_KEYS_DIR, "alipay", "alipay").read_bytes())


@cache
def forger_private_key() -> rsa.RSAPrivateKey:
    """A key nobody trusts: forged notifications are signed with it."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
