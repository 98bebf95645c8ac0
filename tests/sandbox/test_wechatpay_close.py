"""Closing WeChat Pay orders (§6.4): 204, the 5-minute rule, paid and unknown orders."""
import pytest

from payments.exceptions import GatewayRejected, GatewayUnavailable
from payments.gateways.base import CloseOutcome, TradeStatus
from tests.gateway_references import trade_ref
from tests.sandbox.wechatpay_client import MCHID
from tests.sandbox.wechatpay_flows import paid_trade, prepay, wechat_trade

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

FIVE_MINUTES_LATER = 301


def close(wx, out_trade_no: str, **options):
    return wx.call(
        "POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", payload={"mchid": MCHID}, **options
    )


def later(sandbox, seconds: float = FIVE_MINUTES_LATER) -> None:
    sandbox.control("POST", "settings", {"clock_offset_seconds": seconds})


def test_a_close_within_five_minutes_of_the_order_is_refused(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    sandbox.control("POST", "settings", {"time_scale": 1.0})
    prepay(wechatpay, wx_merchant, out_trade_no)

    refused = close(wx, out_trade_no)
    with pytest.raises(GatewayUnavailable):
        # RULE_LIMIT: the shop's janitor must try again later.
        wechatpay.close_payment(trade_ref(out_trade_no))
    later(sandbox, 299)
    still_refused = close(wx, out_trade_no)
    later(sandbox)
    closed = wechatpay.close_payment(trade_ref(out_trade_no))

    assert (refused.status_code, refused.json()["code"]) == (403, "RULE_LIMIT")
    assert still_refused.json()["code"] == "RULE_LIMIT"
    assert closed == CloseOutcome.CLOSED


def test_the_close_window_is_time_scaled(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    """At time scale 0.001 the five minutes are 0.3 s; the client polls until they passed."""
    sandbox.control("POST", "settings", {"time_scale": 0.001})
    prepay(wechatpay, wx_merchant, out_trade_no)

    def accepted():
        response = close(wx, out_trade_no)
        assert response.status_code == 204 or response.json()["code"] == "RULE_LIMIT", response.text
        return response if response.status_code == 204 else None

    answer = sandbox.wait_for(accepted, what="the close to be accepted")

    assert answer.content == b""
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.CLOSED


def test_the_204_is_signed_over_an_empty_body(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)
    later(sandbox)

    response = close(wx, out_trade_no)

    assert (response.status_code, response.content) == (204, b"")
    assert wx.answer_verifies(response)
    assert "Content-Type" not in response.headers


def test_a_closed_order_cannot_be_paid_or_prepaid_again(sandbox, wechatpay, wx, wx_merchant, shopper, out_trade_no):
    action = prepay(wechatpay, wx_merchant, out_trade_no)
    later(sandbox)

    outcome = wechatpay.close_payment(trade_ref(out_trade_no))
    page = shopper.open(action.qr_content)
    again = close(wx, out_trade_no)

    assert outcome == CloseOutcome.CLOSED
    assert wechatpay.query_payment(trade_ref(out_trade_no)).raw["trade_state"] == "CLOSED"
    assert page.state == "closed" and not page.has("sandbox-pay")
    assert (again.status_code, again.json()["code"]) == (400, "ORDER_CLOSED")
    assert wechatpay.close_payment(trade_ref(out_trade_no)) == CloseOutcome.CLOSED
    with pytest.raises(GatewayRejected) as refused:
        prepay(wechatpay, wx_merchant, out_trade_no)
    assert refused.value.sub_code == "ORDER_CLOSED"


def test_closing_a_paid_order_answers_orderpaid(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    later(sandbox)

    response = close(wx, out_trade_no)

    assert (response.status_code, response.json()["code"]) == (400, "ORDERPAID")
    assert wechatpay.close_payment(trade_ref(out_trade_no)) == CloseOutcome.ALREADY_PAID
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.SUCCEEDED


def test_closing_an_unknown_order_answers_204_and_the_number_is_dead(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    response = close(wx, out_trade_no)

    assert response.status_code == 204 and wx.answer_verifies(response)
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.NOT_FOUND
    assert wechatpay.close_payment(trade_ref(out_trade_no)) == CloseOutcome.NOT_FOUND
    with pytest.raises(GatewayRejected) as refused:
        prepay(wechatpay, wx_merchant, out_trade_no)
    assert refused.value.sub_code == "ORDER_CLOSED"
    assert wechat_trade(sandbox, out_trade_no)["status"] == "voided"


def test_a_close_needs_the_mchid_in_its_body(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)
    later(sandbox)

    missing = wx.call("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", payload={})
    other = wx.call("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", payload={"mchid": "1"})

    assert [(r.status_code, r.json()["detail"]["field"]) for r in (missing, other)] == [(400, "mchid")] * 2
    assert wechat_trade(sandbox, out_trade_no)["trade_state"] == "NOTPAY"
