"""WeChat Pay API v3 cryptography: the sandbox's own implementation (no shop code).

Follows docs/gateways-wechatpay.md §3 (the merchant's request signature over
`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n` and the Authorization
header), §4.2 (the answer and notification signature over
`TIMESTAMP\\nNONCE\\nBODY\\n`, raw bytes) and §5.2 (AEAD_AES_256_GCM with the
APIv3 key; ciphertext and tag base64-encoded together). SHA256withRSA is
RSASSA-PKCS1-v1_5 with SHA-256, base64 with padding. Needs no Django, so
tests may import it to cross-check.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
import string

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
AUTHORIZATION_FIELDS = frozenset({"mchid", "nonce_str", "signature", "timestamp", "serial_no"})
AEAD_ALGORITHM = "AEAD_AES_256_GCM"
# §5.2: the resource nonce is 12 ASCII characters, its bytes the GCM IV.
RESOURCE_NONCE_LENGTH = 12
RESOURCE_NONCE_ALPHABET = string.ascii_letters + string.digits
# §4.4: WeChat's deliberate bad signatures start with this.
SIGN_PROBE_PREFIX = "WECHATPAY/SIGNTEST/"

# One `key="value"` pair of the Authorization header; values never hold a
# double quote (base64, digits, hex, the mchid).
_PAIR = re.compile(r'([a-z_]+)="([^"]*)"')


class AuthorizationInvalid(ValueError):
    """The Authorization header is missing, of another scheme, or malformed."""


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(pem: bytes) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def new_nonce() -> str:
    """32 upper-case hex characters, like the official examples."""
    return secrets.token_hex(16).upper()


def new_resource_nonce() -> str:
    return "".join(secrets.choice(RESOURCE_NONCE_ALPHABET) for _ in range(RESOURCE_NONCE_LENGTH))


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """§3.1: five lines, each ending in LF; `target` is path?query as sent, `body` the exact bytes."""
    return f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def answer_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """§4.2: three lines over the raw body (an empty body gives `ts\\nnonce\\n\\n`)."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def rsa_sign(message: bytes, private_key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")


def rsa_verify(message: bytes, signature: str, public_key: rsa.RSAPublicKey) -> bool:
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True


def parse_authorization(value: str) -> dict[str, str]:
    """§3.3: `WECHATPAY2-SHA256-RSA2048 k="v",k="v",...`: exactly the five
    pairs, comma-separated without spaces, in any order."""
    scheme, _, pairs = value.partition(" ")
    if scheme != SCHEME:
        raise AuthorizationInvalid(f"认证类型不是{SCHEME}")
    fields: dict[str, str] = {}
    for part in pairs.split(","):
        match = _PAIR.fullmatch(part)
        if match is None:
            raise AuthorizationInvalid("Authorization格式错误: 应为逗号分隔、无空格的key=\"value\"")
        name, text = match.groups()
        if name not in AUTHORIZATION_FIELDS or name in fields:
            raise AuthorizationInvalid(f"Authorization中的{name}未知或重复")
        fields[name] = text
    missing = sorted(AUTHORIZATION_FIELDS - set(fields))
    if missing:
        raise AuthorizationInvalid(f"Authorization缺少{','.join(missing)}")
    return fields


def aes_gcm_encrypt(api_v3_key: bytes, nonce: str, plaintext: bytes, associated_data: str) -> str:
    """§5.2: base64(ciphertext || 16-byte tag)."""
    sealed = AESGCM(api_v3_key).encrypt(nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8"))
    return base64.b64encode(sealed).decode("ascii")


def aes_gcm_decrypt(api_v3_key: bytes, nonce: str, ciphertext: str, associated_data: str) -> bytes:
    """The inverse of aes_gcm_encrypt; raises ValueError when it does not decrypt."""
    try:
        sealed = base64.b64decode(ciphertext.encode("ascii"), validate=True)
        return AESGCM(api_v3_key).decrypt(nonce.encode("utf-8"), sealed, associated_data.encode("utf-8"))
    except (InvalidTag, binascii.Error, UnicodeEncodeError) as error:
        raise ValueError(f"the resource does not decrypt ({type(error).__name__})") from None
