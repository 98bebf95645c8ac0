"""The UnionPay adapter against stubbed hosts (`responses`): what it sends and how it
reads every answer (docs/gateways-alipay-unionpay.md B5-B9, B12, B15)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from payments.exceptions import GatewayRejected, GatewayUnavailable, ResponseNotVerified
from payments.gateways.base import (
    ActionKind,
    GatewayRefundStatus,
    PaymentRequest,
    PayMethod,
    RefundReference,
    RefundRequest,
    ReturnMethod,
    TradeReference,
    TradeStatus,
)
from payments.gateways.unionpay import UnionPayGateway
from payments.gateways.unionpay.formats import BEIJING
from tests.payments.gateways.conftest import NOW
from tests.payments.gateways.unionpay_support import (
    BACK_URL,
    FRONT_URL,
    MER_ID,
    QUERY_URL,
    acp_verify,
    query_answer,
)

ORDER_ID = "2024050112345678P01"
REFUND_NO = "2024050112345678R01"
REQUESTED_AT = datetime(2024, 5, 1, 2, 0, 5, tzinfo=UTC)  # 10:00:05 in Beijing
TXN_TIME = "20240501100005"
SUBMITTED_AT = datetime(2024, 5, 1, 2, 3, 0, tzinfo=UTC)
REFUND_TXN_TIME = "20240501100300"
QUERY_ID = "782405011003040674028"
TRADE = TradeReference(ORDER_ID, REQUESTED_AT, QUERY_ID)
REFUND = RefundReference(REFUND_NO, SUBMITTED_AT, TRADE)


def payment_request(**changes) -> PaymentRequest:
    values = {
        "out_trade_no": ORDER_ID, "amount_minor": 8800, "currency": "CNY", "subject": "Longjing tea",
        "method": PayMethod.PAGE, "notify_url": "https://shop.test/payments/unionpay/notify/",
        "return_url": "https://shop.test/payments/unionpay/return/", "expires_at": REQUESTED_AT + timedelta(minutes=30),
        "requested_at": REQUESTED_AT,
    }  # fmt: skip
    return PaymentRequest(**{**values, **changes})


def refund_request(**changes) -> RefundRequest:
    values = {
        "out_trade_no": ORDER_ID, "out_refund_no": REFUND_NO, "amount_minor": 3000, "total_minor": 8800,
        "currency": "CNY", "notify_url": "https://shop.test/refunds/unionpay/notify/", "gateway_trade_no": QUERY_ID,
        "requested_at": SUBMITTED_AT,
    }  # fmt: skip
    return RefundRequest(**{**values, **changes})


def test_capabilities_say_what_unionpay_cannot_do():
    capabilities = UnionPayGateway.capabilities
    assert capabilities.methods == {PayMethod.PAGE, PayMethod.WAP}
    assert not capabilities.closes_trades
    assert capabilities.return_method is ReturnMethod.POST
    assert capabilities.notifies_refunds
    assert not capabilities.refund_number_reusable_after_failure


@pytest.mark.parametrize("change, problem", [
    ({"mer_id": "123"}, "mer_id is not a 15-character merchant id"),
    ({"gateway_base": "ftp://x"}, "gateway_base is not an http(s) URL"),
    ({"verify_cert_path": "/nowhere.pem"}, "verify_cert_path: no file at /nowhere.pem"),
    ({"file_transfer_url": ""}, "file_transfer_url is not set"),
])
def test_configuration_problems_are_named(unionpay_options, change, problem):
    assert problem in UnionPayGateway.configuration_problems({**unionpay_options, **change})


def test_a_good_configuration_has_no_problem(unionpay_options):
    assert UnionPayGateway.configuration_problems(unionpay_options) == []


# -- the front consume (B6) --------------------------------------------------------


@pytest.mark.parametrize("method, channel", [(PayMethod.PAGE, "07"), (PayMethod.WAP, "08")])
def test_the_front_consume_is_a_signed_form_for_the_browser(unionpay_gateway, method, channel):
    action = unionpay_gateway.start_payment(payment_request(method=method))

    assert (action.kind, action.url) == (ActionKind.FORM, FRONT_URL)
    fields = dict(action.form_fields)
    assert fields == {
        **fields,
        "version": "5.1.0", "encoding": "UTF-8", "signMethod": "01", "txnType": "01", "txnSubType": "01",
        "bizType": "000201", "channelType": channel, "accessType": "0", "merId": MER_ID, "orderId": ORDER_ID,
        "txnTime": TXN_TIME, "txnAmt": "8800", "currencyCode": "156", "payTimeout": "20240501103005",
        "frontUrl": "https://shop.test/payments/unionpay/return/",
        "backUrl": "https://shop.test/payments/unionpay/notify/",
    }  # fmt: skip
    credential = unionpay_gateway._credential
    assert fields["certId"] == str(credential.certificate.serial_number) == "71000000001"
    assert acp_verify(fields, credential.certificate.public_key())


@pytest.mark.parametrize("change, message", [
    ({"method": PayMethod.QR}, "not qr"),
    ({"requested_at": None}, "requested_at"),
    ({"out_trade_no": "2024-05-01_1"}, "8 to 32 letters or digits"),
    ({"currency": "USD"}, "CNY"),
    ({"amount_minor": 0}, "positive integer"),
    ({"return_url": "https://shop.test/return/?order=1"}, "query string"),
    ({"notify_url": "/payments/unionpay/notify/"}, "absolute"),
])
def test_a_request_unionpay_cannot_take_is_refused_before_anything_is_signed(unionpay_gateway, change, message):
    with pytest.raises(ValueError, match=message):
        unionpay_gateway.start_payment(payment_request(**change))


# -- query (B8, B12) ---------------------------------------------------------------


def test_the_query_sends_the_attempts_own_time_and_maps_a_success(unionpay_gateway, unionpay_api):
    unionpay_api.answer(QUERY_URL, query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}))

    state = unionpay_gateway.query_payment(TRADE)

    (sent,) = unionpay_api.sent(QUERY_URL)
    assert {name: sent[name] for name in ("txnType", "txnSubType", "bizType", "orderId", "txnTime", "merId")} == {
        "txnType": "00", "txnSubType": "00", "bizType": "000000", "orderId": ORDER_ID, "txnTime": TXN_TIME,
        "merId": MER_ID}
    assert acp_verify(sent, unionpay_gateway._credential.certificate.public_key())
    assert (state.status, state.amount_minor, state.gateway_trade_no) == (TradeStatus.SUCCEEDED, 8800, QUERY_ID)
    assert state.paid_at == datetime(2024, 5, 1, 10, 0, 5, tzinfo=BEIJING)


@pytest.mark.parametrize("orig, status", [
    ("00", TradeStatus.SUCCEEDED), ("A6", TradeStatus.SUCCEEDED), ("03", TradeStatus.PENDING),
    ("05", TradeStatus.PENDING), ("01", TradeStatus.FAILED), ("42", TradeStatus.FAILED), ("61", TradeStatus.FAILED),
])
def test_orig_resp_code_decides(unionpay_gateway, unionpay_api, orig, status):
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(
        query_answer(fields, orig_resp_code=orig)))
    assert unionpay_gateway.query_payment(TRADE).status is status


def test_no_such_transaction_is_not_found(unionpay_gateway, unionpay_api):
    unionpay_api.answer(QUERY_URL, query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}, resp_code="34"))
    assert unionpay_gateway.query_payment(TRADE).status is TradeStatus.NOT_FOUND


@pytest.mark.parametrize("code", ["03", "04", "05", "06", "37"])
def test_an_undetermined_query_is_unavailable(unionpay_gateway, unionpay_api, code):
    unionpay_api.answer(QUERY_URL, query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}, resp_code=code))
    with pytest.raises(GatewayUnavailable, match=f"respCode {code}"):
        unionpay_gateway.query_payment(TRADE)


def test_a_refused_query_is_rejected_with_its_code(unionpay_gateway, unionpay_api):
    unionpay_api.answer(QUERY_URL, query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}, resp_code="10"))
    with pytest.raises(GatewayRejected) as refused:
        unionpay_gateway.query_payment(TRADE)
    assert refused.value.sub_code == "10"


@pytest.mark.parametrize("answer", [
    requests.ConnectTimeout("slow"), requests.ConnectionError("refused"), (502, "Bad Gateway"),
])
def test_transport_failures_are_unavailable(unionpay_gateway, unionpay_api, answer):
    unionpay_api.answer(QUERY_URL, answer)
    with pytest.raises(GatewayUnavailable):
        unionpay_gateway.query_payment(TRADE)


def test_answers_that_do_not_verify_are_never_results(unionpay_gateway, unionpay_api, unionpay_chain):
    good = query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME})
    unionpay_api.answer(QUERY_URL, good, sign=False)
    unionpay_api.answer(QUERY_URL, good, signer=unionpay_chain.impostor)
    unionpay_api.answer(QUERY_URL, good, signer=unionpay_chain.wrong_cn)
    unionpay_api.answer(QUERY_URL, unionpay_chain.forged(good), sign=False)
    unionpay_api.answer(QUERY_URL, (200, "<html>maintenance</html>"))
    for reason in ("no signPubKeyCert", "does not chain", "not UnionPay", "does not verify", "does not parse"):
        with pytest.raises(ResponseNotVerified, match=reason):
            unionpay_gateway.query_payment(TRADE)


@pytest.mark.parametrize("change", [{"merId": "898110000009999"}, {"orderId": "2024050112345678P02"},
                                    {"txnTime": "20240501100006"}, {"txnType": "04"}])
def test_a_verified_answer_about_another_transaction_is_refused(unionpay_gateway, unionpay_api, change):
    unionpay_api.answer(QUERY_URL, {**query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}), **change})
    with pytest.raises(ResponseNotVerified):
        unionpay_gateway.query_payment(TRADE)


def test_a_success_without_an_amount_is_not_believed(unionpay_gateway, unionpay_api):
    answer = query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME})
    answer["txnAmt"] = "88.00"
    unionpay_api.answer(QUERY_URL, answer)
    with pytest.raises(GatewayUnavailable, match="txnAmt"):
        unionpay_gateway.query_payment(TRADE)


def test_close_is_never_a_unionpay_call(unionpay_gateway):
    with pytest.raises(ValueError, match="payTimeout"):
        unionpay_gateway.close_payment(TRADE)


# -- refund (B9, B15) ----------------------------------------------------------------


def refund_answer(fields, *, code="00"):
    return {"accessType": "0", "bizType": fields["bizType"], "encoding": "UTF-8", "merId": MER_ID,
            "orderId": fields["orderId"], "origQryId": fields["origQryId"], "queryId": "782405011004050000001",
            "respCode": code, "respMsg": "成功[0000000]", "signMethod": "01", "txnAmt": fields["txnAmt"],
            "txnSubType": "00", "txnTime": fields["txnTime"], "txnType": "04", "version": "5.1.0"}


def test_a_refund_is_accepted_only_and_sends_its_own_number_and_time(unionpay_gateway, unionpay_api):
    unionpay_api.answer(BACK_URL, lambda fields: unionpay_api.signer.sign(refund_answer(fields)))

    state = unionpay_gateway.refund(refund_request())

    (sent,) = unionpay_api.sent(BACK_URL)
    assert {name: sent[name] for name in ("txnType", "txnSubType", "orderId", "txnTime", "txnAmt", "origQryId",
                                          "backUrl", "channelType")} == {
        "txnType": "04", "txnSubType": "00", "orderId": REFUND_NO, "txnTime": REFUND_TXN_TIME, "txnAmt": "3000",
        "origQryId": QUERY_ID, "backUrl": "https://shop.test/refunds/unionpay/notify/", "channelType": "07"}
    assert (state.status, state.gateway_refund_id) == (GatewayRefundStatus.PROCESSING, "782405011004050000001")


def test_a_duplicate_is_answered_by_querying_the_refund(unionpay_gateway, unionpay_api):
    unionpay_api.answer(BACK_URL, lambda fields: unionpay_api.signer.sign(refund_answer(fields, code="12")))
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(
        query_answer(fields, txn_type="04", amount="3000", query_id="782405011004050000001")))

    state = unionpay_gateway.refund(refund_request())

    assert (state.status, state.amount_minor) == (GatewayRefundStatus.SUCCEEDED, 3000)
    assert unionpay_api.sent(QUERY_URL)[0]["txnTime"] == REFUND_TXN_TIME


def test_a_duplicate_the_query_cannot_find_stays_unknown(unionpay_gateway, unionpay_api):
    unionpay_api.answer(BACK_URL, lambda fields: unionpay_api.signer.sign(refund_answer(fields, code="12")))
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(query_answer(fields, resp_code="34")))
    with pytest.raises(GatewayUnavailable, match="duplicate"):
        unionpay_gateway.refund(refund_request())


@pytest.mark.parametrize("code, error", [("35", GatewayRejected), ("36", GatewayRejected), ("45", GatewayRejected),
                                         ("03", GatewayUnavailable), ("06", GatewayUnavailable)])
def test_refund_refusals_and_unknown_outcomes(unionpay_gateway, unionpay_api, code, error):
    unionpay_api.answer(BACK_URL, lambda fields: unionpay_api.signer.sign(refund_answer(fields, code=code)))
    with pytest.raises(error):
        unionpay_gateway.refund(refund_request())


@pytest.mark.parametrize("change, message", [
    ({"gateway_trade_no": ""}, "queryId"), ({"requested_at": None}, "submission time"),
    ({"amount_minor": 9000}, "more than"), ({"out_refund_no": "R-1"}, "8 to 32"),
])
def test_a_refund_unionpay_cannot_take_is_refused_before_sending(unionpay_gateway, change, message):
    with pytest.raises(ValueError, match=message):
        unionpay_gateway.refund(refund_request(**change))


@pytest.mark.parametrize("orig, status", [("00", GatewayRefundStatus.SUCCEEDED), ("05", GatewayRefundStatus.PROCESSING),
                                          ("01", GatewayRefundStatus.CLOSED), ("35", GatewayRefundStatus.CLOSED)])
def test_the_refund_query_uses_the_refunds_own_number_and_time(unionpay_gateway, unionpay_api, orig, status):
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(
        query_answer(fields, txn_type="04", orig_resp_code=orig, amount="3000", query_id="782405011004050000001")))

    state = unionpay_gateway.query_refund(REFUND)

    (sent,) = unionpay_api.sent(QUERY_URL)
    assert (sent["orderId"], sent["txnTime"]) == (REFUND_NO, REFUND_TXN_TIME)
    assert state.status is status
    if status is GatewayRefundStatus.CLOSED:
        assert "new number" in state.message


def test_an_unknown_refund_is_not_found(unionpay_gateway, unionpay_api):
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(query_answer(fields, resp_code="34")))
    assert unionpay_gateway.query_refund(REFUND).status is GatewayRefundStatus.NOT_FOUND


def test_a_refund_query_answered_with_a_consume_is_refused(unionpay_gateway, unionpay_api):
    unionpay_api.answer(QUERY_URL, lambda fields: unionpay_api.signer.sign(query_answer(fields, txn_type="01")))
    with pytest.raises(ResponseNotVerified, match="not a refund"):
        unionpay_gateway.query_refund(REFUND)


def test_the_clock_is_the_adapters(make_unionpay_gateway, unionpay_api):
    """Certificates are checked at the adapter's clock: one past their end is refused."""
    gateway = make_unionpay_gateway(clock=lambda: datetime(2046, 1, 1, tzinfo=UTC))
    unionpay_api.answer(QUERY_URL, query_answer({"orderId": ORDER_ID, "txnTime": TXN_TIME}))
    with pytest.raises(ResponseNotVerified, match="valid from"):
        gateway.query_payment(TRADE)
    assert NOW.year == 2024
