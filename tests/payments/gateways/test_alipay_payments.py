"""Alipay payments: start (page, wap, QR precreate), query and close (A5-A7, A14)."""
from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from payments.exceptions import GatewayNotConfigured, GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.alipay import AlipayGateway
from payments.gateways.alipay.signing import load_public_key, request_signing_text
from payments.gateways.base import ActionKind, CloseOutcome, PaymentRequest, PayMethod, TradeStatus
from tests.gateway_references import trade_ref
from tests.payments.gateways.alipay_support import (
    APP_ID,
    FIXTURES,
    GATEWAY_URL,
    answer_text,
    ok,
    refused,
    rsa_verifies,
)

OUT_TRADE_NO = "SO2024050100001_1"
EXPIRES_AT = datetime(2024, 5, 1, 2, 33, 4, tzinfo=UTC)  # 10:33:04 Beijing
QR_CODE = "https://qr.alipay.com/bax03431ljhokirwl38f00a7"


def payment(method: PayMethod = PayMethod.PAGE, **changes) -> PaymentRequest:
    request = PaymentRequest(
        out_trade_no=OUT_TRADE_NO,
        amount_minor=8888,
        currency="CNY",
        subject="龙井茶 250g",
        method=method,
        notify_url="https://shop.test/payments/alipay/notify/",
        return_url="https://shop.test/payments/alipay/return/",
        expires_at=EXPIRES_AT,
        quit_url="https://shop.test/orders/SO2024050100001/",
    )
    return dataclasses.replace(request, **changes)


def paid_trade(**changes) -> dict:
    fields = {
        "trade_no": "2024050122001400001234567890",
        "out_trade_no": OUT_TRADE_NO,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "88.88",
        "receipt_amount": "88.88",
        "buyer_pay_amount": "88.88",
        "send_pay_date": "2024-05-01 10:05:06",
        "fund_bill_list": [{"amount": "88.88", "fund_channel": "ALIPAYACCOUNT"}],
    }
    return ok(**{**fields, **changes})


# -- configuration ----------------------------------------------------------------


def test_configuration_problems_name_missing_and_unloadable_keys(alipay_options, tmp_path: Path):
    assert AlipayGateway.configuration_problems(alipay_options) == []
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    problems = AlipayGateway.configuration_problems(
        {
            **alipay_options,
            "app_id": "",
            "app_private_key_path": str(tmp_path / "missing.pem"),
            "alipay_public_key_path": str(bad),
            "gateway_url": "ftp://example.test/",
        }
    )
    assert problems[0] == "app_id is not set"
    assert any("app_private_key_path: no file at" in problem for problem in problems)
    assert any("alipay_public_key_path:" in problem and "does not load" in problem for problem in problems)
    assert "gateway_url is not an http(s) URL" in problems
    assert "not a key" not in " ".join(problems)


def test_the_gateway_describes_itself(alipay_gateway):
    assert alipay_gateway.code == "alipay"
    assert str(alipay_gateway.display_name) == "Alipay"
    assert alipay_gateway.methods == {PayMethod.PAGE, PayMethod.WAP, PayMethod.QR}
    assert alipay_gateway.timeout == (3.0, 7.0)


def test_keys_load_lazily_and_a_vanished_key_is_a_configuration_error(alipay_options, tmp_path: Path):
    key_copy = tmp_path / "app.pem"
    key_copy.write_bytes((FIXTURES / "app-private-key.pem").read_bytes())
    gateway = AlipayGateway({**alipay_options, "app_private_key_path": str(key_copy)})
    key_copy.unlink()  # nothing was read at construction
    with pytest.raises(GatewayNotConfigured):
        gateway.start_payment(payment())


# -- page and wap ----------------------------------------------------------------


def test_page_payment_is_a_signed_auto_submit_form(alipay_gateway, http):
    action = alipay_gateway.start_payment(payment(description="明前特级 & 礼盒"))
    assert len(http.calls) == 0  # the browser goes to Alipay, not us
    assert action.kind == ActionKind.FORM
    assert action.url == GATEWAY_URL + "?charset=utf-8"
    fields = dict(action.form_fields)
    assert fields["method"] == "alipay.trade.page.pay"
    assert fields["app_id"] == APP_ID
    assert fields["timestamp"] == "2024-05-01 10:03:04"
    assert fields["notify_url"] == "https://shop.test/payments/alipay/notify/"
    assert fields["return_url"] == "https://shop.test/payments/alipay/return/"
    assert fields["biz_content"] == (
        '{"out_trade_no":"SO2024050100001_1","total_amount":"88.88","subject":"龙井茶 250g",'
        '"body":"明前特级 & 礼盒","time_expire":"2024-05-01 10:33:04","product_code":"FAST_INSTANT_TRADE_PAY"}'
    )
    app_public = load_public_key((FIXTURES / "app-public-key.pem").read_bytes())
    assert rsa_verifies(app_public, request_signing_text(fields), fields["sign"])
    assert "" not in fields.values()


def test_wap_payment_uses_quick_wap_way_and_quit_url(alipay_gateway):
    fields = alipay_gateway.start_payment(payment(PayMethod.WAP)).form_fields
    biz = json.loads(fields["biz_content"])
    assert fields["method"] == "alipay.trade.wap.pay"
    assert biz["product_code"] == "QUICK_WAP_WAY"
    assert biz["quit_url"] == "https://shop.test/orders/SO2024050100001/"
    assert "quit_url" not in json.loads(
        alipay_gateway.start_payment(payment(PayMethod.WAP, quit_url="")).form_fields["biz_content"]
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Tea / Cup = 2 & more", "Tea Cup 2 more"),
        ("茶" * 300, "茶" * 256),
        ("  //&&  ", OUT_TRADE_NO),
    ],
)
def test_the_subject_avoids_slash_equals_ampersand_and_fits(alipay_gateway, subject, expected):
    fields = alipay_gateway.start_payment(payment(subject=subject)).form_fields
    assert json.loads(fields["biz_content"])["subject"] == expected


@pytest.mark.parametrize(
    "changes",
    [
        {"amount_minor": 0},
        {"amount_minor": -100},
        {"amount_minor": 88.88},
        {"amount_minor": 10_000_000_001},
        {"currency": "USD"},
        {"expires_at": datetime(2024, 5, 1, 10, 33, 4)},
        {"out_trade_no": ""},
        {"out_trade_no": "SO/1"},
        {"out_trade_no": "S" * 65},
        {"notify_url": ""},
        {"return_url": ""},
    ],
)
def test_requests_alipay_cannot_take_are_refused_before_signing(alipay_gateway, changes):
    with pytest.raises(ValueError):
        alipay_gateway.start_payment(payment(**changes))


def test_the_largest_amount_is_sent_exactly(alipay_gateway):
    fields = alipay_gateway.start_payment(payment(amount_minor=10_000_000_000)).form_fields
    assert json.loads(fields["biz_content"])["total_amount"] == "100000000.00"
    fields = alipay_gateway.start_payment(payment(amount_minor=1)).form_fields
    assert json.loads(fields["biz_content"])["total_amount"] == "0.01"


# -- QR (precreate) ---------------------------------------------------------------


def test_qr_payment_precreates_and_returns_the_qr_code(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.precreate", ok(out_trade_no=OUT_TRADE_NO, qr_code=QR_CODE))
    action = alipay_gateway.start_payment(payment(PayMethod.QR))
    assert action.kind == ActionKind.QR
    assert action.qr_content == QR_CODE  # `\/` in the signed answer, `/` once parsed
    sent = alipay_api.requests[0]
    assert sent["method"] == "alipay.trade.precreate"
    assert sent["notify_url"] == "https://shop.test/payments/alipay/notify/"
    assert "return_url" not in sent
    assert alipay_api.biz() == {
        "out_trade_no": OUT_TRADE_NO,
        "total_amount": "88.88",
        "subject": "龙井茶 250g",
        "time_expire": "2024-05-01 10:33:04",
    }
    assert alipay_api.urls[0] == GATEWAY_URL + "?charset=utf-8"
    assert alipay_api.timeouts == [(3.0, 7.0)]


def test_qr_payment_already_paid_is_refused_with_its_sub_code(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.precreate", refused("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"))
    with pytest.raises(GatewayRejected) as caught:
        alipay_gateway.start_payment(payment(PayMethod.QR))
    assert (caught.value.code, caught.value.sub_code) == ("40004", "ACQ.TRADE_HAS_SUCCESS")
    assert caught.value.gateway_message == "交易已被支付"


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectTimeout("connect"),
        requests.exceptions.ReadTimeout("read"),
        requests.exceptions.ConnectionError("reset"),
    ],
)
def test_qr_payment_transport_failures_are_unknown_outcomes(alipay_gateway, alipay_api, error):
    alipay_api.answer("alipay.trade.precreate", error=error)
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.start_payment(payment(PayMethod.QR))


def test_qr_payment_answer_signed_by_another_key_is_not_used(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.trade.precreate", ok(out_trade_no=OUT_TRADE_NO, qr_code=QR_CODE), key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.start_payment(payment(PayMethod.QR))


def test_qr_payment_tampered_answer_is_not_used(alipay_gateway, alipay_api, alipay_side_key):
    text = answer_text("alipay.trade.precreate", ok(out_trade_no=OUT_TRADE_NO, qr_code=QR_CODE), alipay_side_key)
    alipay_api.answer("alipay.trade.precreate", text=text.replace("bax03431", "bax66666"))
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.start_payment(payment(PayMethod.QR))


def test_qr_answer_for_another_trade_is_a_fault(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.precreate", ok(out_trade_no="SO_OTHER", qr_code=QR_CODE))
    with pytest.raises(GatewayUnavailable, match="SO_OTHER"):
        alipay_gateway.start_payment(payment(PayMethod.QR))


# -- result codes (A6), via precreate ------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        {"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"},
        refused("ACQ.SYSTEM_ERROR", "系统错误"),
        {"code": "40005", "msg": "Call Limited", "sub_code": "aop.ACQ.call-limited"},
        {"code": "99999", "msg": "?"},
    ],
)
def test_busy_and_unknown_codes_are_unknown_outcomes(alipay_gateway, alipay_api, node):
    alipay_api.answer("alipay.trade.precreate", node)
    with pytest.raises(GatewayUnavailable) as caught:
        alipay_gateway.start_payment(payment(PayMethod.QR))
    assert not isinstance(caught.value, GatewayRejected)


@pytest.mark.parametrize(
    ("code", "sub_code"),
    [("40001", "isv.missing-method"), ("40002", "isv.invalid-signature"), ("40006", "isv.insufficient-isv-permissions")],
)
def test_signed_gateway_refusals_are_rejections(alipay_gateway, alipay_api, code, sub_code):
    alipay_api.answer(
        "alipay.trade.precreate",
        refused(sub_code, "参数无效", code=code),
    )
    with pytest.raises(GatewayRejected) as caught:
        alipay_gateway.start_payment(payment(PayMethod.QR))
    assert (caught.value.code, caught.value.sub_code) == (code, sub_code)


def test_signed_error_response_node_is_read(alipay_gateway, alipay_api, alipay_side_key):
    node = refused("isv.invalid-app-id", "无效的AppID参数", code="40002")
    alipay_api.answer(
        "alipay.trade.precreate", text=answer_text("x", node, alipay_side_key, node_name="error_response")
    )
    with pytest.raises(GatewayRejected) as caught:
        alipay_gateway.start_payment(payment(PayMethod.QR))
    assert caught.value.sub_code == "isv.invalid-app-id"


def test_unsigned_error_response_is_never_a_business_result(alipay_gateway, alipay_api):
    node = refused("isv.invalid-signature", "验签出错", code="40002")
    alipay_api.answer("alipay.trade.precreate", text=answer_text("x", node, None, node_name="error_response"))
    with pytest.raises(GatewayUnavailable, match="isv.invalid-signature") as caught:
        alipay_gateway.start_payment(payment(PayMethod.QR))
    assert not isinstance(caught.value, (GatewayRejected, ResponseNotVerified))


def test_unsigned_success_is_not_verified(alipay_gateway, alipay_api):
    text = answer_text("alipay.trade.precreate", ok(out_trade_no=OUT_TRADE_NO, qr_code=QR_CODE), None)
    alipay_api.answer("alipay.trade.precreate", text=text)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.start_payment(payment(PayMethod.QR))


@pytest.mark.parametrize("status", [500, 502, 503, 404])
def test_http_errors_are_unknown_outcomes(alipay_gateway, alipay_api, status):
    alipay_api.answer("alipay.trade.precreate", text="<html>error</html>", status=status)
    with pytest.raises(GatewayUnavailable, match=f"HTTP {status}"):
        alipay_gateway.start_payment(payment(PayMethod.QR))


# -- query ----------------------------------------------------------------------------


def test_query_of_a_paid_trade(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", paid_trade())
    state = alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))
    assert state.status == TradeStatus.SUCCEEDED
    assert state.amount_minor == 8888
    assert state.gateway_trade_no == "2024050122001400001234567890"
    assert state.paid_at == datetime(2024, 5, 1, 2, 5, 6, tzinfo=UTC)
    assert state.raw["fund_bill_list"] == [{"amount": "88.88", "fund_channel": "ALIPAYACCOUNT"}]
    assert alipay_api.biz() == {"out_trade_no": OUT_TRADE_NO}
    assert alipay_api.timeouts == [(3.0, 7.0)]


def test_query_of_a_finished_trade_is_paid(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", paid_trade(trade_status="TRADE_FINISHED"))
    assert alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO)).status == TradeStatus.SUCCEEDED


def test_query_of_a_scanned_unpaid_trade_is_pending(alipay_gateway, alipay_api):
    node = ok(out_trade_no=OUT_TRADE_NO, trade_no="2024", trade_status="WAIT_BUYER_PAY", total_amount="88.88",
              receipt_amount="0.00", buyer_pay_amount="0.00")
    alipay_api.answer("alipay.trade.query", node)
    state = alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))
    assert (state.status, state.amount_minor, state.paid_at) == (TradeStatus.PENDING, 8888, None)


def test_query_of_a_trade_closed_unpaid(alipay_gateway, alipay_api):
    node = ok(out_trade_no=OUT_TRADE_NO, trade_no="2024", trade_status="TRADE_CLOSED", total_amount="88.88",
              receipt_amount="0.00", buyer_pay_amount="0.00")
    alipay_api.answer("alipay.trade.query", node)
    assert alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO)).status == TradeStatus.CLOSED


def test_query_of_a_fully_refunded_trade_is_still_paid(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", paid_trade(trade_status="TRADE_CLOSED"))
    state = alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))
    assert state.status == TradeStatus.SUCCEEDED
    assert state.paid_at == datetime(2024, 5, 1, 2, 5, 6, tzinfo=UTC)


def test_query_before_the_shopper_starts_is_not_found(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", refused("ACQ.TRADE_NOT_EXIST", "交易不存在"))
    state = alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))
    assert state.status == TradeStatus.NOT_FOUND


def test_query_decline(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", refused("ACQ.INVALID_PARAMETER", "参数无效"))
    with pytest.raises(GatewayRejected):
        alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))


def test_query_timeout(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.query", error=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))


def test_query_bad_signature(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.trade.query", paid_trade(), key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))


def test_query_reports_the_amount_alipay_holds_exactly(alipay_gateway, alipay_api):
    """An amount that differs from ours is reported as is, for the service to compare."""
    alipay_api.answer("alipay.trade.query", paid_trade(total_amount="88.8"))
    assert alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO)).amount_minor == 8880


@pytest.mark.parametrize(
    "changes",
    [{"total_amount": "88.888"}, {"trade_status": "TRADE_PENDING"}, {"out_trade_no": "SO_OTHER"},
     {"send_pay_date": "2024/05/01"}],
)
def test_query_answers_that_cannot_be_read_are_unknown(alipay_gateway, alipay_api, changes):
    alipay_api.answer("alipay.trade.query", paid_trade(**changes))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))


def test_query_verifies_the_raw_node_not_a_reserialisation(alipay_gateway, alipay_api, alipay_side_key):
    """Key order, spacing and `\\/` escapes are signed as sent."""
    node_text = (
        '{"msg":"Success","code":"10000","trade_status":"TRADE_SUCCESS", "total_amount":"88.88",'
        '"out_trade_no":"SO2024050100001_1","trade_no":"2024","send_pay_date":"2024-05-01 10:05:06",'
        '"store_name":"A\\/B \\u8336"}'
    )
    alipay_api.answer("alipay.trade.query", text=answer_text("alipay.trade.query", node_text, alipay_side_key,
                                                             escape_slashes=False))
    state = alipay_gateway.query_payment(trade_ref(OUT_TRADE_NO))
    assert state.status == TradeStatus.SUCCEEDED
    assert state.raw["store_name"] == "A/B 茶"


# -- close ------------------------------------------------------------------------------


def test_close(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", ok(out_trade_no=OUT_TRADE_NO, trade_no="2024"))
    assert alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO)) == CloseOutcome.CLOSED
    assert alipay_api.biz() == {"out_trade_no": OUT_TRADE_NO}


def test_close_of_a_trade_never_created(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", refused("ACQ.TRADE_NOT_EXIST"))
    assert alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO)) == CloseOutcome.NOT_FOUND


def test_close_of_a_paid_trade_is_already_paid_after_a_query(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", refused("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"))
    alipay_api.answer("alipay.trade.query", paid_trade())
    assert alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO)) == CloseOutcome.ALREADY_PAID
    assert alipay_api.methods() == ["alipay.trade.close", "alipay.trade.query"]


def test_close_of_an_already_closed_trade_is_closed(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", refused("ACQ.TRADE_STATUS_ERROR"))
    alipay_api.answer("alipay.trade.query", ok(out_trade_no=OUT_TRADE_NO, trade_status="TRADE_CLOSED",
                                               total_amount="88.88", receipt_amount="0.00"))
    assert alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO)) == CloseOutcome.CLOSED


def test_close_refused_while_still_waiting_is_unknown(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", refused("ACQ.TRADE_STATUS_ERROR"))
    alipay_api.answer("alipay.trade.query", ok(out_trade_no=OUT_TRADE_NO, trade_status="WAIT_BUYER_PAY",
                                               total_amount="88.88"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO))


def test_close_decline(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", refused("ACQ.INVALID_PARAMETER"))
    with pytest.raises(GatewayRejected):
        alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO))


def test_close_timeout(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.close", error=requests.exceptions.ConnectTimeout("no route"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO))


def test_close_bad_signature(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.trade.close", ok(out_trade_no=OUT_TRADE_NO), key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.close_payment(trade_ref(OUT_TRADE_NO))


def test_the_clock_is_the_injected_one(make_alipay_gateway):
    later = datetime(2024, 12, 31, 16, 0, 0, tzinfo=UTC)
    gateway = make_alipay_gateway()
    gateway.clock = lambda: later
    fields = gateway.start_payment(payment(expires_at=later + timedelta(minutes=30))).form_fields
    assert fields["timestamp"] == "2025-01-01 00:00:00"
