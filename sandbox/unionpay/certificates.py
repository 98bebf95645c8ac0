"""The sandbox's own UnionPay certificate chain and the merchant's PFX.

Generated once per keys directory by `python -m sandbox keys` (and `serve`),
never overwritten (layout in sandbox/keys.py). Like the real test
environment (docs/gateways-alipay-unionpay.md B2): a root CA, a middle CA it
issued, UnionPay's signing certificate issued by the middle one with
UnionPay's CN shape `041@<id>@中国银联股份有限公司@<n>` (B4, B16), and the
merchant's signing certificate, also issued by the middle CA, packed with
its key into a PKCS#12 file under a published throwaway password. Needs no
Django, so the keys command stays cheap.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PROVIDER = "unionpay"
RSA_KEY_BITS = 2048
# The published throwaway password of the sandbox merchant's PFX (the real
# test environment's sample PFX uses the same one).
MERCHANT_PFX_PASSWORD = "000000"
MERCHANT_CERT_SERIAL = 77000000001
UNIONPAY_CERT_SERIAL = 68000000001
UNIONPAY_SIGN_CN = "041@8310000000000001@中国银联股份有限公司@00000001"
MIDDLE_CN = "Sandbox UnionPay TEST OCA1"
ROOT_CN = "Sandbox UnionPay TEST Root CA"
VALIDITY = timedelta(days=5 * 365)

# File names under <keys dir>/unionpay/ (a contract with the shop's settings).
ROOT_CERT = "root_ca.pem"
ROOT_KEY = "root_ca_key.pem"
MIDDLE_CERT = "middle_ca.pem"
MIDDLE_KEY = "middle_ca_key.pem"
VERIFY_CHAIN = "verify_chain.pem"
UNIONPAY_CERT = "unionpay_sign_cert.pem"
UNIONPAY_KEY = "unionpay_sign_key.pem"
MERCHANT_PFX = "merchant_sign.pfx"
MERCHANT_CERT = "merchant_sign_cert.pem"
ALL_FILES = (ROOT_CERT, ROOT_KEY, MIDDLE_CERT, MIDDLE_KEY, VERIFY_CHAIN, UNIONPAY_CERT, UNIONPAY_KEY,
             MERCHANT_PFX, MERCHANT_CERT)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)


def _name(common_name: str, organisation: str = "Sandbox CFCA") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def issue(*, subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey,
          ca: bool, serial: int | None = None, not_before: datetime | None = None,
          not_after: datetime | None = None) -> x509.Certificate:
    """A certificate for `key`'s public half, signed by `issuer_key` (SHA-256)."""
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
    else:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
    return builder.add_extension(usage, critical=True).sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Authority:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


def new_chain(*, root_cn: str = ROOT_CN, middle_cn: str = MIDDLE_CN) -> tuple[Authority, Authority]:
    """A root CA and the middle CA it issued."""
    root_key, middle_key = new_key(), new_key()
    root_name, middle_name = _name(root_cn), _name(middle_cn)
    root = issue(subject=root_name, key=root_key, issuer=root_name, issuer_key=root_key, ca=True)
    middle = issue(subject=middle_name, key=middle_key, issuer=root_name, issuer_key=root_key, ca=True)
    return Authority(root, root_key), Authority(middle, middle_key)


def signing_certificate(middle: Authority, key: rsa.RSAPrivateKey, *, common_name: str = UNIONPAY_SIGN_CN,
                        serial: int | None = None, not_before: datetime | None = None,
                        not_after: datetime | None = None) -> x509.Certificate:
    """An end-entity signing certificate issued by `middle`."""
    return issue(subject=_name(common_name, "Sandbox CFCA OCA1"), key=key, issuer=middle.certificate.subject,
                 issuer_key=middle.key, ca=False, serial=serial, not_before=not_before, not_after=not_after)


def merchant_common_name(mer_id: str) -> str:
    return f"041@Z{datetime.now(UTC):%Y-%m-%d}@{mer_id}:SIGN@00000001"


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _build(mer_id: str) -> dict[str, tuple[bytes, int]]:
    root, middle = new_chain()
    unionpay_key, merchant_key = new_key(), new_key()
    unionpay_cert = signing_certificate(middle, unionpay_key, serial=UNIONPAY_CERT_SERIAL)
    merchant_cert = signing_certificate(middle, merchant_key, common_name=merchant_common_name(mer_id),
                                        serial=MERCHANT_CERT_SERIAL)
    pfx = pkcs12.serialize_key_and_certificates(
        b"merchant-sign", merchant_key, merchant_cert, [root.certificate, middle.certificate],
        serialization.BestAvailableEncryption(MERCHANT_PFX_PASSWORD.encode()),
    )
    return {
        ROOT_CERT: (_pem(root.certificate), 0o644),
        ROOT_KEY: (_key_pem(root.key), 0o600),
        MIDDLE_CERT: (_pem(middle.certificate), 0o644),
        MIDDLE_KEY: (_key_pem(middle.key), 0o600),
        # What the shop trusts (UNIONPAY_VERIFY_CERT_PATH): middle, then root.
        VERIFY_CHAIN: (_pem(middle.certificate) + _pem(root.certificate), 0o644),
        UNIONPAY_CERT: (_pem(unionpay_cert), 0o644),
        UNIONPAY_KEY: (_key_pem(unionpay_key), 0o600),
        MERCHANT_PFX: (pfx, 0o600),
        MERCHANT_CERT: (_pem(merchant_cert), 0o644),
    }


def unionpay_keys_ensure(keys_dir: Path, *, mer_id: str) -> list[Path]:
    """Generate the whole set under `<keys_dir>/unionpay/` when none of it exists.

    The set is written into a fresh directory beside it and renamed into
    place in one step, so nobody ever reads half a set, and of two processes
    generating at once one wins whole. A partial set is refused, never
    completed: the pieces belong together (the chain signed them).
    """
    directory = Path(keys_dir) / PROVIDER
    present = [name for name in ALL_FILES if (directory / name).exists()]
    if len(present) == len(ALL_FILES):
        return []
    if present or (directory.exists() and any(directory.iterdir())):
        raise RuntimeError(
            f"{directory} holds only part of the UnionPay key set ({', '.join(present) or 'other files'}); "
            "remove it or restore the rest (keys are never overwritten)"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{PROVIDER}."))
    try:
        for name, (content, mode) in _build(mer_id).items():
            (staging / name).write_bytes(content)
            os.chmod(staging / name, mode)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        try:
            os.rename(staging, directory)
        except OSError:
            if all((directory / name).exists() for name in ALL_FILES):
                return []  # another process generated the set at the same time
            raise
    finally:
        if staging.exists():
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
    return [directory / name for name in ALL_FILES]
