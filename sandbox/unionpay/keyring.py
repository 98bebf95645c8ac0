"""The UnionPay keys and certificates the sandbox process uses.

From the keys directory (sandbox/unionpay/certificates.py): UnionPay's
signing key and certificate, sent as signPubKeyCert with every answer and
notification; the merchant's certificate, which verifies requests whose
certId is its serial; the middle CA, which the forgeries below need.

Forgeries, made in memory once per process: a stranger's key; an impostor
chain (a root and middle nobody trusts) with a signing certificate that
names UnionPay; a certificate from the real middle CA that does not name
UnionPay; one that names UnionPay but expired.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from sandbox.unionpay import certificates as files


def _path(name: str) -> Path:
    return Path(settings.SANDBOX_KEYS_DIR) / files.PROVIDER / name


def _private_key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(_path(name).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _certificate(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(_path(name).read_bytes())


def pem_crlf(certificate: x509.Certificate) -> str:
    """B7/B16: signPubKeyCert is PEM with CRLF line breaks, no final one."""
    text = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii").strip()
    return "\r\n".join(text.splitlines())


@dataclass(frozen=True)
class Signer:
    key: rsa.RSAPrivateKey
    certificate_pem: str


@cache
def unionpay_signer() -> Signer:
    return Signer(_private_key(files.UNIONPAY_KEY), pem_crlf(_certificate(files.UNIONPAY_CERT)))


@cache
def merchant_certificate() -> x509.Certificate:
    return _certificate(files.MERCHANT_CERT)


def merchant_cert_id() -> str:
    return str(merchant_certificate().serial_number)


def merchant_public_key() -> rsa.RSAPublicKey:
    key = merchant_certificate().public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


@cache
def _middle() -> files.Authority:
    return files.Authority(_certificate(files.MIDDLE_CERT), _private_key(files.MIDDLE_KEY))


@cache
def stranger_key() -> rsa.RSAPrivateKey:
    """Signs `bad_signature` forgeries: not the key of the certificate they carry."""
    return files.new_key()


@cache
def impostor_signer() -> Signer:
    """A valid signature and UnionPay's CN, from a chain nobody configured."""
    _root, middle = files.new_chain(root_cn="Impostor Root CA", middle_cn="Impostor OCA1")
    key = files.new_key()
    return Signer(key, pem_crlf(files.signing_certificate(middle, key)))


@cache
def wrong_cn_signer() -> Signer:
    """Issued by the real middle CA, but to someone who is not UnionPay."""
    key = files.new_key()
    certificate = files.signing_certificate(_middle(), key, common_name="041@8310000000000009@某某科技有限公司@00000009")
    return Signer(key, pem_crlf(certificate))


@cache
def expired_signer() -> Signer:
    """UnionPay's CN from the real middle CA, but its validity ended yesterday."""
    key = files.new_key()
    now = datetime.now(UTC)
    certificate = files.signing_certificate(_middle(), key, not_before=now - timedelta(days=400),
                                            not_after=now - timedelta(days=1))
    return Signer(key, pem_crlf(certificate))
