"""Alipay RSA2 signatures: the sandbox's own implementation (no shop code).

Follows docs/gateways-alipay-unionpay.md A4 for requests (every parameter but
`sign`, so `sign_type` is signed), A8/A9 for notifications and returns
(`sign` and `sign_type` both left out) and A5 for responses (the exact node
text). In every case: empty values dropped, names sorted, raw values joined
as `name=value` with `&`, UTF-8, SHA256withRSA (PKCS#1 v1.5), base64.
"""
from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

REQUEST_UNSIGNED = frozenset({"sign"})
NOTIFICATION_UNSIGNED = frozenset({"sign", "sign_type"})


def canonical_string(params: Mapping[str, str], *, unsigned: frozenset[str]) -> str:
    """The text that is signed: sorted `name=value` pairs, raw values, no empties."""
    pairs = sorted((name, value) for name, value in params.items() if name not in unsigned and value)
    return "&".join(f"{name}={value}" for name, value in pairs)


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load a PKCS#1 or PKCS#8 PEM private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    """Load a SubjectPublicKeyInfo PEM public key."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def rsa2_sign(message: str, private_key: rsa.RSAPrivateKey) -> str:
    signature = private_key.sign(message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def rsa2_verify(message: str, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw_signature, message.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def sign_params(params: Mapping[str, str], private_key: rsa.RSAPrivateKey, *, unsigned: frozenset[str]) -> str:
    return rsa2_sign(canonical_string(params, unsigned=unsigned), private_key)
