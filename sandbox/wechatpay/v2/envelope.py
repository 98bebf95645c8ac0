"""API v2's envelope, the sandbox's own implementation (no shop code).

docs/gateways-wechatpay.md §10.1 (flat `<xml>` documents, UTF-8, values in
CDATA), §10.2 (`sign`: the non-empty fields but `sign` sorted by name,
`k=v&...&key=<API key>`, MD5 or HMAC-SHA256 upper-case hex) and §10.5
(`req_info`: AES-256-ECB under the lower-case hex MD5 of the API key,
PKCS#7, base64). The parser is lxml with entities, DTDs and the network
off, and it refuses any document type declaration outright. Needs no
Django, so tests may import it to cross-check.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from collections.abc import Mapping

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

MD5 = "MD5"
HMAC_SHA256 = "HMAC-SHA256"
SIGN_TYPES = (MD5, HMAC_SHA256)
MAX_BODY_BYTES = 256 * 1024
NONCE_ALPHABET = string.ascii_letters + string.digits


class EnvelopeInvalid(ValueError):
    """A body that is not a flat v2 XML document."""


def parse(data: bytes, *, root: str = "xml") -> dict[str, str]:
    """The fields of a flat document; EnvelopeInvalid for anything else."""
    if len(data) > MAX_BODY_BYTES:
        raise EnvelopeInvalid("too large")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise EnvelopeInvalid("not UTF-8") from None
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise EnvelopeInvalid("a document type declaration")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             remove_comments=True, remove_pis=True, encoding="utf-8")  # fmt: skip
    try:
        document = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        raise EnvelopeInvalid("not well-formed") from None
    if document.getroottree().docinfo.doctype or document.tag != root:
        raise EnvelopeInvalid(f"not a <{root}> document")
    fields: dict[str, str] = {}
    for child in document:
        if not isinstance(child.tag, str) or len(child) or child.tag in fields:
            raise EnvelopeInvalid("not a flat document")
        fields[child.tag] = child.text or ""
    return fields


def render(fields: Mapping[str, str], *, root: str = "xml") -> bytes:
    """`<xml><name><![CDATA[value]]></name>...</xml>`, as WeChat writes its answers."""
    document = etree.Element(root)
    for name, value in fields.items():
        element = etree.SubElement(document, name)
        # CDATA cannot hold "]]>": such a value goes as escaped text.
        element.text = etree.CDATA(value) if "]]>" not in value else value
    return etree.tostring(document, encoding="utf-8", xml_declaration=False)


def sign_message(fields: Mapping[str, str], api_key: str) -> bytes:
    pairs = sorted((name, value) for name, value in fields.items() if name != "sign" and value != "")
    return ("&".join(f"{name}={value}" for name, value in pairs) + f"&key={api_key}").encode("utf-8")


def sign(fields: Mapping[str, str], api_key: str, sign_type: str = MD5) -> str:
    message = sign_message(fields, api_key)
    if sign_type == HMAC_SHA256:
        return hmac.new(api_key.encode("utf-8"), message, hashlib.sha256).hexdigest().upper()
    return hashlib.md5(message).hexdigest().upper()


def verify(fields: Mapping[str, str], api_key: str, sign_type: str = MD5) -> bool:
    given = fields.get("sign", "")
    return bool(given) and hmac.compare_digest(sign(fields, api_key, sign_type).encode(), given.encode("utf-8"))


def signed(fields: Mapping[str, str], api_key: str, sign_type: str = MD5) -> dict[str, str]:
    """The fields with a fresh nonce_str and their sign (sign_type left as given)."""
    message = {**fields, "nonce_str": new_nonce()}
    return {**message, "sign": sign(message, api_key, sign_type)}


def new_nonce() -> str:
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(32))


def refund_info_key(api_key: str) -> bytes:
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().lower().encode("ascii")


def encrypt_refund_info(plaintext: bytes, api_key: str, *, bad_padding: bool = False) -> str:
    """base64(AES-256-ECB(PKCS#7(plaintext))); `bad_padding` breaks the last block's padding."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    if bad_padding:
        padded = padded[:-1] + bytes([0])
    encryptor = Cipher(algorithms.AES(refund_info_key(api_key)), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")
