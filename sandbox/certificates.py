"""The sandbox's own certificate authority and the TLS material it issues.

For WeChat Pay API v2, whose `/secapi/` calls need mutual TLS
(docs/gateways-wechatpay.md §10.3): the sandbox's HTTPS listener presents a
server certificate issued by this CA (for 127.0.0.1, ::1 and localhost),
and accepts only client certificates issued by it. The merchant's client
certificate comes as `apiclient_cert.pem` + `apiclient_key.pem` and as
`apiclient_cert.p12` whose password is the mchid, like the files the real
merchant platform hands out (§2, §12.12).

Every file is written once and never overwritten (sandbox/keys.py's rule):
a certificate missing beside an existing key is issued again from that
key; a CA certificate missing beside its key is re-made from the key; a
certificate without its key is refused. Needs no Django.
"""
from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

RSA_KEY_BITS = 2048
# Long enough never to expire under a developer; a test CA, trusted by nobody else.
VALIDITY = timedelta(days=3650)
BACKDATE = timedelta(days=1)
CA_NAME = "Sandbox Payment Gateway Test CA"
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")

# `(path, content, mode) -> written`: write unless the file exists
# (sandbox/keys.py's writer, which never overwrites).
WriteNew = Callable[[Path, bytes, int], bool]


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _load_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RuntimeError(f"{path} is not an RSA key")
    return key


def _key_ensure(path: Path, write: WriteNew, written: list[Path]) -> rsa.RSAPrivateKey:
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        if write(path, _pem_key(key), 0o600):
            written.append(path)
    return _load_key(path)


def _name(common_name: str, organization: str = "Sandbox") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
    )


def _ca_certificate(key: rsa.RSAPrivateKey) -> x509.Certificate:
    name = _name(CA_NAME)
    builder = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False),
                       critical=True)  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def _issued(ca_key: rsa.RSAPrivateKey, ca_cert: x509.Certificate, key: rsa.RSAPrivateKey, subject: x509.Name,
            *, server: bool) -> x509.Certificate:  # fmt: skip
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False),
                       critical=True)  # fmt: skip
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)  # fmt: skip
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_ADDRESSES]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def tls_material_ensure(directory: Path, *, client_common_name: str, p12_password: str,
                        write: WriteNew) -> list[Path]:  # fmt: skip
    """Make the CA, the server certificate and the merchant's client certificate if missing.

    Files in `directory`: sandbox_ca.pem / sandbox_ca_key.pem,
    server_cert.pem / server_key.pem, apiclient_cert.pem / apiclient_key.pem
    and apiclient_cert.p12 (the same certificate and key, `p12_password`).
    Returns the files written.
    """
    written: list[Path] = []
    ca_key_path, ca_path = directory / "sandbox_ca_key.pem", directory / "sandbox_ca.pem"
    if ca_path.exists() and not ca_key_path.exists():
        raise RuntimeError(f"{ca_path} exists without {ca_key_path.name}; remove it (keys are never overwritten)")
    ca_key = _key_ensure(ca_key_path, write, written)
    if not ca_path.exists() and write(ca_path, _ca_certificate(ca_key).public_bytes(serialization.Encoding.PEM),
                                      0o644):  # fmt: skip
        written.append(ca_path)
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    for stem, subject, server in (
        ("server", _name(SERVER_NAMES[0]), True),
        ("apiclient", _name(client_common_name, organization="Sandbox Merchant"), False),
    ):
        key_path, cert_path = directory / f"{stem}_key.pem", directory / f"{stem}_cert.pem"
        if cert_path.exists() and not key_path.exists():
            raise RuntimeError(f"{cert_path} exists without {key_path.name}; remove it (keys are never overwritten)")
        key = _key_ensure(key_path, write, written)
        if not cert_path.exists():
            certificate = _issued(ca_key, ca_cert, key, subject, server=server)
            if write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644):
                written.append(cert_path)
    p12_path = directory / "apiclient_cert.p12"
    if not p12_path.exists():
        key = _load_key(directory / "apiclient_key.pem")
        certificate = x509.load_pem_x509_certificate((directory / "apiclient_cert.pem").read_bytes())
        bundle = pkcs12.serialize_key_and_certificates(
            client_common_name.encode(), key, certificate, [ca_cert],
            serialization.BestAvailableEncryption(p12_password.encode()),
        )
        if write(p12_path, bundle, 0o600):
            written.append(p12_path)
    return written


def tls_server_context(directory: Path) -> ssl.SSLContext:
    """The HTTPS listener's context: our server certificate, client certificates
    asked for and, when sent, verified against the sandbox CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(directory / "server_cert.pem", directory / "server_key.pem")
    context.load_verify_locations(cafile=directory / "sandbox_ca.pem")
    # Optional at the TLS level (one listener serves /pay/ and /secapi/);
    # a certificate that is sent must verify, or the handshake fails.
    context.verify_mode = ssl.CERT_OPTIONAL
    return context
