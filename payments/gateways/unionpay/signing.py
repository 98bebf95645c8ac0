"""UnionPay ACP 5.1.0 signatures, signMethod 01 (docs/gateways-alipay-unionpay.md B2, B4).

Signing: every field but `signature`, blanks left out, sorted by name and
joined raw as `name=value&...`; the SHA-256 of that UTF-8 text written as
64 lowercase hex characters is what SHA256withRSA (PKCS#1 v1.5) signs, with
the merchant's key from its PKCS#12 signing certificate; `certId` is that
certificate's serial in decimal.

Verifying: the same text over every received field but `signature` (empty
values as received), checked with the public key of `signPubKeyCert`, the
certificate the message carries. That certificate proves nothing by itself:
it must chain, through the configured middle certificate, to the
configured root, be valid at the time the message arrived, and name
UnionPay (`中国银联股份有限公司` as the third `@` part of its CN). Revocation
is not checked, as in the official SDK.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from payments.gateways.unionpay.formats import UNIONPAY_CN_PART, without_blanks

SIGNATURE_FIELD = "signature"
CERTIFICATE_FIELD = "signPubKeyCert"
# Leaf, middle, root: deeper chains are not UnionPay's.
MAX_CHAIN_LENGTH = 4

_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


class CertificateRefused(ValueError):
    """The certificate a message carries is not UnionPay's signing certificate."""


@dataclass(frozen=True)
class SigningCredential:
    """The merchant's signing certificate and key (the PFX), and its certId."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def cert_id(self) -> str:
        # B2: certId is the serial number written in decimal.
        return str(self.certificate.serial_number)


def load_signing_credential(data: bytes, password: str) -> SigningCredential:
    """The merchant's PKCS#12 signing certificate; ValueError when it will not open or is not RSA."""
    try:
        key, certificate, _ = pkcs12.load_key_and_certificates(data, password.encode("utf-8") if password else None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # The message may say why; it never contains the password.
        raise ValueError(f"not a PKCS#12 file this password opens ({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey) or certificate is None:
        raise ValueError("the PKCS#12 file holds no RSA key with its certificate")
    return SigningCredential(private_key=key, certificate=certificate)


def load_trust_bundle(data: bytes) -> list[x509.Certificate]:
    """UnionPay's middle and root certificates, one PEM file; ValueError without a root."""
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"not PEM certificates ({exc})") from None
    if not any(_self_signed(certificate) for certificate in certificates):
        raise ValueError("no self-signed root certificate among them")
    return certificates


def signing_text(fields: Mapping[str, str]) -> str:
    """`name=value&...` over every field but `signature`, sorted by name (B4)."""
    return "&".join(f"{name}={fields[name]}" for name in sorted(fields) if name != SIGNATURE_FIELD)


def signing_digest(fields: Mapping[str, str]) -> bytes:
    """What RSA signs: the SHA-256 of the signing text as 64 lowercase hex ASCII characters."""
    return hashlib.sha256(signing_text(fields).encode("utf-8")).hexdigest().encode("ascii")


def sign_request(fields: Mapping[str, str], credential: SigningCredential) -> dict[str, str]:
    """The fields to send: blanks removed, `certId` set, `signature` added (B4 steps 1-5)."""
    signed = without_blanks(fields)
    signed["certId"] = credential.cert_id
    signed.pop(SIGNATURE_FIELD, None)
    signature = credential.private_key.sign(signing_digest(signed), padding.PKCS1v15(), hashes.SHA256())
    signed[SIGNATURE_FIELD] = base64.b64encode(signature).decode("ascii")
    return signed


def signature_verifies(fields: Mapping[str, str], public_key: rsa.RSAPublicKey) -> bool:
    """Does `signature` verify over the other fields with this key?"""
    try:
        signature = base64.b64decode(fields.get(SIGNATURE_FIELD, ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    if not signature:
        return False
    try:
        public_key.verify(signature, signing_digest(fields), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def message_certificate(fields: Mapping[str, str]) -> x509.Certificate:
    """The `signPubKeyCert` a message carries, exactly as received (CRLF kept)."""
    pem = fields.get(CERTIFICATE_FIELD, "")
    if not pem:
        raise CertificateRefused("no signPubKeyCert")
    try:
        return x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CertificateRefused("signPubKeyCert is not a PEM certificate") from None


def check_unionpay_certificate(certificate: x509.Certificate, trust: Sequence[x509.Certificate], *,
                               at: datetime) -> rsa.RSAPublicKey:
    """UnionPay's signing certificate, checked as B4 step 2 says; its public key.

    Raises CertificateRefused when it is out of its validity period at
    `at`, does not chain to a root in `trust` (every link's signature and
    validity checked, issuers must be CAs), does not name UnionPay, or does
    not carry an RSA key allowed to sign.
    """
    _check_validity(certificate, at, "signPubKeyCert")
    _check_unionpay_name(certificate)
    usage = _extension(certificate, x509.KeyUsage)
    if usage is not None and not usage.digital_signature:
        raise CertificateRefused("signPubKeyCert may not sign (key usage)")
    _check_chain(certificate, trust, at)
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateRefused("signPubKeyCert does not carry an RSA key")
    return key


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _check_unionpay_name(certificate: x509.Certificate) -> None:
    # B4: `041@<id>@中国银联股份有限公司@<n>`; the third part names the holder.
    parts = common_name(certificate).split("@")
    if len(parts) < 3 or parts[2] != UNIONPAY_CN_PART:
        raise CertificateRefused(f"signPubKeyCert names {common_name(certificate)!r}, not UnionPay")


def _check_validity(certificate: x509.Certificate, at: datetime, label: str) -> None:
    if not certificate.not_valid_before_utc <= at <= certificate.not_valid_after_utc:
        raise CertificateRefused(
            f"{label} is valid from {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}, not at {at:%Y-%m-%d %H:%M}"
        )


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and _issued_by(certificate, certificate)


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Is `certificate` signed by `issuer`'s key under `issuer`'s name?

    Checked by hand rather than with verify_directly_issued_by: the CFCA
    test chain signs with SHA-1, which that helper refuses.
    """
    if certificate.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    algorithm = certificate.signature_hash_algorithm
    if not isinstance(key, rsa.RSAPublicKey) or algorithm is None:
        return False
    try:
        key.verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, UnsupportedAlgorithm, ValueError):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _extension(certificate, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _check_chain(leaf: x509.Certificate, trust: Sequence[x509.Certificate], at: datetime) -> None:
    current = leaf
    for _ in range(MAX_CHAIN_LENGTH):
        issuer = next((candidate for candidate in trust
                       if candidate is not current and _issued_by(current, candidate)), None)
        if issuer is None:
            raise CertificateRefused("signPubKeyCert does not chain to the configured UnionPay certificates")
        if not _is_ca(issuer):
            raise CertificateRefused(f"{common_name(issuer)!r} is not a certificate authority")
        _check_validity(issuer, at, f"the chain certificate {common_name(issuer)!r}")
        if _self_signed(issuer):
            return
        current = issuer
    raise CertificateRefused("signPubKeyCert's chain is longer than UnionPay's")


def _extension(certificate: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
