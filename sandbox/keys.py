"""The sandbox's key material: generated once per keys directory, never overwritten.

Layout (a contract with the shop's settings; README.md repeats it):

    <keys dir>/alipay/app_private_key.pem      the MERCHANT's key (PKCS#8): the shop signs with it
    <keys dir>/alipay/app_public_key.pem       the sandbox verifies merchant requests with it
    <keys dir>/alipay/alipay_private_key.pem   the sandbox signs responses, notifications, returns
    <keys dir>/alipay/alipay_public_key.pem    the shop verifies the sandbox with it
    <keys dir>/wechatpay/merchant_private_key.pem  the MERCHANT's API key (PKCS#8): the shop signs with it
    <keys dir>/wechatpay/merchant_public_key.pem   the sandbox verifies merchant requests with it
    <keys dir>/wechatpay/platform_private_key.pem  the sandbox signs answers and notifications
    <keys dir>/wechatpay/platform_public_key.pem   the shop verifies the sandbox with it ("WeChat Pay public key")
    <keys dir>/wechatpay/sandbox_ca.pem, sandbox_ca_key.pem   the sandbox's own CA (API v2's TLS)
    <keys dir>/wechatpay/server_cert.pem, server_key.pem      the HTTPS listener's certificate
    <keys dir>/wechatpay/apiclient_cert.pem, apiclient_key.pem, apiclient_cert.p12
                                                   the MERCHANT's client certificate for /secapi/ (p12 password: the mchid)

    <keys dir>/unionpay/merchant_sign.pfx      the MERCHANT's signing certificate and key (PKCS#12,
                                               password 000000): the shop signs with it
    <keys dir>/unionpay/merchant_sign_cert.pem the sandbox verifies merchant requests with it (by certId)
    <keys dir>/unionpay/verify_chain.pem       the middle and root CA certificates: the shop checks
                                               every signPubKeyCert against them
    <keys dir>/unionpay/unionpay_sign_*.pem    the sandbox's UnionPay signing certificate and key
    <keys dir>/unionpay/{root,middle}_ca*.pem  the chain's certificates and keys

A provider joins by adding its generator to KEY_GENERATORS. This module
needs no Django, so `python -m sandbox keys` stays cheap.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

RSA_KEY_BITS = 2048


def private_key_path(keys_dir: Path, provider: str, owner: str) -> Path:
    return Path(keys_dir) / provider / f"{owner}_private_key.pem"


def public_key_path(keys_dir: Path, provider: str, owner: str) -> Path:
    return Path(keys_dir) / provider / f"{owner}_public_key.pem"


def _write_new_file(path: Path, content: bytes, mode: int) -> bool:
    """Write `content` to `path` unless it exists; True when this call wrote it.

    Link a finished temporary file into place: the link fails if another
    process got there first, and nobody ever sees a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temporary, mode)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def rsa_key_pair_ensure(keys_dir: Path, provider: str, owner: str) -> list[Path]:
    """Make `<owner>_private_key.pem` (PKCS#8) and its public key if missing.

    An existing private key is kept and its public key derived from it; a
    public key without its private key is refused rather than replaced.
    """
    private_path = private_key_path(keys_dir, provider, owner)
    public_path = public_key_path(keys_dir, provider, owner)
    written: list[Path] = []
    if not private_path.exists():
        if public_path.exists():
            raise RuntimeError(
                f"{public_path} exists without {private_path.name}; "
                "remove it or restore the private key (keys are never overwritten)"
            )
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        if _write_new_file(private_path, pem, 0o600):
            written.append(private_path)
    if not public_path.exists():
        existing = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        pem = existing.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if _write_new_file(public_path, pem, 0o644):
            written.append(public_path)
    return written


def _alipay_keys_ensure(keys_dir: Path) -> list[Path]:
    # Two pairs: the merchant's ("app") and the gateway's ("alipay").
    return rsa_key_pair_ensure(keys_dir, "alipay", "app") + rsa_key_pair_ensure(keys_dir, "alipay", "alipay")


def _wechatpay_keys_ensure(keys_dir: Path) -> list[Path]:
    # API v3: the merchant's API key pair and the platform's ("WeChat Pay
    # public key"). API v2: the TLS material of the HTTPS listener and the
    # merchant's client certificate (sandbox/certificates.py).
    from sandbox import config
    from sandbox.certificates import tls_material_ensure

    written = rsa_key_pair_ensure(keys_dir, "wechatpay", "merchant")
    written += rsa_key_pair_ensure(keys_dir, "wechatpay", "platform")
    written += tls_material_ensure(
        Path(keys_dir) / "wechatpay",
        client_common_name=config.WECHATPAY_MCHID,
        p12_password=config.WECHATPAY_V2_P12_PASSWORD,
        write=_write_new_file,
    )
    return written


def _unionpay_keys_ensure(keys_dir: Path) -> list[Path]:
    # A certificate chain rather than a key pair (sandbox/unionpay/certificates.py).
    from sandbox import config
    from sandbox.unionpay.certificates import unionpay_keys_ensure

    return unionpay_keys_ensure(keys_dir, mer_id=config.UNIONPAY_MER_ID)


KEY_GENERATORS: dict[str, Callable[[Path], list[Path]]] = {
    "alipay": _alipay_keys_ensure,
    "wechatpay": _wechatpay_keys_ensure,
    "unionpay": _unionpay_keys_ensure,
}


def keys_ensure(keys_dir: Path) -> list[Path]:
    """Generate every provider's missing keys under `keys_dir`; return the new files."""
    written: list[Path] = []
    for generate in KEY_GENERATORS.values():
        written.extend(generate(Path(keys_dir)))
    return written
