"""RSA2 (SHA256withRSA, PKCS#1 v1.5) keys, signatures and signed texts of Alipay OpenAPI v2.

Follows docs/gateways-alipay-unionpay.md A4 (request signing), A5 (response
verification over the raw node text) and A8 (notification verification),
with `cryptography`. Nothing here logs, and no error message carries key
material or a signature.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

SIGN_TYPE = "RSA2"
SIGN_CHARSET = "utf-8"
ERROR_NODE = "error_response"

_UTF8_BOM = b"\xef\xbb\xbf"
_PEM_BEGIN = b"-----BEGIN"


# -- keys ---------------------------------------------------------------------


def _key_der_or_pem(data: bytes) -> tuple[bytes, bool]:
    """The key bytes and whether they are PEM; bare base64 bodies become DER."""
    data = data.removeprefix(_UTF8_BOM).strip()
    if not data:
        raise ValueError("the key file is empty")
    if data.startswith(_PEM_BEGIN):
        # A PEM saved without its final newline must still load.
        return data + b"\n", True
    # The Alipay console shows keys as a bare base64 body (PKCS#1 or PKCS#8
    # DER for the app key, SubjectPublicKeyInfo for the Alipay key): that
    # body is the DER that PEM headers would wrap.
    try:
        return base64.b64decode(b"".join(data.split()), validate=True), False
    except binascii.Error:
        raise ValueError("neither PEM nor a base64 key body") from None


def load_private_key(data: bytes) -> rsa.RSAPrivateKey:
    """The app private key: PEM or bare base64, PKCS#1 or PKCS#8, unencrypted RSA."""
    body, is_pem = _key_der_or_pem(data)
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = loader(body, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an unencrypted private key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the app private key is not an RSA key")
    return key


def load_public_key(data: bytes) -> rsa.RSAPublicKey:
    """The Alipay public key: PEM or bare base64, SubjectPublicKeyInfo (or PKCS#1) RSA."""
    body, is_pem = _key_der_or_pem(data)
    loader = serialization.load_pem_public_key if is_pem else serialization.load_der_public_key
    try:
        key = loader(body)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a public key ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the Alipay public key is not an RSA key")
    return key


# -- signatures ---------------------------------------------------------------


def sign(private_key: rsa.RSAPrivateKey, message: str) -> str:
    """SHA256withRSA over the UTF-8 message; standard base64, padded, one line."""
    signature = private_key.sign(message.encode(SIGN_CHARSET), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode("ascii")


def verify(public_key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, message.encode(SIGN_CHARSET), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _canonical(params: Mapping[str, str], excluded: frozenset[str]) -> str:
    # Raw values, no URL-encoding; empty values are not part of the text.
    items = sorted((name, value) for name, value in params.items() if name not in excluded and value != "")
    return "&".join(f"{name}={value}" for name, value in items)


def request_signing_text(params: Mapping[str, str]) -> str:
    """A4: every sent parameter but `sign` (`sign_type` stays), non-empty, sorted."""
    return _canonical(params, frozenset({"sign"}))


def callback_signing_text(params: Mapping[str, str]) -> str:
    """A8/A9: notification and return parameters less `sign` AND `sign_type` (rsaCheckV1)."""
    return _canonical(params, frozenset({"sign", "sign_type"}))


# -- response envelopes -------------------------------------------------------


@dataclass(frozen=True)
class ResponseEnvelope:
    """The signed part of a gateway answer, as raw text."""

    node_name: str
    node_text: str  # the exact substring of the answer that Alipay signed
    sign: str  # "" when the answer carries none


def response_node_name(method: str) -> str:
    """`alipay.trade.query` -> `alipay_trade_query_response`."""
    return method.replace(".", "_") + "_response"


def split_response(text: str, method: str) -> ResponseEnvelope:
    """Find the `<method>_response` (else `error_response`) node's raw text and the sign.

    Raises ValueError when the text is not one JSON object holding such a
    node as an object.
    """
    members = _top_level_members(text)
    for name in (response_node_name(method), ERROR_NODE):
        if name in members:
            start, end = members[name]
            if text[start] != "{":
                raise ValueError(f"{name} is not an object")
            sign = ""
            if "sign" in members:
                value = json.loads(text[slice(*members["sign"])])
                if not isinstance(value, str):
                    raise ValueError("sign is not a string")
                sign = value
            return ResponseEnvelope(node_name=name, node_text=text[start:end], sign=sign)
    raise ValueError("no response node")


def _top_level_members(text: str) -> dict[str, tuple[int, int]]:
    """Name -> (start, end) of each member value of the outermost JSON object, as raw spans.

    Locates values by matching brackets outside string literals (escapes
    honoured) rather than by parsing, so that the signed bytes survive as
    sent: Alipay writes `/` as `\\/`, and key order and spacing are signed.
    """
    members: dict[str, tuple[int, int]] = {}
    i = _skip_space(text, 0)
    if i >= len(text) or text[i] != "{":
        raise ValueError("not a JSON object")
    i = _skip_space(text, i + 1)
    if i < len(text) and text[i] == "}":
        return members
    while True:
        if i >= len(text) or text[i] != '"':
            raise ValueError("expected a member name")
        name_end = _string_end(text, i)
        name = json.loads(text[i:name_end])
        i = _skip_space(text, name_end)
        if i >= len(text) or text[i] != ":":
            raise ValueError("expected ':'")
        start = _skip_space(text, i + 1)
        end = _value_end(text, start)
        if name in members:
            # Two nodes of one name: which one was signed is ambiguous.
            raise ValueError(f"duplicate member {name!r}")
        members[name] = (start, end)
        i = _skip_space(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_space(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            if _skip_space(text, i + 1) != len(text):
                raise ValueError("text after the JSON object")
            return members
        raise ValueError("expected ',' or '}'")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _string_end(text: str, i: int) -> int:
    """Index just past the string literal opening at `i`."""
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == '"':
            return i + 1
        i += 1
    raise ValueError("unterminated string")


def _value_end(text: str, i: int) -> int:
    """Index just past the JSON value starting at `i`."""
    if i >= len(text):
        raise ValueError("missing value")
    if text[i] == '"':
        return _string_end(text, i)
    if text[i] in "{[":
        depth = 0
        while i < len(text):
            char = text[i]
            if char == '"':
                i = _string_end(text, i)
                continue
            if char in "{[":
                depth += 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise ValueError("unbalanced brackets")
    # A number, true, false or null: up to the next delimiter.
    start = i
    while i < len(text) and text[i] not in ",}] \t\r\n":
        i += 1
    if i == start:
        raise ValueError("missing value")
    return i
