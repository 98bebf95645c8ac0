"""The API key's `sign` and the refund notification's `req_info` (WeChat Pay API v2).

docs/gateways-wechatpay.md §10.2: every field but `sign` whose value is not
empty, sorted by name (bytewise), joined `k=v&...` with raw values, then
`&key=<API key>`; MD5 or HMAC-SHA256 (keyed with the API key) of that,
upper-case hex. §10.5: `req_info` is base64 of AES-256-ECB under the 32
ASCII characters of the lower-case hex MD5 of the API key, PKCS#7 padded.
With `cryptography` and hashlib. Nothing here logs, and no reason carries
the key, a signature or decrypted text.
"""
from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SIGN_FIELD = "sign"
SIGN_TYPE_FIELD = "sign_type"
API_KEY_CHARS = 32
AES_BLOCK_BYTES = 16
# The API key is set by the merchant on the merchant platform: 32 letters
# and digits.
_API_KEY = re.compile(r"[0-9A-Za-z]{32}")
_NONCE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NONCE_CHARS = 32  # §10.1: nonce_str is at most 32 characters


class SignType(enum.StrEnum):
    MD5 = "MD5"
    HMAC_SHA256 = "HMAC-SHA256"


class SignatureProblem(Exception):
    """Fields whose `sign` does not prove they came from the key holder; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RefundInfoProblem(Exception):
    """A `req_info` that does not decrypt; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_api_key(value: object) -> str:
    """The API v2 key as configured; ValueError unless it is 32 letters or digits."""
    if not isinstance(value, str) or not _API_KEY.fullmatch(value):
        raise ValueError(f"the API v2 key must be {API_KEY_CHARS} letters or digits")
    return value


def sign_type_of(value: str) -> SignType:
    """`sign_type` as sent (absent or empty: MD5, §10.2); ValueError for anything else."""
    if value == "":
        return SignType.MD5
    try:
        return SignType(value)
    except ValueError:
        raise ValueError(f"sign_type {value[:16]!r} is neither MD5 nor HMAC-SHA256") from None


def string_to_sign(fields: Mapping[str, str], api_key: str) -> bytes:
    """§10.2 steps 1-4: stringSignTemp, as UTF-8 bytes."""
    pairs = sorted(
        ((name, value) for name, value in fields.items() if name != SIGN_FIELD and value != ""),
        key=lambda pair: pair[0].encode("utf-8"),
    )
    text = "&".join(f"{name}={value}" for name, value in pairs)
    return f"{text}&key={api_key}".encode()


def make_sign(fields: Mapping[str, str], api_key: str, sign_type: SignType) -> str:
    """§10.2 step 5: the `sign` of these fields, upper-case hex."""
    message = string_to_sign(fields, api_key)
    if sign_type is SignType.HMAC_SHA256:
        return hmac.new(api_key.encode("ascii"), message, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(message).hexdigest().upper()


def check_signed(fields: Mapping[str, str], api_key: str, sign_type: SignType) -> None:
    """Raise SignatureProblem unless `fields["sign"]` is theirs (constant-time, §10.2 step 7)."""
    given = fields.get(SIGN_FIELD, "")
    if not given:
        raise SignatureProblem("the sign field is missing")
    expected = make_sign(fields, api_key, sign_type)
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8")):
        raise SignatureProblem(f"the {sign_type} sign does not verify")


def new_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(NONCE_CHARS))


# -- req_info (§10.5) ---------------------------------------------------------


def refund_info_key(api_key: str) -> bytes:
    """The AES-256 key: the lower-case hex MD5 of the API key, as its 32 ASCII bytes."""
    return hashlib.md5(api_key.encode("ascii")).hexdigest().lower().encode("ascii")


def decrypt_refund_info(req_info: str, api_key: str) -> bytes:
    """The plaintext of `req_info` (the `<root>...</root>` XML); RefundInfoProblem otherwise.

    The PKCS#7 padding is checked in full: a wrong key or a tampered
    ciphertext almost never ends in valid padding.
    """
    try:
        sealed = base64.b64decode(req_info.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise RefundInfoProblem("req_info is not base64") from None
    if not sealed or len(sealed) % AES_BLOCK_BYTES:
        raise RefundInfoProblem("req_info is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(refund_info_key(api_key)), modes.ECB()).decryptor()
    padded = decryptor.update(sealed) + decryptor.finalize()
    unpadder = padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise RefundInfoProblem(
            "req_info does not decrypt to PKCS#7-padded data (wrong API key, or tampered)"
        ) from None
