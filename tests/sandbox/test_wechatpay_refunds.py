"""WeChat Pay refunds (§6.5-§6.7): idempotency by out_refund_no, PROCESSING, the three
ends and their encrypted notifications (§5.4), with the shop's adapter as the client."""
import json

import pytest

from payments.exceptions import GatewayRejected
from payments.gateways.base import GatewayRefundStatus, TradeStatus
from tests.gateway_references import refund_ref, trade_ref
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.wechatpay_client import MCHID, decrypt_resource, raw_notification, refund_request
from tests.sandbox.wechatpay_flows import (
    control_status,
    notification_log,
    paid_trade,
    prepay,
    wait_for_refund_notifications,
    wechat_trade,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

REFUND_PATH = "/v3/refund/domestic/refunds"


@pytest.fixture
def paid(sandbox, wechatpay, wx_merchant, out_trade_no) -> str:
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no, amount_minor=8888)
    return out_trade_no


def test_a_refund_is_processing_for_one_query_then_succeeds_and_notifies(sandbox, wechatpay, wx_merchant, paid):
    accepted = wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))
    first = wechatpay.query_refund(refund_ref(paid, "R-1"))
    second = wechatpay.query_refund(refund_ref(paid, "R-1"))
    (notification,) = wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)

    assert (accepted.status, accepted.amount_minor) == (GatewayRefundStatus.PROCESSING, 3000)
    assert first.status == GatewayRefundStatus.PROCESSING and first.refunded_at is None
    assert second.status == GatewayRefundStatus.SUCCEEDED and second.refunded_at is not None
    assert accepted.gateway_refund_id == second.gateway_refund_id
    parsed = wechatpay.parse_refund_notification(raw_notification(notification))
    assert (parsed.out_trade_no, parsed.out_refund_no, parsed.status) == (paid, "R-1", GatewayRefundStatus.SUCCEEDED)
    assert (parsed.amount_minor, parsed.total_minor, parsed.gateway_refund_id) == (
        3000, 8888, second.gateway_refund_id,
    )  # fmt: skip
    assert notification.path == "/refunds/wechatpay/notify/"
    state = wechatpay.query_payment(trade_ref(paid))
    assert (state.status, state.raw["trade_state"]) == (TradeStatus.SUCCEEDED, "REFUND")
    trade = wechat_trade(sandbox, paid)
    assert (trade["refunded_minor"], trade["refund_count"]) == (3000, 1)


def test_the_refund_object_has_every_field_the_shop_reads(sandbox, wechatpay, wx, wx_merchant, paid):
    response = wx.call("POST", REFUND_PATH, payload={
        "out_trade_no": paid, "out_refund_no": "R-1", "reason": "缺货",
        "notify_url": wx_merchant.wechatpay_refund_notify_url,
        "amount": {"refund": 1000, "total": 8888, "currency": "CNY"},
    })  # fmt: skip

    assert response.status_code == 200 and wx.answer_verifies(response)
    refund = response.json()
    trade = wechat_trade(sandbox, paid)
    assert {
        name: refund[name] for name in ("out_refund_no", "out_trade_no", "transaction_id", "channel", "status")
    } == {
        "out_refund_no": "R-1", "out_trade_no": paid, "transaction_id": trade["transaction_id"],
        "channel": "ORIGINAL", "status": "PROCESSING",
    }  # fmt: skip
    assert refund["refund_id"] and refund["user_received_account"] and refund["create_time"].endswith("+08:00")
    assert "success_time" not in refund
    assert refund["amount"] == {
        "total": 8888, "refund": 1000, "from": [], "payer_total": 8888, "payer_refund": 1000,
        "settlement_refund": 1000, "settlement_total": 8888, "discount_refund": 0, "currency": "CNY",
        "refund_fee": 0,
    }  # fmt: skip


def test_the_same_out_refund_no_refunds_once(sandbox, wechatpay, wx_merchant, paid):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    request = refund_request(wx_merchant, paid, "R-1", 3000)

    answers = [wechatpay.refund(request) for _ in range(3)]

    assert {answer.gateway_refund_id for answer in answers} == {answers[0].gateway_refund_id}
    assert all(answer.status == GatewayRefundStatus.SUCCEEDED for answer in answers)
    trade = wechat_trade(sandbox, paid)
    assert (trade["refund_count"], trade["refunded_minor"], trade["refunds"][0]["requests"]) == (1, 3000, 3)
    wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)
    assert len(notification_log(sandbox, paid, "refund")) == 1


def test_with_no_processing_queries_a_refund_succeeds_at_once(sandbox, wechatpay, wx_merchant, paid):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})

    accepted = wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))

    assert accepted.status == GatewayRefundStatus.SUCCEEDED and accepted.refunded_at is not None
    wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)


def test_another_amount_under_a_used_number_is_refused(sandbox, wechatpay, wx, wx_merchant, paid):
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))

    with pytest.raises(GatewayRejected) as refused:
        wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 2000))

    assert (refused.value.code, refused.value.sub_code) == ("400", "INVALID_REQUEST")
    assert wechat_trade(sandbox, paid)["refund_count"] == 1


def test_a_number_used_for_another_order_is_refused(sandbox, wechatpay, wx_merchant, paid):
    other = new_out_trade_no()
    paid_trade(sandbox, wechatpay, wx_merchant, other)
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))

    with pytest.raises(GatewayRejected) as refused:
        wechatpay.refund(refund_request(wx_merchant, other, "R-1", 3000))

    assert refused.value.sub_code == "INVALID_REQUEST"


def test_more_than_is_left_is_refused(sandbox, wechatpay, wx_merchant, paid):
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 8000))

    with pytest.raises(GatewayRejected) as refused:
        wechatpay.refund(refund_request(wx_merchant, paid, "R-2", 889))

    assert (refused.value.code, refused.value.sub_code) == ("400", "INVALID_REQUEST")
    assert wechatpay.refund(refund_request(wx_merchant, paid, "R-3", 888)).amount_minor == 888


def test_an_unpaid_or_unknown_order_cannot_be_refunded(sandbox, wechatpay, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)

    for trade_no in (out_trade_no, "T" + "0" * 20):
        with pytest.raises(GatewayRejected) as refused:
            wechatpay.refund(refund_request(wx_merchant, trade_no, "R-1", 100))
        assert (refused.value.code, refused.value.sub_code) == ("404", "RESOURCE_NOT_EXISTS")


def test_amount_total_must_be_the_orders_total(sandbox, wx, wx_merchant, paid):
    response = wx.call("POST", REFUND_PATH, payload={
        "out_trade_no": paid, "out_refund_no": "R-1", "amount": {"refund": 100, "total": 9999, "currency": "CNY"},
    })  # fmt: skip

    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    assert response.json()["detail"]["field"] == "amount.total"


def test_a_refund_may_name_the_payment_by_transaction_id(sandbox, wx, wx_merchant, paid):
    transaction_id = wechat_trade(sandbox, paid)["transaction_id"]

    response = wx.call("POST", REFUND_PATH, payload={
        "transaction_id": transaction_id, "out_refund_no": "R-1",
        "amount": {"refund": 100, "total": 8888, "currency": "CNY"},
    })  # fmt: skip

    assert response.status_code == 200 and response.json()["out_trade_no"] == paid


def test_an_unknown_refund_is_not_found(sandbox, wechatpay, wx, paid):
    state = wechatpay.query_refund(refund_ref(paid, "R-NOPE"))
    response = wx.call("GET", f"{REFUND_PATH}/R-NOPE")

    assert state.status == GatewayRefundStatus.NOT_FOUND
    assert (response.status_code, response.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


@pytest.mark.parametrize(("end", "status"), [("ABNORMAL", GatewayRefundStatus.ABNORMAL), ("CLOSED", GatewayRefundStatus.CLOSED)])
def test_the_control_api_ends_a_refund_abnormal_or_closed_and_it_is_notified(
    sandbox, wechatpay, wx_merchant, paid, end, status
):
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))

    settled = sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": end})
    (notification,) = wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)

    assert settled["wire_status"] == end
    parsed = wechatpay.parse_refund_notification(raw_notification(notification))
    assert (parsed.out_refund_no, parsed.status, parsed.amount_minor, parsed.refunded_at) == ("R-1", status, 3000, None)
    assert json.loads(notification.body)["event_type"] == f"REFUND.{end}"
    assert decrypt_resource(json.loads(notification.body)["resource"])["mchid"] == MCHID
    assert wechatpay.query_refund(refund_ref(paid, "R-1")).status == status
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 0
    assert control_status(sandbox, "POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"}) == 409


def test_a_closed_refund_frees_its_amount_and_an_abnormal_one_keeps_it(sandbox, wechatpay, wx_merchant, paid):
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 8888))
    sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "ABNORMAL"})
    with pytest.raises(GatewayRejected):
        wechatpay.refund(refund_request(wx_merchant, paid, "R-2", 8888))
    other = new_out_trade_no()
    paid_trade(sandbox, wechatpay, wx_merchant, other)
    wechatpay.refund(refund_request(wx_merchant, other, "R-3", 8888))
    sandbox.control("POST", "wechatpay/refunds/R-3/settle", {"status": "CLOSED"})

    again = wechatpay.refund(refund_request(wx_merchant, other, "R-4", 8888))
    replay_of_closed = wechatpay.refund(refund_request(wx_merchant, other, "R-3", 8888))

    assert again.status == GatewayRefundStatus.PROCESSING
    assert replay_of_closed.status == GatewayRefundStatus.CLOSED
    assert wechat_trade(sandbox, other)["refund_count"] == 2


def test_the_control_api_can_end_a_refund_successfully(sandbox, wechatpay, wx_merchant, paid):
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))

    settled = sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"})

    assert (settled["status"], settled["wire_status"]) == ("succeeded", "SUCCESS")
    assert wechatpay.query_refund(refund_ref(paid, "R-1")).status == GatewayRefundStatus.SUCCEEDED
    wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)
    assert control_status(sandbox, "POST", "wechatpay/refunds/R-1/settle", {"status": "BROKEN"}) == 400
    assert control_status(sandbox, "POST", "wechatpay/refunds/R-NOPE/settle", {"status": "SUCCESS"}) == 404


def test_a_refund_without_notify_url_is_not_notified(sandbox, wechatpay, paid):
    wechatpay.refund(refund_request(None, paid, "R-1", 3000))

    sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"})

    assert notification_log(sandbox, paid, "refund") == []

