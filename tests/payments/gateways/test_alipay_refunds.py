"""Alipay refunds: `alipay.trade.refund` and `alipay.trade.fastpay.refund.query` (A7, A10)."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
import requests

from payments.exceptions import AmountMismatch, GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.base import GatewayRefundStatus, RefundRequest
from tests.gateway_references import refund_ref
from tests.payments.gateways.alipay_support import ok, refused

OUT_TRADE_NO = "SO2024050100001_1"
OUT_REFUND_NO = "RF2024050200001"
REFUNDED_AT = datetime(2024, 5, 2, 1, 0, 1, tzinfo=UTC)  # 09:00:01 Beijing


def refund_request(**changes) -> RefundRequest:
    request = RefundRequest(
        out_trade_no=OUT_TRADE_NO,
        out_refund_no=OUT_REFUND_NO,
        amount_minor=2000,
        total_minor=8888,
        currency="CNY",
        reason="破损 / 退一件",
    )
    return dataclasses.replace(request, **changes)


def refund_answer(fund_change: str | None = "Y", **changes) -> dict:
    fields = {
        "trade_no": "2024050122001400001234567890",
        "out_trade_no": OUT_TRADE_NO,
        "buyer_logon_id": "abc***@example.com",
        "refund_fee": "20.00",
        "gmt_refund_pay": "2024-05-02 09:00:01",
    }
    if fund_change is not None:
        fields["fund_change"] = fund_change
    return ok(**{**fields, **changes})


def refund_query_answer(**changes) -> dict:
    fields = {
        "trade_no": "2024050122001400001234567890",
        "out_trade_no": OUT_TRADE_NO,
        "out_request_no": OUT_REFUND_NO,
        "total_amount": "88.88",
        "refund_amount": "20.00",
        "refund_status": "REFUND_SUCCESS",
        "gmt_refund_pay": "2024-05-02 09:00:01",
    }
    return ok(**{**fields, **changes})


# -- refund ---------------------------------------------------------------------------


def test_a_refund_that_moves_money_succeeds_now(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer("Y"))
    state = alipay_gateway.refund(refund_request())
    assert state.status == GatewayRefundStatus.SUCCEEDED
    assert (state.out_refund_no, state.amount_minor, state.refunded_at) == (OUT_REFUND_NO, 2000, REFUNDED_AT)
    assert state.raw["fund_change"] == "Y"
    assert alipay_api.biz() == {
        "out_trade_no": OUT_TRADE_NO,
        "refund_amount": "20.00",
        "out_request_no": OUT_REFUND_NO,
        "refund_reason": "破损 / 退一件",
    }
    assert "notify_url" not in alipay_api.requests[0]
    assert alipay_api.timeouts == [(3.0, 7.0)]


def test_a_replayed_refund_is_confirmed_by_the_refund_query(alipay_gateway, alipay_api):
    """The duplicate: same number, same amount, fund_change N; the query says it is done."""
    alipay_api.answer("alipay.trade.refund", refund_answer("N"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer())
    state = alipay_gateway.refund(refund_request())
    assert state.status == GatewayRefundStatus.SUCCEEDED
    assert (state.amount_minor, state.refunded_at) == (2000, REFUNDED_AT)
    assert alipay_api.methods() == ["alipay.trade.refund", "alipay.trade.fastpay.refund.query"]
    assert alipay_api.biz() == {
        "out_trade_no": OUT_TRADE_NO,
        "out_request_no": OUT_REFUND_NO,
        "query_options": ["gmt_refund_pay"],
    }


def test_a_refund_without_fund_change_is_confirmed_too(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer(None))
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer())
    assert alipay_gateway.refund(refund_request()).status == GatewayRefundStatus.SUCCEEDED


def test_an_unsettled_refund_is_processing(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer("N"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", ok(trade_no="2024", out_trade_no=OUT_TRADE_NO))
    state = alipay_gateway.refund(refund_request())
    assert state.status == GatewayRefundStatus.PROCESSING
    assert "same number" in state.message


def test_a_confirmed_refund_of_another_amount_is_a_mismatch(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer("N"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer(refund_amount="10.00"))
    with pytest.raises(AmountMismatch, match="1000"):
        alipay_gateway.refund(refund_request())


def test_a_discordant_repeat_returns_the_refund_made_under_that_number(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refused("ACQ.DISCORDANT_REPEAT_REQUEST", "重复请求不一致"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer())
    assert alipay_gateway.refund(refund_request()).status == GatewayRefundStatus.SUCCEEDED


def test_a_discordant_repeat_for_another_amount_is_a_mismatch(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refused("ACQ.DISCORDANT_REPEAT_REQUEST"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer(refund_amount="30.00"))
    with pytest.raises(AmountMismatch):
        alipay_gateway.refund(refund_request())


def test_a_discordant_repeat_without_a_refund_stays_rejected(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refused("ACQ.DISCORDANT_REPEAT_REQUEST"))
    alipay_api.answer("alipay.trade.fastpay.refund.query", ok(out_trade_no=OUT_TRADE_NO))
    with pytest.raises(GatewayRejected) as caught:
        alipay_gateway.refund(refund_request())
    assert caught.value.sub_code == "ACQ.DISCORDANT_REPEAT_REQUEST"


def test_a_low_balance_is_retried_later_with_the_same_number(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refused("ACQ.SELLER_BALANCE_NOT_ENOUGH", "卖家余额不足"))
    with pytest.raises(GatewayUnavailable, match="ACQ.SELLER_BALANCE_NOT_ENOUGH") as caught:
        alipay_gateway.refund(refund_request())
    assert not isinstance(caught.value, GatewayRejected)


@pytest.mark.parametrize(
    "sub_code", ["ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "ACQ.TRADE_HAS_FINISHED", "ACQ.TRADE_NOT_ALLOW_REFUND"]
)
def test_refund_declines(alipay_gateway, alipay_api, sub_code):
    alipay_api.answer("alipay.trade.refund", refused(sub_code))
    with pytest.raises(GatewayRejected) as caught:
        alipay_gateway.refund(refund_request())
    assert caught.value.sub_code == sub_code


@pytest.mark.parametrize(
    "error", [requests.exceptions.ReadTimeout("slow"), requests.exceptions.ConnectTimeout("no route")]
)
def test_refund_timeout_is_an_unknown_outcome(alipay_gateway, alipay_api, error):
    alipay_api.answer("alipay.trade.refund", error=error)
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.refund(refund_request())


def test_refund_system_error_is_an_unknown_outcome(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refused("ACQ.SYSTEM_ERROR"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.refund(refund_request())


def test_refund_bad_signature(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.trade.refund", refund_answer("Y"), key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.refund(refund_request())


def test_refund_answer_for_another_trade_is_a_fault(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer("Y", out_trade_no="SO_OTHER"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.refund(refund_request())


@pytest.mark.parametrize(
    "changes",
    [{"amount_minor": 0}, {"amount_minor": 20.0}, {"currency": "USD"}, {"out_refund_no": ""}, {"out_refund_no": "R" * 65}],
)
def test_refunds_alipay_cannot_take_are_refused_before_sending(alipay_gateway, changes):
    with pytest.raises(ValueError):
        alipay_gateway.refund(refund_request(**changes))


def test_a_refund_without_reason_sends_none(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.refund", refund_answer("Y"))
    alipay_gateway.refund(refund_request(reason=""))
    assert "refund_reason" not in alipay_api.biz()


# -- refund query ---------------------------------------------------------------------


def test_refund_query_success(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer())
    state = alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))
    assert state.status == GatewayRefundStatus.SUCCEEDED
    assert (state.amount_minor, state.refunded_at) == (2000, REFUNDED_AT)


def test_refund_query_without_refund_data_is_not_found(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", ok(trade_no="2024", out_trade_no=OUT_TRADE_NO,
                                                             out_request_no=OUT_REFUND_NO))
    state = alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))
    assert state.status == GatewayRefundStatus.NOT_FOUND


def test_refund_data_without_refund_status_is_not_taken_for_success(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer(refund_status=""))
    state = alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))
    assert state.status == GatewayRefundStatus.PROCESSING
    assert state.amount_minor == 2000


def test_refund_query_of_an_unknown_trade_is_not_found(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refused("ACQ.TRADE_NOT_EXIST"))
    state = alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))
    assert state.status == GatewayRefundStatus.NOT_FOUND


def test_refund_query_decline(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refused("ACQ.INVALID_PARAMETER"))
    with pytest.raises(GatewayRejected):
        alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))


def test_refund_query_timeout(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.trade.fastpay.refund.query", error=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))


def test_refund_query_bad_signature(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer(), key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))


@pytest.mark.parametrize("changes", [{"out_request_no": "RF_OTHER"}, {"refund_amount": "20.001"}])
def test_refund_query_answers_that_cannot_be_read_are_unknown(alipay_gateway, alipay_api, changes):
    alipay_api.answer("alipay.trade.fastpay.refund.query", refund_query_answer(**changes))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.query_refund(refund_ref(OUT_TRADE_NO, OUT_REFUND_NO))
