"""Short, shared ways to bring a sandbox trade into a given state over HTTP."""
from __future__ import annotations

import uuid

from tests.sandbox.alipay_client import AlipayTestClient
from tests.sandbox.receiver import MerchantReceiver
from tests.sandbox_process import SandboxProcess


def new_out_trade_no() -> str:
    return "T" + uuid.uuid4().hex[:20]


def precreate(
    alipay: AlipayTestClient, merchant: MerchantReceiver, out_trade_no: str, amount: str = "88.88", **biz: str
) -> dict:
    answer = alipay.call(
        "alipay.trade.precreate",
        {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "龙井茶 Longjing tea", **biz},
        notify_url=merchant.notify_url,
    )
    assert answer.code == "10000", answer.node
    return answer.node


def paid_trade(
    sandbox: SandboxProcess, alipay: AlipayTestClient, merchant: MerchantReceiver, out_trade_no: str,
    amount: str = "88.88",
) -> dict:  # fmt: skip
    """Precreate, scan and pay through the control API; wait for the payment notification."""
    precreate(alipay, merchant, out_trade_no, amount)
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")
    trade = sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")
    merchant.wait_for_notifications(out_trade_no, 1)
    return trade


def refund(alipay: AlipayTestClient, out_trade_no: str, amount: str, out_request_no: str, **options: object):
    return alipay.call(
        "alipay.trade.refund",
        {"out_trade_no": out_trade_no, "refund_amount": amount, "out_request_no": out_request_no, **options},
    )
