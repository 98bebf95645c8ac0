"""The sandbox's WeChat Pay API v2 mode on its own: XML with the v2 key, mutual TLS, notifications.

Two clients: our own signer (wechatpay_v2_client.py) for wrong calls, and
the shop's WechatPayV2Gateway for the right ones; they agree with each
other and with the published sign vector, so the sandbox cannot share a
mistake with the adapter unnoticed.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
import requests
from Cryptodome.Cipher import AES
from Cryptodome.Util.Padding import unpad
from cryptography import x509
from django.utils import timezone

from payments.exceptions import GatewayRejected, GatewayUnavailable, NoStatement, NoStatementReason
from payments.gateways.base import (
    CloseOutcome,
    GatewayRefundStatus,
    PaymentRequest,
    PayMethod,
    RefundRequest,
    TradeStatus,
)
from payments.gateways.wechatpay.formats import BEIJING
from sandbox.wechatpay.v2 import envelope
from tests.gateway_references import refund_ref, trade_ref
from tests.payments.gateways.fixtures.wechatpay_v2 import stub as unit_stub
from tests.sandbox.receiver import MerchantReceiver, Received
from tests.sandbox.wechatpay_v2_client import (
    EXACT_ACK,
    client_cert,
    fields_of,
    make_v2_gateway,
    post,
    signed_body,
    tls_file,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

# §10.2's official example.
VECTOR = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test",
          "nonce_str": "ibuaiVcKdpRxkhJA"}  # fmt: skip
VECTOR_KEY = "192006250b4c09247ec02edce69f6a2d"


def new_out_trade_no() -> str:
    return "V2" + timezone.now().strftime("%H%M%S%f")


def order_request(out_trade_no: str, notify_url: str, method: PayMethod = PayMethod.QR) -> PaymentRequest:
    return PaymentRequest(out_trade_no=out_trade_no, amount_minor=1999, currency="CNY", subject="Bamboo notebook",
                          method=method, notify_url=notify_url, return_url=notify_url.replace("notify", "return"),
                          expires_at=timezone.now() + timedelta(minutes=30), client_ip="198.51.100.4")  # fmt: skip


def test_the_sandbox_signs_the_published_vector():
    assert envelope.sign(VECTOR, VECTOR_KEY, envelope.MD5) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert envelope.sign(VECTOR, VECTOR_KEY, envelope.HMAC_SHA256) == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6")


def test_the_sandbox_req_info_decrypts_with_an_independent_aes():
    sealed = envelope.encrypt_refund_info(b"<root><a>1</a></root>", "SandboxApiV2KeyNotASecret0000002")
    key = hashlib.md5(b"SandboxApiV2KeyNotASecret0000002").hexdigest().encode()
    plain = unpad(AES.new(key, AES.MODE_ECB).decrypt(base64.b64decode(sealed)), 16)
    assert plain == b"<root><a>1</a></root>"


@pytest.mark.parametrize(
    ("what", "body", "message"),
    [
        ("no sign", signed_body({"out_trade_no": "V2NOSIGN01"}, with_sign=False), "签名错误"),
        ("another key", signed_body({"out_trade_no": "V2NOSIGN01"}, key="AnotherApiV2Key0123456789abcdefg"),
         "签名错误"),
        ("HMAC named, MD5 signed", signed_body({"out_trade_no": "V2NOSIGN01", "sign_type": "HMAC-SHA256"}),
         "签名错误"),
        ("a DOCTYPE", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>', "XML格式错误"),
        ("not UTF-8", "<xml><body>茶</body></xml>".encode("gbk"), "编码格式错误"),
        ("empty", b"", "post数据为空"),
        ("another merchant", signed_body({"mch_id": "1900009999", "out_trade_no": "V2NOSIGN01"}), "商户号"),
    ],
)
def test_calls_that_are_not_taken_answer_return_code_fail_unsigned(sandbox, what, body, message):
    response = post(sandbox, "/pay/orderquery", body)

    assert response.status_code == 200
    answer = fields_of(response.content)
    assert answer["return_code"] == "FAIL" and message in answer["return_msg"], (what, answer)
    assert "sign" not in answer


def test_a_good_call_is_answered_signed_with_its_sign_type(sandbox):
    for sign_type in ("MD5", "HMAC-SHA256"):
        answer = fields_of(post(sandbox, "/pay/orderquery", signed_body({"out_trade_no": "V2UNKNOWN1"},
                                                                         sign_type=sign_type)).content)
        assert (answer["return_code"], answer["result_code"], answer["err_code"]) == ("SUCCESS", "FAIL",
                                                                                       "ORDERNOTEXIST")
        assert answer["sign"] == unit_stub.wechat_sign(answer, "SandboxApiV2KeyNotASecret0000002", sign_type)


def test_the_https_listener_presents_a_certificate_of_the_sandbox_ca_for_loopback(sandbox):
    body = signed_body({"out_trade_no": "V2UNKNOWN1"})
    assert post(sandbox, "/pay/orderquery", body).status_code == 200
    # Verified against the usual public CAs it is refused: the check is real.
    with pytest.raises(requests.exceptions.SSLError):
        post(sandbox, "/pay/orderquery", body, verify=True)
    certificate = x509.load_pem_x509_certificate(tls_file(sandbox, "server_cert.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(address) for address in names.get_values_for_type(x509.IPAddress)]


def refund_body(out_trade_no: str, out_refund_no: str) -> bytes:
    return signed_body({"out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "total_fee": "1999",
                        "refund_fee": "100"})  # fmt: skip


def test_secapi_refund_needs_a_client_certificate_from_the_sandbox_ca(sandbox, tmp_path):
    gateway = make_v2_gateway(sandbox)
    out_trade_no = new_out_trade_no()
    gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")

    # No certificate: TLS lets it in, the refund is refused.
    without = fields_of(post(sandbox, "/secapi/pay/refund", refund_body(out_trade_no, out_trade_no + "R1")).content)
    assert without["return_code"] == "FAIL" and "证书" in without["return_msg"]
    # Plain HTTP can carry no certificate either.
    plain = fields_of(post(sandbox, "/secapi/pay/refund", refund_body(out_trade_no, out_trade_no + "R1"),
                           secure_base=False).content)  # fmt: skip
    assert plain["return_code"] == "FAIL" and "证书" in plain["return_msg"]
    # A certificate from another CA fails the handshake itself.
    with pytest.raises(requests.exceptions.SSLError):
        post(sandbox, "/secapi/pay/refund", refund_body(out_trade_no, out_trade_no + "R1"),
             cert=(str(unit_stub.CLIENT_CERT), str(unit_stub.CLIENT_KEY)))
    assert sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")["refunds"] == []

    # The sandbox's own client certificate: the refund is taken.
    taken = fields_of(post(sandbox, "/secapi/pay/refund", refund_body(out_trade_no, out_trade_no + "R1"),
                           cert=client_cert(sandbox)).content)  # fmt: skip
    assert (taken["return_code"], taken["result_code"], taken["refund_fee"]) == ("SUCCESS", "SUCCESS", "100")
    assert sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")["refunds"][0]["amount_minor"] == 100


def test_the_p12_is_the_same_certificate_and_opens_with_the_mchid(sandbox):
    from cryptography.hazmat.primitives.serialization import pkcs12

    key, certificate, _chain = pkcs12.load_key_and_certificates(
        tls_file(sandbox, "apiclient_cert.p12").read_bytes(), b"1900000001")
    assert certificate == x509.load_pem_x509_certificate(tls_file(sandbox, "apiclient_cert.pem").read_bytes())
    gateway = make_v2_gateway(sandbox, client_cert_path="", client_key_path="",
                              client_p12_path=str(tls_file(sandbox, "apiclient_cert.p12")),
                              client_p12_password="1900000001")  # fmt: skip
    out_trade_no = new_out_trade_no()
    gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")

    state = gateway.refund(RefundRequest(out_trade_no=out_trade_no, out_refund_no=out_trade_no + "R1",
                                         amount_minor=1999, total_minor=1999, currency="CNY"))  # fmt: skip
    assert state.status is GatewayRefundStatus.PROCESSING


def test_the_shops_adapter_pays_queries_refunds_and_reads_the_refund(sandbox):
    gateway = make_v2_gateway(sandbox)
    out_trade_no = new_out_trade_no()
    action = gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))

    assert action.qr_content.startswith(sandbox.url("/wechatpay/scan/"))
    trade = sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")
    assert (trade["trade_type"], trade["amount_minor"]) == ("NATIVE", 1999)
    assert gateway.query_payment(trade_ref(out_trade_no)).status is TradeStatus.PENDING
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")
    paid = gateway.query_payment(trade_ref(out_trade_no))
    assert (paid.status, paid.amount_minor) == (TradeStatus.SUCCEEDED, 1999)
    assert paid.gateway_trade_no == sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")["transaction_id"]

    request = RefundRequest(out_trade_no=out_trade_no, out_refund_no=out_trade_no + "R1", amount_minor=999,
                            total_minor=1999, currency="CNY")  # fmt: skip
    assert gateway.refund(request).status is GatewayRefundStatus.PROCESSING
    assert gateway.refund(request).status is GatewayRefundStatus.PROCESSING  # the same number: once
    first = gateway.query_refund(refund_ref(out_trade_no, request.out_refund_no))
    second = gateway.query_refund(refund_ref(out_trade_no, request.out_refund_no))
    assert (first.status, second.status) == (GatewayRefundStatus.PROCESSING, GatewayRefundStatus.SUCCEEDED)
    trade = sandbox.control("GET", f"wechatpay/trades/{out_trade_no}")
    assert (trade["refunded_minor"], trade["refund_count"], trade["refunds"][0]["requests"]) == (999, 1, 2)
    with pytest.raises(GatewayRejected) as conflict:
        gateway.refund(RefundRequest(out_trade_no=out_trade_no, out_refund_no=request.out_refund_no,
                                     amount_minor=500, total_minor=1999, currency="CNY"))  # fmt: skip
    assert conflict.value.sub_code == "ERROR"


def test_fault_rules_of_the_v3_targets_apply_in_v2_spelling(sandbox):
    gateway = make_v2_gateway(sandbox)
    out_trade_no = new_out_trade_no()
    sandbox.control("POST", "faults", {"target": "wechatpay.native", "mode": "error", "code": "SYSTEM_ERROR",
                                       "count": 3})  # fmt: skip
    with pytest.raises(GatewayUnavailable, match="SYSTEMERROR"):
        gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))
    sandbox.control("POST", "faults", {"target": "wechatpay.native", "mode": "error", "code": "SYSTEM_ERROR"})
    action = gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))
    assert action.qr_content  # asked again with the identical request, and got it
    sandbox.control("POST", "faults", {"target": "wechatpay.query", "mode": "error", "code": "ORDER_NOT_EXIST"})
    assert gateway.query_payment(trade_ref(out_trade_no)).status is TradeStatus.NOT_FOUND
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")
    sandbox.control("POST", "faults", {"target": "wechatpay.refund", "mode": "error", "code": "NOTENOUGH"})
    request = RefundRequest(out_trade_no=out_trade_no, out_refund_no=out_trade_no + "R1", amount_minor=1999,
                            total_minor=1999, currency="CNY")  # fmt: skip
    with pytest.raises(GatewayUnavailable, match="NOTENOUGH"):
        gateway.refund(request)
    assert gateway.refund(request).status is GatewayRefundStatus.PROCESSING


def test_closeorder_waits_five_minutes_and_voids_a_number_never_ordered(sandbox):
    sandbox.control("POST", "settings", {"time_scale": 1.0})
    gateway = make_v2_gateway(sandbox)
    out_trade_no = new_out_trade_no()
    gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))

    with pytest.raises(GatewayUnavailable, match="SYSTEMERROR"):
        gateway.close_payment(trade_ref(out_trade_no))
    sandbox.control("POST", "settings", {"clock_offset_seconds": 301})
    assert gateway.close_payment(trade_ref(out_trade_no)) is CloseOutcome.CLOSED
    assert gateway.close_payment(trade_ref(out_trade_no)) is CloseOutcome.CLOSED  # ORDERCLOSED
    assert gateway.close_payment(trade_ref("V2NEVERORDERED1")) is CloseOutcome.NOT_FOUND
    with pytest.raises(GatewayRejected) as refused:
        gateway.start_payment(order_request("V2NEVERORDERED1", "http://127.0.0.1:9/payments/wechatpay/notify/"))
    assert refused.value.sub_code == "ORDERCLOSED"


# -- notifications --------------------------------------------------------------------


def v2_reference(request: Received) -> str | None:
    try:
        return fields_of(request.body).get("out_trade_no") or "refund"
    except Exception:
        return None


def test_a_v2_notification_is_acknowledged_only_by_the_exact_xml(sandbox):
    answers = {0: (200, b"success"), 1: (200, b'{"code": "SUCCESS"}'), 2: (200, EXACT_ACK + b"\nstray"),
               3: (500, EXACT_ACK), 4: (200, EXACT_ACK)}  # fmt: skip
    receiver = MerchantReceiver(lambda request, earlier: answers[earlier], reference=v2_reference).start()
    try:
        gateway = make_v2_gateway(sandbox)
        out_trade_no = new_out_trade_no()
        gateway.start_payment(order_request(out_trade_no, receiver.wechatpay_notify_url))
        sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")

        sandbox.wait_for(lambda: [n for n in sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}")[
            "notifications"] if n["status"] == "delivered"], timeout=20, what="delivery")
        posts = receiver.notifications(out_trade_no)
    finally:
        receiver.stop()
    assert len(posts) == 5
    fields = fields_of(posts[0].body)
    assert fields["sign"] == unit_stub.wechat_sign(fields, "SandboxApiV2KeyNotASecret0000002")
    assert (fields["total_fee"], fields["result_code"], fields["mch_id"]) == ("1999", "SUCCESS", "1900000001")
    # A fresh nonce and sign on every send.
    assert len({fields_of(p.body)["nonce_str"] for p in posts}) == 5
    (notification,) = sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}")["notifications"]
    assert [d["acknowledged"] for d in notification["deliveries"]] == [False, False, False, False, True]


def test_refund_notifications_carry_req_info_under_the_md5_of_the_key(sandbox):
    receiver = MerchantReceiver(lambda request, earlier: (200, EXACT_ACK), reference=v2_reference).start()
    try:
        gateway = make_v2_gateway(sandbox)
        out_trade_no = new_out_trade_no()
        notify = receiver.wechatpay_notify_url
        gateway.start_payment(order_request(out_trade_no, notify))
        sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")
        gateway.refund(RefundRequest(out_trade_no=out_trade_no, out_refund_no=out_trade_no + "R1", amount_minor=500,
                                     total_minor=1999, currency="CNY",
                                     notify_url=receiver.wechatpay_refund_notify_url))  # fmt: skip
        sandbox.control("POST", f"wechatpay/refunds/{out_trade_no}R1/settle", {"status": "SUCCESS"})
        (refund_post,) = receiver.wait_for_posts(2)[1:]
    finally:
        receiver.stop()
    outer = fields_of(refund_post.body)
    assert set(outer) == {"return_code", "appid", "mch_id", "nonce_str", "req_info"}  # no sign
    raw = unit_stub.raw(refund_post.body)
    notification = gateway.parse_refund_notification(raw)
    assert (notification.out_refund_no, notification.status, notification.amount_minor, notification.total_minor) == (
        f"{out_trade_no}R1", GatewayRefundStatus.SUCCEEDED, 500, 1999)


def test_the_v2_bill_is_the_v3_file(sandbox):
    gateway = make_v2_gateway(sandbox)
    out_trade_no = new_out_trade_no()
    gateway.start_payment(order_request(out_trade_no, "http://127.0.0.1:9/payments/wechatpay/notify/"))
    sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")
    sandbox.control("POST", "settings", {"clock_offset_seconds": 86400})
    day = timezone.now().astimezone(BEIJING).date()

    statement = gateway.fetch_statement(day)

    (line,) = [line for line in gateway.parse_statement(statement) if line.out_trade_no == out_trade_no]
    assert line.amount_minor == 1999
    with pytest.raises(NoStatement) as none:
        gateway.fetch_statement(day - timedelta(days=30))
    assert none.value.reason == NoStatementReason.NONE
    with pytest.raises(NoStatement, match="Bill Creating") as creating:
        gateway.fetch_statement(day + timedelta(days=1))
    assert creating.value.reason == NoStatementReason.NOT_YET

