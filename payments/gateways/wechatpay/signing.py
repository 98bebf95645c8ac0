"""Keys, request signatures, answer verification and AES-GCM resources of WeChat Pay API v3.

Follows docs/gateways-wechatpay.md §3 (the Authorization header over
`METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`), §4 (the `Wechatpay-*`
headers over `ts\\nnonce\\nbody\\n`, freshness, the key chosen by serial) and
§5.2 (AEAD_AES_256_GCM with the APIv3 key), with `cryptography`. Nothing
here logs, and no error message carries key material, a signature or
decrypted text.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
MIN_RSA_BITS = 2048

HEADER_TIMESTAMP = "Wechatpay-Timestamp"
HEADER_NONCE = "Wechatpay-Nonce"
HEADER_SIGNATURE = "Wechatpay-Signature"
HEADER_SERIAL = "Wechatpay-Serial"
HEADER_SIGNATURE_TYPE = "Wechatpay-Signature-Type"
SIGNED_HEADERS = (HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE, HEADER_SERIAL)

# §4.4: the official SDKs refuse |now - timestamp| >= 5 minutes.
FRESHNESS = timedelta(seconds=300)

AEAD_ALGORITHM = "AEAD_AES_256_GCM"
API_V3_KEY_BYTES = 32
GCM_TAG_BYTES = 16

_TIMESTAMP = re.compile(r"[0-9]{1,10}")
_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


class SignatureProblem(Exception):
    """A signed answer or notification that must not be read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResourceProblem(Exception):
    """An encrypted resource that does not decrypt; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- keys ---------------------------------------------------------------------


def load_private_key(data: bytes) -> rsa.RSAPrivateKey:
    """The merchant API key `apiclient_key.pem`: unencrypted RSA PEM, PKCS#8 or PKCS#1."""
    try:
        key = serialization.load_pem_private_key(data.strip() + b"\n", password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the merchant private key is not an RSA key")
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"the merchant private key has {key.key_size} bits, fewer than {MIN_RSA_BITS}")
    return key


def load_public_key(data: bytes) -> rsa.RSAPublicKey:
    """The WeChat Pay public key (`pub_key.pem`, SubjectPublicKeyInfo), or a certificate's key."""
    data = data.strip() + b"\n"
    key: PublicKeyTypes
    try:
        if data.startswith(_PEM_CERTIFICATE):
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the WeChat Pay public key is not an RSA key")
    return key


def check_api_v3_key(value: object) -> bytes:
    """The APIv3 key as the 32 bytes AES-256 uses directly (§2, §5.2 step 1)."""
    if not isinstance(value, str) or not value.isascii():
        raise ValueError("the APIv3 key must be 32 ASCII characters")
    key = value.encode("ascii")
    if len(key) != API_V3_KEY_BYTES:
        raise ValueError(f"the APIv3 key must be exactly {API_V3_KEY_BYTES} bytes, not {len(key)}")
    return key


# -- request signatures (§3) --------------------------------------------------


def new_nonce() -> str:
    """32 upper-case hex characters, like the official examples."""
    return secrets.token_hex(16).upper()


def request_message(method: str, canonical_url: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The five lines of §3.1, each ending in LF; `body` is the exact bytes sent (b"" for GET)."""
    head = f"{method.upper()}\n{canonical_url}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def sign(private_key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5); standard base64, padded, one line (§3.2)."""
    signature = private_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def authorization(*, mchid: str, nonce: str, signature: str, timestamp: str, serial_no: str) -> str:
    """The Authorization header value of §3.3 (pairs comma-separated, no spaces)."""
    return (
        f'{SCHEME} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


# -- answer and notification verification (§4) --------------------------------


def verified_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three lines of §4.2 over the raw body bytes (an empty body gives `ts\\nnonce\\n\\n`)."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def verify(public_key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
        public_key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True


def check_signed(
    header: Callable[[str], str],
    body: bytes,
    *,
    public_key: rsa.RSAPublicKey,
    public_key_id: str,
    now: datetime,
) -> None:
    """Check a signed answer or notification in the order of §9; SignatureProblem if it fails.

    `header(name)` reads a header case-insensitively ("" when absent). The
    order: the four headers present, the signature type, freshness against
    `now`, the serial (public-key mode knows one: ours), then the RSA
    signature. A `WECHATPAY/SIGNTEST/` probe fails the last step like any
    other bad signature (§4.4).
    """
    values = {name: header(name) for name in SIGNED_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise SignatureProblem(f"missing header {', '.join(missing)}")
    signature_type = header(HEADER_SIGNATURE_TYPE)
    if signature_type and signature_type != SCHEME:
        raise SignatureProblem(f"{HEADER_SIGNATURE_TYPE} is not {SCHEME}")
    timestamp = values[HEADER_TIMESTAMP]
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SignatureProblem(f"{HEADER_TIMESTAMP} is not Unix seconds")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    if abs(now - signed_at) >= FRESHNESS:
        raise SignatureProblem(f"{HEADER_TIMESTAMP} {timestamp} is more than 300 s from {now.isoformat()}")
    if values[HEADER_SERIAL] != public_key_id:
        # §4.3 step 4: an unknown key is a failed verification. Platform
        # certificate mode is not configured, so ours is the only serial.
        raise SignatureProblem(f"unknown {HEADER_SERIAL} {values[HEADER_SERIAL][:64]!r}")
    message = verified_message(timestamp, values[HEADER_NONCE], body)
    if not verify(public_key, message, values[HEADER_SIGNATURE]):
        raise SignatureProblem("the signature does not verify")


# -- encrypted resources (§5.2) -----------------------------------------------


def decrypt_resource(api_v3_key: bytes, resource: Mapping[str, Any]) -> bytes:
    """The plaintext of an AEAD_AES_256_GCM resource; ResourceProblem otherwise.

    `ciphertext` is base64 of ciphertext || 16-byte tag, `nonce` a string
    whose UTF-8 bytes are the IV, `associated_data` (may be empty) the AAD.
    """
    algorithm = resource.get("algorithm")
    if algorithm != AEAD_ALGORITHM:
        raise ResourceProblem(f"resource.algorithm is not {AEAD_ALGORITHM}")
    ciphertext = resource.get("ciphertext")
    nonce = resource.get("nonce")
    associated_data = resource.get("associated_data", "")
    if associated_data is None:
        associated_data = ""
    if not isinstance(ciphertext, str) or not ciphertext:
        raise ResourceProblem("resource.ciphertext is missing")
    if not isinstance(nonce, str) or not nonce:
        raise ResourceProblem("resource.nonce is missing")
    if not isinstance(associated_data, str):
        raise ResourceProblem("resource.associated_data is not a string")
    try:
        sealed = base64.b64decode(ciphertext.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ResourceProblem("resource.ciphertext is not base64") from None
    if len(sealed) < GCM_TAG_BYTES:
        raise ResourceProblem("resource.ciphertext is shorter than a GCM tag")
    try:
        return AESGCM(api_v3_key).decrypt(nonce.encode("utf-8"), sealed, associated_data.encode("utf-8"))
    except InvalidTag:
        raise ResourceProblem(
            "the resource does not decrypt (InvalidTag: wrong APIv3 key, nonce or associated data, or tampered)"
        ) from None
    except (ValueError, UnicodeEncodeError) as exc:
        # AESGCM refuses nonces outside 8-128 bytes with a ValueError.
        raise ResourceProblem(f"the resource cannot be decrypted ({type(exc).__name__})") from None
