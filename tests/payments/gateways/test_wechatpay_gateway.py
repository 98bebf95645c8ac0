"""The WeChat Pay v3 endpoints the adapter calls (§6), their errors (§8) and decisions.

For each endpoint: the happy path, a decline, a timeout, a bad answer
signature, a 5xx SYSTEM_ERROR, and where it applies a duplicate and the
not-found mapping. No network: `responses` answers, signed by the stub.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from payments.exceptions import (
    AmountMismatch,
    GatewayNotConfigured,
    GatewayRejected,
    GatewayUnavailable,
    InvalidNotification,
    ResponseNotVerified,
)
from payments.gateways.base import (
    ActionKind,
    CloseOutcome,
    GatewayRefundStatus,
    PaymentAction,
    PayMethod,
    RefundState,
    TradeState,
    TradeStatus,
)
from payments.gateways.wechatpay import WechatPayGateway
from tests.gateway_references import refund_ref, trade_ref
from tests.payments.gateways.fixtures.wechatpay import stub

BEIJING = timezone(timedelta(hours=8))
NATIVE = "/v3/pay/transactions/native"
H5 = "/v3/pay/transactions/h5"
QUERY = "/v3/pay/transactions/out-trade-no/SO20251122000123P01"
CLOSE = "/v3/pay/transactions/out-trade-no/SO20251122000123P01/close"
REFUNDS = "/v3/refund/domestic/refunds"
REFUND = "/v3/refund/domestic/refunds/SO20251122000123R01"
CODE_URL = "weixin://wxpay/bizpayurl?pr=p4lpSuKzz"


@pytest.fixture
def wechat():
    """Intercept all HTTP; an unregistered URL fails, and every registered answer must be asked for."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield stub.WechatStub(mock)


@pytest.fixture
def gateway():
    return stub.make_gateway()


def sent_json(wechat, index=-1):
    return json.loads(wechat.requests[index].body)


def unavailable_cases(method: str, path: str):
    """Transport failures and busy answers: the outcome is unknown (§8, §11)."""
    return [
        pytest.param(lambda w: w.fail(method, path, requests.exceptions.ConnectTimeout()), "timed out",
                     id="connect-timeout"),
        pytest.param(lambda w: w.fail(method, path, requests.exceptions.ReadTimeout()), "timed out",
                     id="read-timeout"),
        pytest.param(lambda w: w.fail(method, path, requests.exceptions.ConnectionError()), "ConnectionError",
                     id="connection-error"),
        pytest.param(lambda w: w.error(method, path, 500, "SYSTEM_ERROR", "系统错误"), "SYSTEM_ERROR",
                     id="500-system-error"),
        pytest.param(lambda w: w.error(method, path, 429, "FREQUENCY_LIMITED"), "FREQUENCY_LIMITED",
                     id="429-frequency-limited"),
        pytest.param(lambda w: w.mock.add(method, f"{stub.API_BASE}{path}", status=502, body=b"<html>bad"),
                     "HTTP 502", id="502-html"),
    ]


# -- configuration --------------------------------------------------------------


def test_the_gateway_declares_itself():
    assert WechatPayGateway.code == "wechatpay"
    assert str(WechatPayGateway.display_name) == "WeChat Pay"
    assert WechatPayGateway.capabilities.methods == frozenset({PayMethod.QR, PayMethod.WAP})
    assert WechatPayGateway.capabilities.close_delay == timedelta(minutes=5)


def test_complete_options_have_no_problems():
    assert WechatPayGateway.configuration_problems(stub.options()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"mchid": ""}, "mchid is not set"),
        ({"private_key_path": "/nonexistent/key.pem"}, "private_key_path: no file at /nonexistent/key.pem"),
        ({"private_key_path": str(stub.PLATFORM_PUBLIC_KEY)}, "private_key_path:"),
        ({"public_key_path": str(stub.MERCHANT_PRIVATE_KEY)}, "public_key_path:"),
        ({"api_v3_key": "TooShort"}, "exactly 32 bytes"),
        ({"api_v3_key": "TestOnlyApiV3Key0123456789abcde密"}, "32 ASCII"),
        ({"cert_serial_no": "3775B6A45ACD"}, "cert_serial_no"),
        ({"cert_serial_no": "Z775B6A45ACD588826D15E583A95F5DD00000001"}, "cert_serial_no"),
        ({"public_key_id": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"}, "PUB_KEY_ID_"),
        ({"api_base": "ftp://example.test"}, "api_base"),
        ({"api_base": "https://api.mch.weixin.qq.com?x=1"}, "api_base"),
    ],
)
def test_configuration_problems_are_named(overrides, problem):
    problems = WechatPayGateway.configuration_problems(stub.options(**overrides))
    assert any(problem in found for found in problems), problems


def test_a_key_that_does_not_load_makes_calls_fail_as_not_configured():
    gateway = WechatPayGateway(stub.options(private_key_path="/nonexistent/key.pem"), session=requests.Session())
    with pytest.raises(GatewayNotConfigured, match="private_key_path"):
        gateway.query_payment(trade_ref("SO20251122000123P01"))


# -- start_payment: Native (QR) -------------------------------------------------


def test_native_prepay_returns_the_code_url_and_sends_the_documented_body(wechat, gateway):
    wechat.reply("POST", NATIVE, {"code_url": CODE_URL})
    action = gateway.start_payment(stub.payment_request())
    assert action == PaymentAction(kind=ActionKind.QR, qr_content=CODE_URL)
    assert sent_json(wechat) == {
        "appid": stub.APPID,
        "mchid": stub.MCHID,
        "description": "Order SO20251122000123",
        "out_trade_no": "SO20251122000123P01",
        "time_expire": "2025-11-22T10:30:00+08:00",
        "notify_url": "https://shop.example/payments/wechatpay/notify/",
        "amount": {"total": 8800, "currency": "CNY"},
    }
    assert wechat.requests[0].path_url == "/wechatpay/v3/pay/transactions/native"
    assert stub.merchant_signature_verifies(wechat.requests[0])


def test_a_repeated_prepay_sends_identical_bytes_and_gets_the_same_code(wechat, gateway):
    """§6.1: the same out_trade_no with identical parameters returns a current code_url."""
    wechat.reply("POST", NATIVE, {"code_url": CODE_URL})
    first = gateway.start_payment(stub.payment_request())
    second = gateway.start_payment(stub.payment_request())
    assert first == second
    assert wechat.requests[0].body == wechat.requests[1].body


def test_a_prepay_refused_for_a_used_number_is_rejected(wechat, gateway):
    wechat.error("POST", NATIVE, 403, "OUT_TRADE_NO_USED", "商户订单号重复")
    with pytest.raises(GatewayRejected) as caught:
        gateway.start_payment(stub.payment_request())
    assert (caught.value.code, caught.value.sub_code, caught.value.gateway_message) == (
        "403", "OUT_TRADE_NO_USED", "商户订单号重复")


def test_errors_are_keyed_on_code_not_status(wechat, gateway):
    """§8: statuses vary between pages; a SYSTEM_ERROR under a 4xx is still "unknown"."""
    wechat.error("POST", NATIVE, 400, "SYSTEM_ERROR")
    with pytest.raises(GatewayUnavailable):
        gateway.start_payment(stub.payment_request())


def test_a_rule_limit_is_backed_off_not_final(wechat, gateway):
    wechat.error("POST", NATIVE, 403, "RULE_LIMIT", "业务规则限制")
    with pytest.raises(GatewayUnavailable, match="RULE_LIMIT"):
        gateway.start_payment(stub.payment_request())


def test_an_unreadable_error_body_is_a_rejection_with_the_status(wechat, gateway):
    wechat.mock.add("POST", f"{stub.API_BASE}{NATIVE}", status=401, body=b"unauthorised")
    with pytest.raises(GatewayRejected) as caught:
        gateway.start_payment(stub.payment_request())
    assert (caught.value.code, caught.value.sub_code) == ("401", "")


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("POST", NATIVE))
def test_native_prepay_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.start_payment(stub.payment_request())


def test_native_prepay_with_a_bad_answer_signature(wechat, gateway):
    wechat.reply("POST", NATIVE, {"code_url": CODE_URL}, key=stub.stranger_key())
    with pytest.raises(ResponseNotVerified):
        gateway.start_payment(stub.payment_request())


def test_native_prepay_without_code_url(wechat, gateway):
    wechat.reply("POST", NATIVE, {"prepay_id": "wx1"})
    with pytest.raises(GatewayUnavailable, match="no code_url"):
        gateway.start_payment(stub.payment_request())


def test_description_is_cut_to_127_characters_or_falls_back(wechat, gateway):
    wechat.reply("POST", NATIVE, {"code_url": CODE_URL})
    gateway.start_payment(stub.payment_request(subject="茶" * 200))
    gateway.start_payment(stub.payment_request(subject="  \n "))
    assert sent_json(wechat, 0)["description"] == "茶" * 127
    assert sent_json(wechat, 1)["description"] == "SO20251122000123P01"


# -- start_payment: H5 (WAP) ----------------------------------------------------


def test_h5_prepay_redirects_to_h5_url_with_our_return(wechat, gateway):
    wechat.reply("POST", H5, {"h5_url": "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=2"})
    action = gateway.start_payment(stub.payment_request(method=PayMethod.WAP))
    assert action.kind == ActionKind.REDIRECT
    assert action.url == (
        "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=2&redirect_url="
        "https%3A%2F%2Fshop.example%2Fpayments%2Fwechatpay%2Freturn%2F%3Fout_trade_no%3DSO20251122000123P01"
    )
    back = parse_qs(urlsplit(action.url).query)["redirect_url"][0]
    params = {name: values[0] for name, values in parse_qs(urlsplit(back).query).items()}
    assert gateway.parse_return(params) == "SO20251122000123P01"
    body = sent_json(wechat)
    assert body["scene_info"] == {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}}
    assert wechat.requests[0].path_url == "/wechatpay/v3/pay/transactions/h5"


@pytest.mark.parametrize(("client_ip", "sent"), [("", "127.0.0.1"), ("not an ip", "127.0.0.1"),
                                                 ("2001:db8::1", "2001:db8::1")])
def test_h5_needs_a_payer_ip(wechat, gateway, client_ip, sent):
    wechat.reply("POST", H5, {"h5_url": "https://wx.tenpay.com/x"})
    gateway.start_payment(stub.payment_request(method=PayMethod.WAP, client_ip=client_ip, return_url=""))
    assert sent_json(wechat)["scene_info"]["payer_client_ip"] == sent


def test_h5_without_return_url_is_the_bare_h5_url(wechat, gateway):
    wechat.reply("POST", H5, {"h5_url": "https://wx.tenpay.com/x"})
    action = gateway.start_payment(stub.payment_request(method=PayMethod.WAP, return_url=""))
    assert action.url == "https://wx.tenpay.com/x"


def test_h5_declined_and_unverified(wechat, gateway):
    wechat.error("POST", H5, 403, "NO_AUTH", "商户未开通H5支付")
    wechat.reply("POST", H5, {"h5_url": "https://wx.tenpay.com/x"}, serial="PUB_KEY_ID_OTHER")
    with pytest.raises(GatewayRejected, match="NO_AUTH"):
        gateway.start_payment(stub.payment_request(method=PayMethod.WAP))
    with pytest.raises(ResponseNotVerified):
        gateway.start_payment(stub.payment_request(method=PayMethod.WAP))


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("POST", H5)[:4])
def test_h5_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.start_payment(stub.payment_request(method=PayMethod.WAP))


def test_parse_return_wants_a_well_formed_number(gateway):
    assert gateway.parse_return({"out_trade_no": "SO20251122000123P01"}) == "SO20251122000123P01"
    for params in ({}, {"out_trade_no": "x"}, {"out_trade_no": "SO1'; DROP"}):
        with pytest.raises(InvalidNotification):
            gateway.parse_return(params)


# -- start_payment: what never reaches WeChat ---------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"method": PayMethod.PAGE},
        {"out_trade_no": "SO123"},  # 5 characters: below the minimum of 6
        {"out_trade_no": "S" * 33},
        {"out_trade_no": "SO2025|1122"},
        {"out_trade_no": "SO 20251122"},
        {"amount_minor": 0},
        {"amount_minor": -1},
        {"amount_minor": True},
        {"amount_minor": 88.0},
        {"amount_minor": "8800"},
        {"currency": "USD"},
        {"notify_url": ""},
        {"notify_url": "https://shop.example/notify/?order=1"},
        {"notify_url": "/payments/wechatpay/notify/"},
        {"notify_url": "https://shop.example/" + "n" * 300},
        {"expires_at": datetime(2025, 11, 22, 10, 30)},
    ],
)
def test_requests_wechat_cannot_take_raise_value_error_before_any_call(wechat, gateway, overrides):
    with pytest.raises(ValueError):
        gateway.start_payment(stub.payment_request(**overrides))
    assert wechat.requests == []


# -- query_payment --------------------------------------------------------------


def test_query_of_a_paid_trade(wechat, gateway):
    trade = stub.transaction()
    wechat.reply("GET", QUERY, trade)
    assert gateway.query_payment(trade_ref("SO20251122000123P01")) == TradeState(
        out_trade_no="SO20251122000123P01",
        status=TradeStatus.SUCCEEDED,
        gateway_trade_no="4200002903202511221234567890",
        amount_minor=8800,
        paid_at=datetime(2025, 11, 22, 9, 58, 30, tzinfo=BEIJING),
        raw=trade,
    )
    assert wechat.requests[0].path_url == (
        "/wechatpay/v3/pay/transactions/out-trade-no/SO20251122000123P01?mchid=1900000001")


UNPAID = {"transaction_id": None, "success_time": None, "payer": None}


@pytest.mark.parametrize(
    ("trade_state", "status"),
    [
        ("REFUND", TradeStatus.SUCCEEDED),
        ("NOTPAY", TradeStatus.PENDING),
        ("USERPAYING", TradeStatus.PENDING),
        ("CLOSED", TradeStatus.CLOSED),
        ("REVOKED", TradeStatus.CLOSED),
        ("PAYERROR", TradeStatus.FAILED),
    ],
)
def test_trade_states_map(wechat, gateway, trade_state, status):
    extra = {} if status is TradeStatus.SUCCEEDED else UNPAID
    wechat.reply("GET", QUERY, stub.transaction(trade_state=trade_state, **extra))
    state = gateway.query_payment(trade_ref("SO20251122000123P01"))
    assert (state.status, state.amount_minor) == (status, 8800)
    assert (state.paid_at is not None) is (status is TradeStatus.SUCCEEDED)


@pytest.mark.parametrize(("status", "code"), [(404, "ORDER_NOT_EXIST"), (404, "ORDERNOTEXIST"),
                                              (400, "ORDER_NOT_EXIST")])
def test_query_of_an_unknown_trade_is_not_found(wechat, gateway, status, code):
    wechat.error("GET", QUERY, status, code, "订单不存在")
    assert gateway.query_payment(trade_ref("SO20251122000123P01")) == TradeState(
        out_trade_no="SO20251122000123P01", status=TradeStatus.NOT_FOUND)


def test_query_declined(wechat, gateway):
    wechat.error("GET", QUERY, 400, "PARAM_ERROR", "mchid不能为空")
    with pytest.raises(GatewayRejected) as caught:
        gateway.query_payment(trade_ref("SO20251122000123P01"))
    assert (caught.value.code, caught.value.sub_code) == ("400", "PARAM_ERROR")


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("GET", QUERY))
def test_query_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.query_payment(trade_ref("SO20251122000123P01"))


@pytest.mark.parametrize(
    ("trade", "error", "match"),
    [
        (stub.transaction(mchid="1900000002"), ResponseNotVerified, "mchid"),
        (stub.transaction(appid="wx0000000000000000"), ResponseNotVerified, "appid"),
        (stub.transaction(out_trade_no="SO20251122000999P01"), ResponseNotVerified, "out_trade_no"),
        (stub.transaction(trade_state="ACCEPT"), GatewayUnavailable, "unknown trade_state"),
        (stub.transaction(amount={"total": "88.00", "currency": "CNY"}), GatewayUnavailable, "amount.total"),
        (stub.transaction(amount={"total": 8800, "currency": "USD"}), GatewayUnavailable, "currency"),
        (stub.transaction(success_time=None), GatewayUnavailable, "success_time"),
        (stub.transaction(transaction_id=None), GatewayUnavailable, "transaction_id"),
    ],
)
def test_query_answers_that_are_not_about_our_trade_or_unreadable(wechat, gateway, trade, error, match):
    wechat.reply("GET", QUERY, trade)
    with pytest.raises(error, match=match):
        gateway.query_payment(trade_ref("SO20251122000123P01"))


def test_query_with_a_bad_answer_signature(wechat, gateway):
    wechat.reply("GET", QUERY, stub.transaction(), timestamp=str(int(stub.TS) - 3600))
    with pytest.raises(ResponseNotVerified, match="300 s"):
        gateway.query_payment(trade_ref("SO20251122000123P01"))


# -- close_payment (§6.4) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("trade_state", "outcome"),
    [("CLOSED", CloseOutcome.CLOSED), ("SUCCESS", CloseOutcome.ALREADY_PAID),
     ("REFUND", CloseOutcome.ALREADY_PAID), ("PAYERROR", CloseOutcome.CLOSED)],
)
def test_close_then_query_decides(wechat, gateway, trade_state, outcome):
    wechat.reply("POST", CLOSE, status=204)
    paid = trade_state in ("SUCCESS", "REFUND")
    wechat.reply("GET", QUERY, stub.transaction(trade_state=trade_state, **({} if paid else UNPAID)))
    assert gateway.close_payment(trade_ref("SO20251122000123P01")) is outcome
    close, query = wechat.requests
    assert close.body == b'{"mchid":"1900000001"}'
    assert close.path_url == "/wechatpay/v3/pay/transactions/out-trade-no/SO20251122000123P01/close"
    assert query.method == "GET"


def test_a_204_for_a_trade_wechat_never_had_is_not_found(wechat, gateway):
    """§12.8: close may answer 204 for an unknown number; the query tells."""
    wechat.reply("POST", CLOSE, status=204)
    wechat.error("GET", QUERY, 404, "ORDER_NOT_EXIST")
    assert gateway.close_payment(trade_ref("SO20251122000123P01")) is CloseOutcome.NOT_FOUND


def test_a_trade_still_payable_after_close_is_an_unknown_outcome(wechat, gateway):
    wechat.reply("POST", CLOSE, status=204)
    wechat.reply("GET", QUERY, stub.transaction(trade_state="NOTPAY", **UNPAID))
    with pytest.raises(GatewayUnavailable, match="still pending"):
        gateway.close_payment(trade_ref("SO20251122000123P01"))


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [(400, "ORDER_CLOSED", CloseOutcome.CLOSED), (403, "ORDERCLOSED", CloseOutcome.CLOSED),
     (400, "ORDERPAID", CloseOutcome.ALREADY_PAID), (404, "ORDER_NOT_EXIST", CloseOutcome.NOT_FOUND)],
)
def test_close_errors_that_decide(wechat, gateway, status, code, outcome):
    wechat.error("POST", CLOSE, status, code)
    assert gateway.close_payment(trade_ref("SO20251122000123P01")) is outcome
    assert len(wechat.requests) == 1


def test_close_declined(wechat, gateway):
    wechat.error("POST", CLOSE, 401, "SIGN_ERROR", "签名错误")
    with pytest.raises(GatewayRejected, match="SIGN_ERROR"):
        gateway.close_payment(trade_ref("SO20251122000123P01"))


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("POST", CLOSE))
def test_close_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.close_payment(trade_ref("SO20251122000123P01"))


def test_a_204_with_a_bad_signature_is_not_trusted_and_nothing_is_queried(wechat, gateway):
    wechat.reply("POST", CLOSE, status=204, signature="WECHATPAY/SIGNTEST/" + "B" * 324)
    with pytest.raises(ResponseNotVerified):
        gateway.close_payment(trade_ref("SO20251122000123P01"))
    assert len(wechat.requests) == 1


def test_a_query_failing_after_close_is_an_unknown_outcome(wechat, gateway):
    wechat.reply("POST", CLOSE, status=204)
    wechat.fail("GET", QUERY, requests.exceptions.ReadTimeout())
    with pytest.raises(GatewayUnavailable):
        gateway.close_payment(trade_ref("SO20251122000123P01"))


# -- refund (§6.5, §6.6) --------------------------------------------------------------


def refund_answer(**overrides):
    value = {
        "refund_id": "50300905362025112212345678901",
        "out_refund_no": "SO20251122000123R01",
        "transaction_id": "4200002903202511221234567890",
        "out_trade_no": "SO20251122000123P01",
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": "2025-11-22T09:59:00+08:00",
        "status": "PROCESSING",
        "funds_account": "UNSETTLED",
        "amount": {"total": 8800, "refund": 3000, "payer_total": 8800, "payer_refund": 3000,
                   "settlement_refund": 3000, "settlement_total": 8800, "discount_refund": 0, "currency": "CNY"},
    }
    value.update(overrides)
    return value


def test_a_refund_is_accepted_and_processing(wechat, gateway):
    answer = refund_answer()
    wechat.reply("POST", REFUNDS, answer)
    state = gateway.refund(stub.refund_request())
    assert state == RefundState(
        out_refund_no="SO20251122000123R01",
        status=GatewayRefundStatus.PROCESSING,
        amount_minor=3000,
        gateway_refund_id="50300905362025112212345678901",
        raw=answer,
    )
    assert sent_json(wechat) == {
        "out_trade_no": "SO20251122000123P01",
        "out_refund_no": "SO20251122000123R01",
        "reason": "Customer returned one item",
        "notify_url": "https://shop.example/refunds/wechatpay/notify/",
        "amount": {"refund": 3000, "total": 8800, "currency": "CNY"},
    }
    assert wechat.requests[0].path_url == "/wechatpay/v3/refund/domestic/refunds"


def test_a_refund_that_succeeds_at_once(wechat, gateway):
    wechat.reply("POST", REFUNDS, refund_answer(status="SUCCESS", success_time="2025-11-22T09:59:10+08:00"))
    state = gateway.refund(stub.refund_request(reason="", notify_url=""))
    assert (state.status, state.refunded_at) == (
        GatewayRefundStatus.SUCCEEDED, datetime(2025, 11, 22, 9, 59, 10, tzinfo=BEIJING))
    assert set(sent_json(wechat)) == {"out_trade_no", "out_refund_no", "amount"}


def test_a_replayed_refund_returns_the_same_refund(wechat, gateway):
    """Same out_refund_no, identical bytes; WeChat answers the refund it already made."""
    wechat.reply("POST", REFUNDS, refund_answer(status="SUCCESS", success_time="2025-11-22T09:59:10+08:00"))
    first = gateway.refund(stub.refund_request())
    again = gateway.refund(stub.refund_request())
    assert first == again
    assert wechat.requests[0].body == wechat.requests[1].body


def test_a_refund_answer_for_another_amount_is_a_mismatch(wechat, gateway):
    wechat.reply("POST", REFUNDS, refund_answer(amount={"total": 8800, "refund": 8800, "currency": "CNY"}))
    with pytest.raises(AmountMismatch):
        gateway.refund(stub.refund_request())


@pytest.mark.parametrize(
    ("answer", "match"),
    [
        (refund_answer(out_refund_no="SO20251122000123R02"), "out_refund_no"),
        (refund_answer(out_trade_no="SO20251122000999P01"), "another trade"),
    ],
)
def test_a_refund_answer_about_something_else_is_not_trusted(wechat, gateway, answer, match):
    wechat.reply("POST", REFUNDS, answer)
    with pytest.raises(ResponseNotVerified, match=match):
        gateway.refund(stub.refund_request())


def test_not_enough_balance_is_retried_later_with_the_same_number(wechat, gateway):
    wechat.error("POST", REFUNDS, 403, "NOT_ENOUGH", "基本账户余额不足")
    with pytest.raises(GatewayUnavailable, match="NOT_ENOUGH.*same out_refund_no"):
        gateway.refund(stub.refund_request())


@pytest.mark.parametrize(("status", "code"), [(403, "USER_ACCOUNT_ABNORMAL"), (404, "RESOURCE_NOT_EXISTS"),
                                              (400, "INVALID_REQUEST")])
def test_refund_declined(wechat, gateway, status, code):
    wechat.error("POST", REFUNDS, status, code)
    with pytest.raises(GatewayRejected) as caught:
        gateway.refund(stub.refund_request())
    assert (caught.value.code, caught.value.sub_code) == (str(status), code)


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("POST", REFUNDS))
def test_refund_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.refund(stub.refund_request())


def test_refund_with_a_bad_answer_signature(wechat, gateway):
    wechat.reply("POST", REFUNDS, refund_answer(), drop=("Wechatpay-Signature",))
    with pytest.raises(ResponseNotVerified):
        gateway.refund(stub.refund_request())


@pytest.mark.parametrize(
    "overrides",
    [
        {"out_refund_no": "R" * 65},
        {"out_refund_no": "R 1"},
        {"out_refund_no": ""},
        {"amount_minor": 0},
        {"amount_minor": 8801},
        {"total_minor": 88.0},
        {"currency": "HKD"},
        {"notify_url": "https://shop.example/refunds/notify?x=1"},
        {"out_trade_no": "short"},
    ],
)
def test_refunds_wechat_cannot_take_raise_value_error(wechat, gateway, overrides):
    with pytest.raises(ValueError):
        gateway.refund(stub.refund_request(**overrides))
    assert wechat.requests == []


def test_refund_reason_is_cut_to_80_characters(wechat, gateway):
    wechat.reply("POST", REFUNDS, refund_answer())
    gateway.refund(stub.refund_request(reason="退" * 100))
    assert sent_json(wechat)["reason"] == "退" * 80


# -- query_refund -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "message"),
    [("PROCESSING", GatewayRefundStatus.PROCESSING, ""), ("CLOSED", GatewayRefundStatus.CLOSED, "CLOSED"),
     ("CLOSE", GatewayRefundStatus.CLOSED, "CLOSED"), ("ABNORMAL", GatewayRefundStatus.ABNORMAL, "ABNORMAL")],
)
def test_refund_query_maps_status(wechat, gateway, status, expected, message):
    wechat.reply("GET", REFUND, refund_answer(status=status))
    state = gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))
    assert (state.status, state.amount_minor, state.refunded_at) == (expected, 3000, None)
    assert state.message.startswith(message)
    assert wechat.requests[0].path_url == "/wechatpay/v3/refund/domestic/refunds/SO20251122000123R01"
    assert wechat.requests[0].body is None


def test_refund_query_success(wechat, gateway):
    wechat.reply("GET", REFUND, refund_answer(status="SUCCESS", success_time="2025-11-22T09:59:10+08:00"))
    state = gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))
    assert (state.status, state.gateway_refund_id, state.refunded_at) == (
        GatewayRefundStatus.SUCCEEDED, "50300905362025112212345678901", datetime(2025, 11, 22, 1, 59, 10, tzinfo=UTC))


def test_refund_query_of_an_unknown_refund_is_not_found(wechat, gateway):
    wechat.error("GET", REFUND, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
    assert gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01")) == (
        RefundState(out_refund_no="SO20251122000123R01", status=GatewayRefundStatus.NOT_FOUND))


def test_refund_query_declined(wechat, gateway):
    wechat.error("GET", REFUND, 400, "PARAM_ERROR")
    with pytest.raises(GatewayRejected, match="PARAM_ERROR"):
        gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))


@pytest.mark.parametrize(("arrange", "match"), unavailable_cases("GET", REFUND))
def test_refund_query_outcome_unknown(wechat, gateway, arrange, match):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable, match=match):
        gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))


def test_refund_query_with_a_bad_answer_signature(wechat, gateway):
    wechat.reply("GET", REFUND, refund_answer(), key=stub.stranger_key())
    with pytest.raises(ResponseNotVerified):
        gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))


def test_refund_query_of_a_number_used_for_another_trade(wechat, gateway):
    wechat.reply("GET", REFUND, refund_answer(out_trade_no="SO20251122000999P01"))
    with pytest.raises(ResponseNotVerified, match="another trade"):
        gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))


def test_refund_query_with_an_unknown_status(wechat, gateway):
    wechat.reply("GET", REFUND, refund_answer(status="REFUNDCLOSE"))
    with pytest.raises(GatewayUnavailable, match="unknown refund status"):
        gateway.query_refund(refund_ref("SO20251122000123P01", "SO20251122000123R01"))

