"""The WeChat Pay API v2 adapter against a stubbed WeChat (fixtures/wechatpay_v2/stub.py).

For each endpoint (§10.3): the happy path, the refusals and their sorting
into final and "ask again", an answer whose sign or XML is not to be
trusted, a timeout; then the notifications (§10.4, §10.5) and the exact
acknowledgement. No network: `responses` answers.
"""
from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from payments.exceptions import (
    AmountMismatch,
    GatewayRejected,
    GatewayUnavailable,
    InvalidNotification,
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
)
from payments.gateways.base import (
    ActionKind,
    CloseOutcome,
    GatewayRefundStatus,
    PayMethod,
    StatementFile,
    StatementLineKind,
    TradeStatus,
)
from payments.gateways.wechatpay_v2 import WechatPayV2Gateway
from payments.gateways.wechatpay_v2.client import MutualTlsAdapter
from tests.gateway_references import refund_ref, trade_ref
from tests.payments.gateways.fixtures.wechatpay_v2 import stub

BEIJING = timezone(timedelta(hours=8))
UNIFIEDORDER = "/pay/unifiedorder"
ORDERQUERY = "/pay/orderquery"
CLOSEORDER = "/pay/closeorder"
REFUND = "/secapi/pay/refund"
REFUNDQUERY = "/pay/refundquery"
DOWNLOADBILL = "/pay/downloadbill"
CODE_URL = "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"
MWEB_URL = "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016&package=1037687096"
EXACT_ACK = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


@pytest.fixture
def wechat():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield stub.WechatV2Stub(mock)


@pytest.fixture
def gateway():
    return stub.make_gateway()


def sign_verifies(fields: dict[str, str], sign_type: str = "MD5") -> bool:
    return fields.get("sign") == stub.wechat_sign(fields, sign_type=sign_type)


# -- configuration ------------------------------------------------------------------


def test_the_test_options_are_a_working_configuration():
    assert WechatPayV2Gateway.configuration_problems(stub.options()) == []
    p12 = stub.options(client_cert_path="", client_key_path="", client_p12_path=str(stub.CLIENT_P12),
                       client_p12_password=stub.P12_PASSWORD)
    assert WechatPayV2Gateway.configuration_problems(p12) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"api_key": "tooshort"}, "api_key: the API v2 key must be 32 letters or digits"),
        ({"api_key": ""}, "api_key is not set"),
        ({"sign_type": "SHA1"}, "sign_type must be MD5 or HMAC-SHA256"),
        ({"api_base": "http://api.example.test/wechatpay"}, "api_base must be an https URL"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle: no file at /nonexistent/ca.pem"),
        ({"client_cert_path": "", "client_key_path": ""}, "no client certificate"),
        ({"client_key_path": "/nonexistent/key.pem"}, "client certificate: no file at /nonexistent/key.pem"),
        ({"client_key_path": str(stub.CLIENT_CERT)}, "client certificate"),
        ({"client_cert_path": "", "client_key_path": "", "client_p12_path": str(stub.CLIENT_P12),
          "client_p12_password": "wrong"}, "the .p12 does not open with this password"),
    ],
)
def test_configuration_problems_name_what_is_wrong(overrides, problem):
    problems = WechatPayV2Gateway.configuration_problems(stub.options(**overrides))
    assert any(problem in found for found in problems), problems


def test_the_mutual_tls_session_keeps_server_verification_and_refuses_plain_http(gateway):
    session = gateway._secure_session
    adapter = session.get_adapter("https://api.mch.weixin.qq.com/secapi/pay/refund")
    assert isinstance(adapter, MutualTlsAdapter)
    context = adapter._context
    assert context.check_hostname is True and context.verify_mode.name == "CERT_REQUIRED"
    with pytest.raises(requests.exceptions.InvalidSchema):
        session.post("http://api.example.test/secapi/pay/refund", data=b"<xml/>")


# -- unifiedorder ---------------------------------------------------------------------


def test_native_order_sends_signed_xml_and_returns_the_code_url(wechat, gateway):
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="NATIVE", prepay_id="wx2016", code_url=CODE_URL))

    action = gateway.start_payment(stub.payment_request())

    assert (action.kind, action.qr_content) == (ActionKind.QR, CODE_URL)
    sent = wechat.sent()
    assert sign_verifies(sent)
    assert "sign_type" not in sent  # MD5 is the default
    assert {name: sent[name] for name in ("appid", "mch_id", "out_trade_no", "total_fee", "trade_type",
                                          "product_id", "fee_type", "spbill_create_ip", "notify_url",
                                          "time_expire", "nonce_str")} == {
        "appid": stub.APPID, "mch_id": stub.MCHID, "out_trade_no": stub.OUT_TRADE_NO, "total_fee": "8800",
        "trade_type": "NATIVE", "product_id": stub.OUT_TRADE_NO, "fee_type": "CNY",
        "spbill_create_ip": "203.0.113.7", "notify_url": "https://shop.example/payments/wechatpay/notify/",
        "time_expire": "20251122103000", "nonce_str": stub.NONCE,
    }  # fmt: skip
    request = wechat.requests[-1]
    assert request.url == f"{stub.API_BASE}{UNIFIEDORDER}"
    assert request.headers["Content-Type"].startswith("text/xml")


def test_hmac_sha256_orders_say_so_and_sign_with_it(wechat):
    gateway = stub.make_gateway(sign_type="HMAC-SHA256")
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="NATIVE", code_url=CODE_URL), sign_type="HMAC-SHA256")

    gateway.start_payment(stub.payment_request())

    sent = wechat.sent()
    assert sent["sign_type"] == "HMAC-SHA256" and len(sent["sign"]) == 64
    assert sign_verifies(sent, "HMAC-SHA256")


def test_an_md5_signed_answer_to_an_hmac_request_is_not_trusted(wechat):
    gateway = stub.make_gateway(sign_type="HMAC-SHA256")
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="NATIVE", code_url=CODE_URL))

    with pytest.raises(ResponseNotVerified):
        gateway.start_payment(stub.payment_request())


def test_mweb_order_sends_scene_info_and_redirects_to_mweb_url_with_the_return(wechat, gateway):
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="MWEB", prepay_id="wx2016", mweb_url=MWEB_URL))

    action = gateway.start_payment(stub.payment_request(method=PayMethod.WAP))

    sent = wechat.sent()
    assert sent["trade_type"] == "MWEB" and "product_id" not in sent
    assert json.loads(sent["scene_info"]) == {
        "h5_info": {"type": "Wap", "wap_url": "https://shop.example", "wap_name": "shop.example"}}
    assert action.kind == ActionKind.REDIRECT
    assert action.url.startswith(MWEB_URL + "&redirect_url=")
    back = parse_qs(urlsplit(action.url).query)["redirect_url"]
    assert back == [f"https://shop.example/payments/wechatpay/return/?out_trade_no={stub.OUT_TRADE_NO}"]


def test_a_deadline_closer_than_five_minutes_is_moved_out_as_v2_requires(wechat, gateway):
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="NATIVE", code_url=CODE_URL))

    gateway.start_payment(stub.payment_request(expires_at=stub.NOW + timedelta(minutes=1)))

    assert wechat.sent()["time_expire"] == "20251122100530"


def test_systemerror_is_asked_again_with_the_identical_request(wechat, gateway):
    wechat.reply(UNIFIEDORDER, stub.refused("SYSTEMERROR", "系统超时"))
    wechat.reply(UNIFIEDORDER, stub.answer(trade_type="NATIVE", code_url=CODE_URL))

    action = gateway.start_payment(stub.payment_request())

    assert action.qr_content == CODE_URL
    first, second = wechat.requests
    assert first.body == second.body


def test_systemerror_every_time_leaves_the_outcome_unknown(wechat, gateway):
    for _ in range(3):
        wechat.reply(UNIFIEDORDER, stub.refused("SYSTEMERROR", "系统超时"))

    with pytest.raises(GatewayUnavailable, match="SYSTEMERROR"):
        gateway.start_payment(stub.payment_request())
    assert len({request.body for request in wechat.requests}) == 1


@pytest.mark.parametrize("code", ["ORDERPAID", "ORDERCLOSED", "OUT_TRADE_NO_USED", "INVALID_REQUEST", "NOAUTH"])
def test_final_refusals_of_an_order(wechat, gateway, code):
    wechat.reply(UNIFIEDORDER, stub.refused(code, "refused"))

    with pytest.raises(GatewayRejected) as refused:
        gateway.start_payment(stub.payment_request())
    assert (refused.value.code, refused.value.sub_code) == ("FAIL", code)
    assert len(wechat.requests) == 1


def test_return_code_fail_is_a_final_unsigned_refusal(wechat, gateway):
    wechat.reply(UNIFIEDORDER, {"return_code": "FAIL", "return_msg": "签名错误"}, sign=False)

    with pytest.raises(GatewayRejected, match="签名错误") as refused:
        gateway.start_payment(stub.payment_request())
    assert refused.value.code == "FAIL"


@pytest.mark.parametrize(
    ("what", "reply"),
    [
        ("a wrong sign", dict(fields=stub.answer(code_url=CODE_URL), key="AnotherApiV2Key0123456789abcdefg")),
        ("no sign", dict(fields=stub.answer(code_url=CODE_URL), sign=False)),
        ("another appid", dict(fields=stub.answer(code_url=CODE_URL, appid="wx0000000000000000"))),
        ("another mch_id", dict(fields=stub.answer(code_url=CODE_URL, mch_id="1900009999"))),
        ("an XXE answer", dict(body=b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>')),
        ("a billion-laughs answer", dict(body=b'<!DOCTYPE x [<!ENTITY a "aa"><!ENTITY b "&a;&a;">]><xml>&b;</xml>')),
        ("a 2 MB answer", dict(body=b"<xml><a>" + b"x" * 2_000_000 + b"</a></xml>")),
        ("a truncated answer", dict(body=b"<xml><return_code><![CDATA[SUCCESS]]></return_code><sig")),
        ("an HTML page", dict(body=b"<html><body>502</body></html>")),
        ("no return_code", dict(fields={"result_code": "SUCCESS"}, sign=False)),
    ],
)
def test_an_answer_that_is_not_verifiably_wechats_is_never_read(wechat, gateway, what, reply):
    wechat.reply(UNIFIEDORDER, **reply)

    with pytest.raises(ResponseNotVerified):
        gateway.start_payment(stub.payment_request())


@pytest.mark.parametrize(
    "failure",
    [requests.exceptions.ConnectTimeout(), requests.exceptions.ReadTimeout(), requests.exceptions.ConnectionError(),
     requests.exceptions.SSLError("certificate verify failed")],
    ids=["connect-timeout", "read-timeout", "connection-error", "tls"],
)
def test_transport_failures_leave_the_outcome_unknown(wechat, gateway, failure):
    wechat.fail(UNIFIEDORDER, failure)

    with pytest.raises(GatewayUnavailable):
        gateway.start_payment(stub.payment_request())
    kwargs = wechat.mock.calls[-1].request.req_kwargs
    assert kwargs["timeout"] == (3.0, 7.0) and kwargs["verify"] == str(stub.TEST_CA)


def test_an_http_error_status_leaves_the_outcome_unknown(wechat, gateway):
    wechat.reply(UNIFIEDORDER, body=b"bad gateway", status=502)

    with pytest.raises(GatewayUnavailable, match="HTTP 502"):
        gateway.start_payment(stub.payment_request())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"method": PayMethod.PAGE}, "Native"),
        ({"currency": "USD"}, "CNY"),
        ({"amount_minor": 0}, "fen"),
        ({"out_trade_no": "bad no!"}, "out_trade_no"),
        ({"notify_url": "https://shop.example/notify/?x=1"}, "query string"),
    ],
)
def test_requests_wechat_cannot_take_are_refused_before_any_call(wechat, gateway, overrides, message):
    with pytest.raises(ValueError, match=message):
        gateway.start_payment(stub.payment_request(**overrides))
    assert wechat.requests == []


# -- orderquery -------------------------------------------------------------------------


def paid_answer(**fields: str) -> dict[str, str]:
    return stub.answer(out_trade_no=stub.OUT_TRADE_NO, trade_state="SUCCESS", transaction_id=stub.TRANSACTION_ID,
                       total_fee="8800", cash_fee="8300", fee_type="CNY", time_end="20251122095830",
                       trade_type="NATIVE", **fields)  # fmt: skip


def test_query_of_a_paid_order(wechat, gateway):
    wechat.reply(ORDERQUERY, paid_answer())

    state = gateway.query_payment(trade_ref(stub.OUT_TRADE_NO))

    assert (state.status, state.amount_minor, state.gateway_trade_no) == (
        TradeStatus.SUCCEEDED, 8800, stub.TRANSACTION_ID)
    assert state.paid_at == datetime(2025, 11, 22, 9, 58, 30, tzinfo=BEIJING)
    assert wechat.sent()["out_trade_no"] == stub.OUT_TRADE_NO and sign_verifies(wechat.sent())


@pytest.mark.parametrize(
    ("trade_state", "status"),
    [("NOTPAY", TradeStatus.PENDING), ("USERPAYING", TradeStatus.PENDING), ("CLOSED", TradeStatus.CLOSED),
     ("REVOKED", TradeStatus.CLOSED), ("PAYERROR", TradeStatus.FAILED)],
)
def test_query_of_an_unpaid_order(wechat, gateway, trade_state, status):
    wechat.reply(ORDERQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, trade_state=trade_state))

    assert gateway.query_payment(trade_ref(stub.OUT_TRADE_NO)).status is status


def test_query_of_a_refunded_order_is_still_paid(wechat, gateway):
    wechat.reply(ORDERQUERY, paid_answer() | {"trade_state": "REFUND"})

    assert gateway.query_payment(trade_ref(stub.OUT_TRADE_NO)).status is TradeStatus.SUCCEEDED


def test_query_of_an_unknown_order_is_not_found(wechat, gateway):
    wechat.reply(ORDERQUERY, stub.refused("ORDERNOTEXIST", "此交易订单号不存在"))

    assert gateway.query_payment(trade_ref(stub.OUT_TRADE_NO)).status is TradeStatus.NOT_FOUND


def test_query_answers_that_are_not_a_result(wechat, gateway):
    wechat.reply(ORDERQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, trade_state="SOMETHING_NEW"))
    with pytest.raises(GatewayUnavailable, match="unknown trade_state"):
        gateway.query_payment(trade_ref(stub.OUT_TRADE_NO))
    wechat.reply(ORDERQUERY, paid_answer() | {"out_trade_no": "SO20251122000999P01"})
    with pytest.raises(ResponseNotVerified, match="out_trade_no"):
        gateway.query_payment(trade_ref(stub.OUT_TRADE_NO))
    wechat.reply(ORDERQUERY, paid_answer() | {"total_fee": "88.00"})
    with pytest.raises(GatewayUnavailable, match="total_fee"):
        gateway.query_payment(trade_ref(stub.OUT_TRADE_NO))
    wechat.reply(ORDERQUERY, stub.refused("SYSTEMERROR"))
    with pytest.raises(GatewayUnavailable, match="SYSTEMERROR"):
        gateway.query_payment(trade_ref(stub.OUT_TRADE_NO))


# -- closeorder -------------------------------------------------------------------------


def test_close_then_query_says_closed(wechat, gateway):
    wechat.reply(CLOSEORDER, stub.answer())
    wechat.reply(ORDERQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, trade_state="CLOSED"))

    assert gateway.close_payment(trade_ref(stub.OUT_TRADE_NO)) is CloseOutcome.CLOSED
    assert [urlsplit(r.url).path for r in wechat.requests] == ["/wechatpay" + CLOSEORDER, "/wechatpay" + ORDERQUERY]


@pytest.mark.parametrize(("code", "outcome"), [("ORDERPAID", CloseOutcome.ALREADY_PAID),
                                               ("ORDERCLOSED", CloseOutcome.CLOSED)])
def test_close_refusals_that_say_where_the_trade_is(wechat, gateway, code, outcome):
    wechat.reply(CLOSEORDER, stub.refused(code))

    assert gateway.close_payment(trade_ref(stub.OUT_TRADE_NO)) is outcome


def test_close_too_soon_or_still_payable_is_asked_again_later(wechat, gateway):
    wechat.reply(CLOSEORDER, stub.refused("SYSTEMERROR", "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟"))
    with pytest.raises(GatewayUnavailable, match="SYSTEMERROR"):
        gateway.close_payment(trade_ref(stub.OUT_TRADE_NO))
    wechat.reply(CLOSEORDER, stub.answer())
    wechat.reply(ORDERQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, trade_state="NOTPAY"))
    with pytest.raises(GatewayUnavailable, match="still pending"):
        gateway.close_payment(trade_ref(stub.OUT_TRADE_NO))


def test_close_waits_five_minutes():
    assert WechatPayV2Gateway.capabilities.close_delay == timedelta(minutes=5)


# -- refund over mutual TLS -----------------------------------------------------------


def refund_answer(**fields: str) -> dict[str, str]:
    defaults = {"transaction_id": stub.TRANSACTION_ID, "out_trade_no": stub.OUT_TRADE_NO,
                "out_refund_no": stub.OUT_REFUND_NO, "refund_id": stub.REFUND_ID, "refund_fee": "3000",
                "total_fee": "8800", "cash_fee": "8300"}  # fmt: skip
    return stub.answer(**{**defaults, **fields})


def test_refund_goes_over_the_mutual_tls_session_and_is_processing(wechat, gateway):
    wechat.reply(REFUND, refund_answer())

    state = gateway.refund(stub.refund_request())

    assert (state.status, state.amount_minor, state.gateway_refund_id) == (
        GatewayRefundStatus.PROCESSING, 3000, stub.REFUND_ID)
    sent = wechat.sent()
    assert sign_verifies(sent)
    assert {name: sent[name] for name in ("out_trade_no", "out_refund_no", "total_fee", "refund_fee",
                                          "refund_fee_type", "refund_desc", "notify_url")} == {
        "out_trade_no": stub.OUT_TRADE_NO, "out_refund_no": stub.OUT_REFUND_NO, "total_fee": "8800",
        "refund_fee": "3000", "refund_fee_type": "CNY", "refund_desc": "Customer returned one item",
        "notify_url": "https://shop.example/refunds/wechatpay/notify/",
    }  # fmt: skip
    assert wechat.requests[-1].url == f"{stub.API_BASE}{REFUND}"
    assert wechat.mock.calls[-1].request.req_kwargs["verify"] == str(stub.TEST_CA)


def test_refund_with_the_p12_certificate(wechat):
    gateway = stub.make_gateway(client_cert_path="", client_key_path="", client_p12_path=str(stub.CLIENT_P12),
                                client_p12_password=stub.P12_PASSWORD)
    wechat.reply(REFUND, refund_answer())

    assert gateway.refund(stub.refund_request()).status is GatewayRefundStatus.PROCESSING
    assert isinstance(gateway._secure_session.get_adapter(stub.API_BASE), MutualTlsAdapter)


@pytest.mark.parametrize("code", ["SYSTEMERROR", "BIZERR_NEED_RETRY", "NOTENOUGH", "FREQUENCY_LIMITED"])
def test_refund_refusals_kept_for_a_later_retry_under_the_same_number(wechat, gateway, code):
    wechat.reply(REFUND, stub.refused(code))
    wechat.reply(REFUND, refund_answer())

    with pytest.raises(GatewayUnavailable, match=code):
        gateway.refund(stub.refund_request())
    state = gateway.refund(stub.refund_request())

    assert state.status is GatewayRefundStatus.PROCESSING
    first, second = (stub.request_fields(request) for request in wechat.requests)
    assert {k: v for k, v in first.items() if k not in ("nonce_str", "sign")} == {
        k: v for k, v in second.items() if k not in ("nonce_str", "sign")}


@pytest.mark.parametrize("code", ["ERROR", "USER_ACCOUNT_ABNORMAL", "TRADE_OVERDUE", "INVALID_TRANSACTIONID"])
def test_final_refund_refusals(wechat, gateway, code):
    wechat.reply(REFUND, stub.refused(code, "refused"))

    with pytest.raises(GatewayRejected) as refused:
        gateway.refund(stub.refund_request())
    assert refused.value.sub_code == code


def test_a_refund_answer_about_another_amount_or_refund_is_not_taken(wechat, gateway):
    wechat.reply(REFUND, refund_answer(refund_fee="8800"))
    with pytest.raises(AmountMismatch):
        gateway.refund(stub.refund_request())
    wechat.reply(REFUND, refund_answer(out_refund_no="SO20251122000123R99"))
    with pytest.raises(ResponseNotVerified, match="out_refund_no"):
        gateway.refund(stub.refund_request())


def test_a_refund_larger_than_the_payment_is_refused_before_any_call(wechat, gateway):
    with pytest.raises(ValueError, match="more than the payment"):
        gateway.refund(stub.refund_request(amount_minor=9000))
    assert wechat.requests == []


# -- refundquery -------------------------------------------------------------------------


def listed(status: str, index: int = 0, out_refund_no: str = stub.OUT_REFUND_NO, **extra: str) -> dict[str, str]:
    fields = {f"out_refund_no_{index}": out_refund_no, f"refund_id_{index}": stub.REFUND_ID + str(index),
              f"refund_fee_{index}": "3000", f"refund_status_{index}": status}  # fmt: skip
    fields.update(extra)
    return fields


@pytest.mark.parametrize(
    ("status", "expected"),
    [("PROCESSING", GatewayRefundStatus.PROCESSING), ("REFUNDCLOSE", GatewayRefundStatus.CLOSED),
     ("CHANGE", GatewayRefundStatus.ABNORMAL)],
)
def test_refund_query_states(wechat, gateway, status, expected):
    wechat.reply(REFUNDQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, refund_count="1", **listed(status)))

    state = gateway.query_refund(refund_ref(stub.OUT_TRADE_NO, stub.OUT_REFUND_NO))

    assert state.status is expected
    assert wechat.sent()["out_refund_no"] == stub.OUT_REFUND_NO


def test_refund_query_reads_the_listed_refund_it_asked_for(wechat, gateway):
    fields = {**listed("PROCESSING", 0, "SO20251122000123R00"),
              **listed("SUCCESS", 1, refund_success_time_1="2025-11-22 09:59:10")}
    wechat.reply(REFUNDQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, refund_count="2", **fields))

    state = gateway.query_refund(refund_ref(stub.OUT_TRADE_NO, stub.OUT_REFUND_NO))

    assert (state.status, state.amount_minor, state.gateway_refund_id) == (
        GatewayRefundStatus.SUCCEEDED, 3000, stub.REFUND_ID + "1")
    assert state.refunded_at == datetime(2025, 11, 22, 9, 59, 10, tzinfo=BEIJING)


def test_refund_query_of_an_unknown_refund_is_not_found(wechat, gateway):
    wechat.reply(REFUNDQUERY, stub.refused("REFUNDNOTEXIST"))

    state = gateway.query_refund(refund_ref(stub.OUT_TRADE_NO, stub.OUT_REFUND_NO))
    assert state.status is GatewayRefundStatus.NOT_FOUND


def test_refund_query_answers_about_something_else_are_not_taken(wechat, gateway):
    wechat.reply(REFUNDQUERY, stub.answer(out_trade_no="SO20251122000999P01", refund_count="1",
                                          **listed("SUCCESS")))
    with pytest.raises(ResponseNotVerified, match="out_trade_no"):
        gateway.query_refund(refund_ref(stub.OUT_TRADE_NO, stub.OUT_REFUND_NO))
    wechat.reply(REFUNDQUERY, stub.answer(out_trade_no=stub.OUT_TRADE_NO, refund_count="1",
                                          **listed("SUCCESS", out_refund_no="OTHER")))
    with pytest.raises(ResponseNotVerified, match="does not list"):
        gateway.query_refund(refund_ref(stub.OUT_TRADE_NO, stub.OUT_REFUND_NO))


# -- downloadbill: the v3 file, the v3 parser ---------------------------------------------

BILL = (
    "\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,"
    "应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,"
    "订单金额,申请退款金额,费率备注\r\n"
    f"`2025-11-21 09:58:30,`{stub.APPID},`{stub.MCHID},`0,`,`{stub.TRANSACTION_ID},`{stub.OUT_TRADE_NO},`oUpF8,"
    "`NATIVE,`SUCCESS,`CFT,`CNY,`88.00,`0.00,`0,`0,`0.00,`0.00,`,`,`Tea, green,`,`0.52800,`0.60%,`88.00,`0.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`1,`88.00,`0.00,`0.00,`0.52800,`88.00,`0.00\r\n"
).encode()


@pytest.mark.parametrize("compressed", [True, False])
def test_the_bill_downloads_and_parses_with_the_v3_parser(wechat, gateway, compressed):
    wechat.reply(DOWNLOADBILL, body=gzip.compress(BILL) if compressed else BILL)

    statement = gateway.fetch_statement(datetime(2025, 11, 21, tzinfo=UTC).date())

    assert statement.content == BILL
    sent = wechat.sent()
    assert (sent["bill_date"], sent["bill_type"], sent["tar_type"]) == ("20251121", "ALL", "GZIP")
    (line,) = list(gateway.parse_statement(statement))
    assert (line.kind, line.out_trade_no, line.amount_minor, line.fee_minor) == (
        StatementLineKind.PAYMENT, stub.OUT_TRADE_NO, 8800, 53)


def test_no_bill_is_the_same_refusal_as_v3s_and_not_ready_is_asked_again(wechat, gateway):
    day = datetime(2025, 11, 21, tzinfo=UTC).date()
    wechat.reply(DOWNLOADBILL, {"return_code": "FAIL", "return_msg": "No Bill Exist", "error_code": "20002"},
                 sign=False)
    with pytest.raises(NoStatement) as refused:
        gateway.fetch_statement(day)
    assert refused.value.reason == NoStatementReason.NONE
    wechat.reply(DOWNLOADBILL, {"return_code": "FAIL", "return_msg": "Bill Creating"}, sign=False)
    with pytest.raises(NoStatement, match="not ready") as not_ready:
        gateway.fetch_statement(day)
    assert not_ready.value.reason == NoStatementReason.NOT_YET


def test_a_bill_that_does_not_add_up_is_refused_by_the_parser(gateway):
    from payments.exceptions import StatementTotalsMismatch

    broken = BILL.replace(b"`1,`88.00,", b"`1,`99.00,")
    with pytest.raises(StatementTotalsMismatch):
        list(gateway.parse_statement(StatementFile(day=datetime(2025, 11, 21).date(), filename="b.csv", content=broken)))


# -- the payment notification (§10.4) --------------------------------------------------


def test_a_signed_payment_notification(gateway):
    notification = gateway.parse_notification(stub.payment_raw())

    assert (notification.out_trade_no, notification.status, notification.amount_minor) == (
        stub.OUT_TRADE_NO, TradeStatus.SUCCEEDED, 8800)  # total_fee, not cash_fee
    assert notification.gateway_trade_no == stub.TRANSACTION_ID
    assert notification.dedupe_key == f"{stub.TRANSACTION_ID}:SUCCESS"
    assert notification.paid_at == datetime(2025, 11, 22, 9, 58, 30, tzinfo=BEIJING)


def test_an_hmac_sha256_notification_is_verified_with_the_algorithm_it_names(gateway):
    raw = stub.payment_raw(stub.payment_fields(sign_type="HMAC-SHA256"), sign_type="HMAC-SHA256")

    assert gateway.parse_notification(raw).amount_minor == 8800


@pytest.mark.parametrize(
    ("what", "raw", "reason"),
    [
        ("a wrong key", stub.payment_raw(key="AnotherApiV2Key0123456789abcdefg"), "does not verify"),
        ("a tampered amount", stub.raw(stub.xml_of({**stub.signed(stub.payment_fields()), "total_fee": "1"})),
         "does not verify"),
        ("no sign", stub.raw(stub.xml_of(stub.payment_fields())), "sign field is missing"),
        ("HMAC named, MD5 signed", stub.payment_raw(stub.payment_fields(sign_type="HMAC-SHA256")),
         "does not verify"),
        ("an unknown sign_type", stub.payment_raw(stub.payment_fields(sign_type="RSA")), "neither MD5"),
        ("another appid", stub.payment_raw(stub.payment_fields(appid="wx0000000000000000")), "appid"),
        ("another mch_id", stub.payment_raw(stub.payment_fields(mch_id="1900009999")), "mch_id"),
        ("result_code FAIL", stub.payment_raw(stub.payment_fields(result_code="FAIL", err_code="X")),
         "result_code"),
        ("return_code FAIL", stub.raw(b"<xml><return_code>FAIL</return_code></xml>"), "return_code"),
        ("a decimal total_fee", stub.payment_raw(stub.payment_fields(total_fee="88.00")), "total_fee"),
        ("another currency", stub.payment_raw(stub.payment_fields(fee_type="USD")), "fee_type"),
        ("no time_end", stub.payment_raw(stub.payment_fields(time_end="")), "time_end"),
        ("XXE", stub.raw(b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>'),
         "markup declarations"),
        ("not UTF-8", stub.raw("<xml><a>茶</a></xml>".encode("gbk")), "not UTF-8"),
    ],
)
def test_payment_notifications_that_are_refused(gateway, what, raw, reason):
    with pytest.raises(InvalidNotification, match=reason):
        gateway.parse_notification(raw)


def test_the_acknowledgement_is_exactly_wechats_and_the_refusal_a_4xx_fail(gateway):
    ack = gateway.acknowledge()
    assert (ack.status, ack.body) == (200, EXACT_ACK)
    assert ack.content_type.startswith("text/xml")
    nack = gateway.reject("the sign does not verify")
    assert nack.status == 400
    assert nack.body.startswith(b"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg>")
    assert b"sign" not in nack.body  # the reason is never told to the sender


# -- the refund notification (§10.5) ----------------------------------------------------


def test_an_encrypted_refund_notification(gateway):
    notification = gateway.parse_refund_notification(stub.refund_raw())

    assert (notification.out_trade_no, notification.out_refund_no, notification.status) == (
        stub.OUT_TRADE_NO, stub.OUT_REFUND_NO, GatewayRefundStatus.SUCCEEDED)
    assert (notification.amount_minor, notification.total_minor) == (3000, 8800)
    assert notification.gateway_refund_id == stub.REFUND_ID
    assert notification.dedupe_key == f"{stub.OUT_REFUND_NO}:SUCCESS"
    assert notification.refunded_at == datetime(2025, 11, 22, 9, 59, 10, tzinfo=BEIJING)


@pytest.mark.parametrize(("status", "expected"), [("CHANGE", GatewayRefundStatus.ABNORMAL),
                                                  ("REFUNDCLOSE", GatewayRefundStatus.CLOSED)])
def test_refund_notifications_of_other_ends(gateway, status, expected):
    raw = stub.refund_raw(stub.refund_info(refund_status=status, success_time=""))

    notification = gateway.parse_refund_notification(raw)
    assert (notification.status, notification.refunded_at) == (expected, None)


@pytest.mark.parametrize(
    ("what", "raw", "reason"),
    [
        ("another key", stub.refund_raw(key="AnotherApiV2Key0123456789abcdefg"), "req_info"),
        ("broken padding", stub.refund_raw(req_info=stub.encrypt_req_info(b"<root>" + b"x" * 19 + b"</root>",
                                                                          padding=False)), "PKCS#7"),
        ("not base64", stub.refund_raw(req_info="%%%"), "not base64"),
        ("no req_info", stub.refund_raw(req_info=""), "req_info is missing"),
        ("another appid", stub.refund_raw(appid="wx0000000000000000"), "appid"),
        ("another mch_id", stub.refund_raw(mch_id="1900009999"), "mch_id"),
        ("return_code FAIL", stub.refund_raw(return_code="FAIL"), "return_code"),
        ("decrypted garbage", stub.refund_raw(req_info=stub.encrypt_req_info(b"not xml at all")), "not readable"),
        ("a decrypted DOCTYPE", stub.refund_raw(req_info=stub.encrypt_req_info(
            b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><root>&e;</root>')), "markup declarations"),
        ("still processing", stub.refund_raw(stub.refund_info(refund_status="PROCESSING")), "not a refund result"),
        ("a decimal amount", stub.refund_raw(stub.refund_info(refund_fee="30.00")), "refund_fee"),
        ("success without a time", stub.refund_raw(stub.refund_info(success_time="")), "success_time"),
    ],
)
def test_refund_notifications_that_are_refused(gateway, what, raw, reason):
    with pytest.raises(InvalidNotification, match=reason):
        gateway.parse_refund_notification(raw)
