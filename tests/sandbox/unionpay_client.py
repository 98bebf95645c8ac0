"""Test-side UnionPay pieces for the sandbox's black-box tests.

The shop's `UnionPayGateway`, pointed at the sandbox, is one client;
`UnionPayTestClient` is another, signing requests with the test-side ACP code
of tests/payments/gateways/unionpay_support.py (apart from both the adapter
and the sandbox), so that it can also send deliberately wrong requests and
check every answer's signature on its own.
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import lxml.html
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from django.utils import timezone

from payments.gateways.base import PaymentRequest, PayMethod, RawNotification, RefundRequest, TradeReference
from payments.gateways.unionpay import UnionPayGateway
from payments.gateways.unionpay.formats import format_txn_time
from tests.payments.gateways.unionpay_support import acp_sign, acp_verify
from tests.sandbox.receiver import MerchantReceiver, Received
from tests.sandbox_process import SandboxProcess

MER_ID = "898110000000001"
PFX_PASSWORD = "000000"
MERCHANT_CERT_ID = "77000000001"


def keys(sandbox: SandboxProcess, name: str):
    return sandbox.keys_dir / "unionpay" / name


def gateway_options(sandbox: SandboxProcess, **overrides: Any) -> dict[str, Any]:
    return {
        "mer_id": MER_ID,
        "sign_cert_path": str(keys(sandbox, "merchant_sign.pfx")),
        "sign_cert_password": PFX_PASSWORD,
        "verify_cert_path": str(keys(sandbox, "verify_chain.pem")),
        "gateway_base": sandbox.url("/unionpay/gateway/api"),
        "file_transfer_url": sandbox.url("/unionpay/filetransfer/"),
        "connect_timeout": 3.0,
        "read_timeout": 10.0,
        **overrides,
    }


def make_gateway(sandbox: SandboxProcess, **overrides: Any) -> UnionPayGateway:
    return UnionPayGateway(gateway_options(sandbox, **overrides), session=requests.Session())


def unionpay_receiver(answer=None) -> MerchantReceiver:
    """A merchant receiver that groups UnionPay posts by their orderId."""
    options: dict[str, Any] = {"reference": lambda request: request.fields.get("orderId")}
    if answer is not None:
        options["answer"] = answer
    return MerchantReceiver(**options)


def notify_url(merchant: MerchantReceiver) -> str:
    return merchant.base_url + "/payments/unionpay/notify/"


def refund_notify_url(merchant: MerchantReceiver) -> str:
    return merchant.base_url + "/refunds/unionpay/notify/"


def return_url(merchant: MerchantReceiver) -> str:
    return merchant.base_url + "/payments/unionpay/return/"


def new_order_id() -> str:
    return f"{timezone.now():%Y%m%d}{secrets.randbelow(10**8):08d}P01"


def now_second() -> datetime:
    return timezone.now().replace(microsecond=0)


def payment_request(merchant: MerchantReceiver, order_id: str, *, amount_minor: int = 8800,
                    method: PayMethod = PayMethod.PAGE, requested_at: datetime | None = None,
                    expires_in: timedelta = timedelta(minutes=30)) -> PaymentRequest:
    requested_at = requested_at or now_second()
    return PaymentRequest(out_trade_no=order_id, amount_minor=amount_minor, currency="CNY", subject="Tea",
                          method=method, notify_url=notify_url(merchant), return_url=return_url(merchant),
                          expires_at=requested_at + expires_in, requested_at=requested_at)


def refund_request(merchant: MerchantReceiver, order_id: str, out_refund_no: str, amount_minor: int, *,
                   query_id: str, total_minor: int = 8800, submitted_at: datetime | None = None) -> RefundRequest:
    return RefundRequest(out_trade_no=order_id, out_refund_no=out_refund_no, amount_minor=amount_minor,
                         total_minor=total_minor, currency="CNY", notify_url=refund_notify_url(merchant),
                         gateway_trade_no=query_id, requested_at=submitted_at or now_second())


def raw_notification(request: Received) -> RawNotification:
    return RawNotification(body=request.body, headers=request.headers, received_at=request.received_at,
                           content_type=request.headers.get("Content-Type", ""), remote_addr="127.0.0.1")


@dataclass
class Paid:
    """A consume paid on the cashier page: what the browser posted back, and the reference."""

    reference: TradeReference
    returned: dict[str, str]
    query_id: str


class Browser:
    """Submits the shop's form to the sandbox, then the sandbox's pages, as a browser would."""

    def __init__(self) -> None:
        self.http = requests.Session()

    def submit(self, url: str, fields: Mapping[str, str]) -> requests.Response:
        return self.http.post(url, data=dict(fields), timeout=10, allow_redirects=False)

    def open_cashier(self, sandbox: SandboxProcess, response: requests.Response) -> requests.Response:
        assert response.status_code == 302, response.text[:300]
        return self.http.get(sandbox.url(response.headers["Location"]), timeout=10)

    def press(self, cashier: requests.Response, action: str) -> requests.Response:
        return self.http.post(cashier.url, data={"action": action}, timeout=10, allow_redirects=False)

    @staticmethod
    def return_form(page: requests.Response) -> tuple[str, dict[str, str]]:
        """The self-submitting form back to frontUrl: its action and fields."""
        form = lxml.html.fromstring(page.text).get_element_by_id("sandbox-return-form")
        return form.action, {field.name: field.value for field in form.inputs if field.name}

    @staticmethod
    def state(page: requests.Response) -> str:
        (element,) = lxml.html.fromstring(page.text).xpath("//*[@data-testid='sandbox-status']")
        return element.get("data-status")


def cashier_for(sandbox: SandboxProcess, gateway: UnionPayGateway, merchant: MerchantReceiver, order_id: str,
                browser: Browser, **options: Any) -> tuple[requests.Response, PaymentRequest]:
    request = payment_request(merchant, order_id, **options)
    action = gateway.start_payment(request)
    return browser.open_cashier(sandbox, browser.submit(action.url, action.form_fields)), request


def pay(sandbox: SandboxProcess, gateway: UnionPayGateway, merchant: MerchantReceiver, order_id: str,
        **options: Any) -> Paid:
    """Front consume, the cashier page, Pay: returns what the browser carried back."""
    browser = Browser()
    cashier, request = cashier_for(sandbox, gateway, merchant, order_id, browser, **options)
    _action, returned = browser.return_form(browser.press(cashier, "pay"))
    assert request.requested_at is not None
    return Paid(TradeReference(order_id, request.requested_at), returned, returned["queryId"])


class UnionPayTestClient:
    """Our own ACP signer and verifier: requests signed right, or wrong on purpose."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        key, certificate, _ = pkcs12.load_key_and_certificates(keys(sandbox, "merchant_sign.pfx").read_bytes(),
                                                               PFX_PASSWORD.encode())
        assert isinstance(key, rsa.RSAPrivateKey) and certificate is not None
        self.key = key
        self.cert_id = str(certificate.serial_number)
        unionpay = x509.load_pem_x509_certificate(keys(sandbox, "unionpay_sign_cert.pem").read_bytes())
        public_key = unionpay.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        self.unionpay_key = public_key
        self.sandbox = sandbox
        self.http = requests.Session()

    def common(self, **fields: str) -> dict[str, str]:
        return {"version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "accessType": "0", "merId": MER_ID,
                "certId": self.cert_id, **fields}

    def signed(self, fields: Mapping[str, str], *, key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        message = {name: value for name, value in fields.items() if name != "signature"}
        message["signature"] = acp_sign(message, key or self.key)
        return message

    def post(self, path: str, fields: Mapping[str, str], *, sign: bool = True,
             key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        """POST and return the answer's fields, after checking its signature ourselves."""
        body = self.signed(fields, key=key) if sign else dict(fields)
        response = self.http.post(self.sandbox.url(path), data=body, timeout=10)
        assert response.status_code == 200, response.text[:300]
        answer = dict(pair.split("=", 1) for pair in response.content.decode("utf-8").split("&"))
        assert acp_verify(answer, self.unionpay_key), "the sandbox's answer does not verify"
        return answer

    def query(self, order_id: str, txn_time: str | datetime) -> dict[str, str]:
        text = format_txn_time(txn_time) if isinstance(txn_time, datetime) else txn_time
        fields = self.common(txnType="00", txnSubType="00", bizType="000000", orderId=order_id, txnTime=text)
        return self.post("/unionpay/gateway/api/queryTrans.do", fields)

    def front_fields(self, merchant: MerchantReceiver, order_id: str, **changes: str) -> dict[str, str]:
        fields = self.common(txnType="01", txnSubType="01", bizType="000201", channelType="07", orderId=order_id,
                             txnTime=format_txn_time(now_second()), txnAmt="8800", currencyCode="156",
                             frontUrl=return_url(merchant), backUrl=notify_url(merchant))
        return {**fields, **changes}

    def refund_fields(self, merchant: MerchantReceiver, out_refund_no: str, query_id: str, amount: str,
                      **changes: str) -> dict[str, str]:
        fields = self.common(txnType="04", txnSubType="00", bizType="000201", channelType="07", orderId=out_refund_no,
                             txnTime=format_txn_time(now_second()), txnAmt=amount, currencyCode="156",
                             origQryId=query_id, backUrl=refund_notify_url(merchant))
        return {**fields, **changes}
