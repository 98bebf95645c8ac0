"""Short, shared ways to bring a sandbox WeChat Pay trade into a given state over HTTP,
with the shop's adapter as the client."""
from __future__ import annotations

from payments.gateways.base import PaymentAction, PayMethod
from payments.gateways.wechatpay import WechatPayGateway
from tests.sandbox.receiver import MerchantReceiver, Received
from tests.sandbox.wechatpay_client import payment_request
from tests.sandbox_process import SandboxControlError, SandboxProcess


def prepay(
    gateway: WechatPayGateway, merchant: MerchantReceiver, out_trade_no: str, amount_minor: int = 8888, **options
) -> PaymentAction:
    return gateway.start_payment(payment_request(merchant, out_trade_no, amount_minor=amount_minor, **options))


def h5_prepay(
    gateway: WechatPayGateway, merchant: MerchantReceiver, out_trade_no: str, amount_minor: int = 8888, **options
) -> PaymentAction:
    options.setdefault("return_url", merchant.wechatpay_return_url)
    return prepay(gateway, merchant, out_trade_no, amount_minor, method=PayMethod.WAP, **options)


def pay(sandbox: SandboxProcess, gateway: WechatPayGateway, merchant: MerchantReceiver, out_trade_no: str,
        amount_minor: int = 8888) -> dict:  # fmt: skip
    """Native prepay, scan and pay through the control API, without waiting for the notification."""
    prepay(gateway, merchant, out_trade_no, amount_minor)
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/scan")
    return sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")


def paid_trade(sandbox: SandboxProcess, gateway: WechatPayGateway, merchant: MerchantReceiver, out_trade_no: str,
               amount_minor: int = 8888) -> dict:  # fmt: skip
    """Pay, then wait for the payment notification."""
    trade = pay(sandbox, gateway, merchant, out_trade_no, amount_minor)
    merchant.wait_for_notifications(out_trade_no, 1)
    return trade


def wechat_trade(sandbox: SandboxProcess, out_trade_no: str) -> dict:
    return sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")


def notification_log(sandbox: SandboxProcess, out_trade_no: str, kind: str = "") -> list[dict]:
    query = f"notifications?provider=wechatpay&out_trade_no={out_trade_no}" + (f"&kind={kind}" if kind else "")
    return sandbox.control("GET", query)["notifications"]


def delivered(sandbox: SandboxProcess, out_trade_no: str, kind: str = "") -> list[dict]:
    """Wait until every notification of the trade (of that kind) was acknowledged."""

    def done() -> list[dict]:
        logged = notification_log(sandbox, out_trade_no, kind)
        return logged if logged and all(n["status"] == "delivered" for n in logged) else []

    return sandbox.wait_for(done, what=f"delivered notifications of {out_trade_no}")


def control_status(sandbox: SandboxProcess, method: str, path: str, body: dict | None = None) -> int:
    """The HTTP status a control call answers (the tests check refusals)."""
    try:
        sandbox.control(method, path, body)
    except SandboxControlError as error:
        return error.status
    return 200


def refund_notifications(merchant: MerchantReceiver, out_trade_no: str) -> list[Received]:
    return [request for request in merchant.notifications(out_trade_no) if request.path.startswith("/refunds/")]


def wait_for_refund_notifications(
    sandbox: SandboxProcess, merchant: MerchantReceiver, out_trade_no: str, count: int
) -> list[Received]:
    def arrived() -> list[Received]:
        found = refund_notifications(merchant, out_trade_no)
        return found if len(found) >= count else []

    return sandbox.wait_for(arrived, what=f"{count} refund notifications for {out_trade_no}")
