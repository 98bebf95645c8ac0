"""Fixtures for the gateway adapter tests: keys, a frozen clock, a stubbed gateway URL.

No database and no network: `responses` intercepts every `requests` call and
fails the test on any URL it was not told about.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from payments.gateways.alipay import AlipayGateway
from tests.payments.gateways.alipay_support import APP_ID, FIXTURES, GATEWAY_URL, SELLER_ID, AlipayStub

# 10:03:04 in Beijing.
NOW = datetime(2024, 5, 1, 2, 3, 4, tzinfo=UTC)


@pytest.fixture(scope="session")
def alipay_side_key() -> rsa.RSAPrivateKey:
    """A throw-away key playing Alipay's side (it signs answers and notifications)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def stranger_key() -> rsa.RSAPrivateKey:
    """A key that is not Alipay's: its signatures must be refused."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def alipay_app_key() -> rsa.RSAPrivateKey:
    """The published TEST app key the adapter signs with."""
    return serialization.load_pem_private_key((FIXTURES / "app-private-key.pem").read_bytes(), password=None)


@pytest.fixture
def alipay_public_key_file(tmp_path: Path, alipay_side_key: rsa.RSAPrivateKey) -> Path:
    path = tmp_path / "alipay_public_key.pem"
    path.write_bytes(
        alipay_side_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def alipay_options(alipay_public_key_file: Path) -> dict[str, Any]:
    return {
        "app_id": APP_ID,
        "seller_id": SELLER_ID,
        "app_private_key_path": str(FIXTURES / "app-private-key.pem"),
        "alipay_public_key_path": str(alipay_public_key_file),
        "gateway_url": GATEWAY_URL,
        "connect_timeout": 3.0,
        "read_timeout": 7.0,
    }


@pytest.fixture
def make_alipay_gateway(alipay_options: dict[str, Any]) -> Callable[..., AlipayGateway]:
    def make(**overrides: Any) -> AlipayGateway:
        return AlipayGateway({**alipay_options, **overrides}, session=requests.Session(), clock=lambda: NOW)

    return make


@pytest.fixture
def alipay_gateway(make_alipay_gateway: Callable[..., AlipayGateway]) -> AlipayGateway:
    return make_alipay_gateway()


@pytest.fixture
def http():
    """Intercept all HTTP; any request nobody registered fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def alipay_api(http: responses.RequestsMock, alipay_side_key: rsa.RSAPrivateKey, alipay_app_key: rsa.RSAPrivateKey):
    """The stubbed Alipay gateway URL (see AlipayStub)."""
    stub = AlipayStub(http, alipay_side_key, alipay_app_key.public_key())
    yield stub
    assert stub.unanswered() == {}, "answers were queued but never asked for"


# -- UnionPay ------------------------------------------------------------------


@pytest.fixture(scope="session")
def unionpay_chain():
    """Throwaway UnionPay certificates: the trusted chain and the impostors (unionpay_support.TestChain)."""
    from tests.payments.gateways.unionpay_support import TestChain

    return TestChain()


@pytest.fixture(scope="session")
def unionpay_files(tmp_path_factory, unionpay_chain) -> dict[str, Path]:
    from tests.payments.gateways.unionpay_support import merchant_pfx

    directory = tmp_path_factory.mktemp("unionpay")
    bundle = directory / "verify_chain.pem"
    bundle.write_bytes(unionpay_chain.bundle_pem())
    return {"pfx": merchant_pfx(directory / "merchant.pfx"), "bundle": bundle}


@pytest.fixture
def unionpay_options(unionpay_files) -> dict[str, Any]:
    from tests.payments.gateways.unionpay_support import FILE_TRANSFER_URL, GATEWAY_BASE, MER_ID

    return {
        "mer_id": MER_ID,
        "sign_cert_path": str(unionpay_files["pfx"]),
        "sign_cert_password": "test-pfx-password",
        "sign_cert_id": "",
        "verify_cert_path": str(unionpay_files["bundle"]),
        "gateway_base": GATEWAY_BASE,
        "file_transfer_url": FILE_TRANSFER_URL,
        "connect_timeout": 3.0,
        "read_timeout": 7.0,
    }


@pytest.fixture
def make_unionpay_gateway(unionpay_options):
    from payments.gateways.unionpay import UnionPayGateway

    def make(*, clock=lambda: NOW, **overrides: Any) -> UnionPayGateway:
        return UnionPayGateway({**unionpay_options, **overrides}, session=requests.Session(), clock=clock)

    return make


@pytest.fixture
def unionpay_gateway(make_unionpay_gateway):
    return make_unionpay_gateway()


@pytest.fixture
def unionpay_api(http, unionpay_chain):
    """The stubbed UnionPay hosts, signing as UnionPay (see UnionPayStub)."""
    from tests.payments.gateways.unionpay_support import UnionPayStub

    stub = UnionPayStub(http, unionpay_chain.unionpay)
    yield stub
    assert stub.unanswered() == {}, "answers were queued but never asked for"
