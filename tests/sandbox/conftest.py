"""Fixtures for the sandbox gateway's black-box tests.

One sandbox process per test session (per xdist worker: the Alipay tests
share the xdist group "sandbox", the WeChat Pay ones "sandbox-wechatpay", so
that the two run side by side against their own processes), reset before
every test; a merchant receiver per test. The WeChat Pay and UnionPay fixtures give the
shop's own adapter pointed at the sandbox, a test-side signer, and a
receiver that groups notifications by their decrypted out_trade_no.
"""
from __future__ import annotations

import pytest

from tests.sandbox.alipay_client import AlipayTestClient, sdk_client
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.receiver import MerchantReceiver
from tests.sandbox.shopper import Shopper
from tests.sandbox.wechatpay_client import WechatTestClient, make_gateway, wechatpay_receiver
from tests.sandbox_process import SandboxProcess


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory):
    process = SandboxProcess(tmp_path_factory.mktemp("sandbox"), time_scale=0.001)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def sandbox(sandbox_process) -> SandboxProcess:
    """The running sandbox with no trades, faults or changed settings."""
    sandbox_process.control("POST", "reset", {"settings": True})
    return sandbox_process


@pytest.fixture
def merchant():
    receiver = MerchantReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def alipay(sandbox) -> AlipayTestClient:
    return AlipayTestClient(sandbox.alipay_gateway_url, sandbox.keys_dir)


@pytest.fixture
def sdk(sandbox, merchant):
    return sdk_client(sandbox.alipay_gateway_url, sandbox.keys_dir, notify_url=merchant.notify_url)


@pytest.fixture
def shopper() -> Shopper:
    return Shopper()


@pytest.fixture
def out_trade_no() -> str:
    return new_out_trade_no()


# -- WeChat Pay -----------------------------------------------------------------


@pytest.fixture
def wechatpay(sandbox):
    """The shop's WeChat Pay adapter, pointed at the sandbox (needs no database)."""
    return make_gateway(sandbox)


@pytest.fixture
def wx(sandbox):
    """Our own test-side WeChat Pay signer, for deliberately wrong requests."""
    return WechatTestClient(sandbox)


@pytest.fixture
def wx_merchant():
    """A merchant receiver that groups WeChat notifications by their decrypted out_trade_no."""
    receiver = wechatpay_receiver().start()
    yield receiver
    receiver.stop()


# -- UnionPay -------------------------------------------------------------------


@pytest.fixture
def unionpay(sandbox):
    """The shop's UnionPay adapter, pointed at the sandbox (needs no database)."""
    from tests.sandbox.unionpay_client import make_gateway

    return make_gateway(sandbox)


@pytest.fixture
def up(sandbox):
    """Our own test-side ACP signer, for deliberately wrong requests."""
    from tests.sandbox.unionpay_client import UnionPayTestClient

    return UnionPayTestClient(sandbox)


@pytest.fixture
def up_merchant():
    """A merchant receiver that groups UnionPay posts by orderId (200 to everything)."""
    from tests.sandbox.unionpay_client import unionpay_receiver

    receiver = unionpay_receiver().start()
    yield receiver
    receiver.stop()
