"""The control API's WeChat Pay routes: trades and refunds as the sandbox holds them,
and the shopper's actions without a browser."""
import pytest

from payments.gateways.base import TradeStatus
from tests.gateway_references import trade_ref
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.flows import paid_trade as alipay_paid_trade
from tests.sandbox.wechatpay_client import refund_request
from tests.sandbox.wechatpay_flows import control_status, h5_prepay, paid_trade, prepay, wechat_trade

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]


def test_the_trade_view_shows_the_wire_state_refunds_and_pages(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no, amount_minor=1250)
    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 250, total_minor=1250))
    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 250, total_minor=1250))

    trade = wechat_trade(sandbox, out_trade_no)

    assert (trade["provider"], trade["status"], trade["trade_state"], trade["trade_type"]) == (
        "wechatpay", "paid", "REFUND", "NATIVE",
    )  # fmt: skip
    assert (trade["amount_minor"], trade["amount"], trade["refund_count"]) == (1250, "12.50", 1)
    assert trade["notify_url"] == wx_merchant.wechatpay_notify_url
    assert trade["transaction_id"] and trade["expired"] is False
    assert trade["scan_url"].startswith(sandbox.url("/wechatpay/scan/"))
    assert trade["h5_url"].startswith(sandbox.url("/wechatpay/h5/"))
    (refund,) = trade["refunds"]
    assert {name: refund[name] for name in ("out_refund_no", "amount_minor", "status", "wire_status", "requests")} == {
        "out_refund_no": "R-1", "amount_minor": 250, "status": "processing", "wire_status": "PROCESSING",
        "requests": 2,
    }  # fmt: skip
    assert refund["notify_url"] == wx_merchant.wechatpay_refund_notify_url
    assert sandbox.control("GET", "wechatpay/refunds/R-1")["out_trade_no"] == out_trade_no


def test_the_trade_list_holds_only_wechatpay_trades(sandbox, wechatpay, alipay, merchant, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)
    alipay_paid_trade(sandbox, alipay, merchant, new_out_trade_no())

    listed = sandbox.control("GET", "wechatpay/trades")["trades"]

    assert [trade["out_trade_no"] for trade in listed] == [out_trade_no]


def test_the_shopper_actions_move_the_trade(sandbox, wechatpay, wx_merchant):
    scanned, failed = new_out_trade_no(), new_out_trade_no()
    prepay(wechatpay, wx_merchant, scanned)
    h5_prepay(wechatpay, wx_merchant, failed)

    after_scan = sandbox.control("POST", f"wechatpay/trades/{scanned}/scan")
    after_fail = sandbox.control("POST", f"wechatpay/trades/{failed}/fail")
    after_pay = sandbox.control("POST", f"wechatpay/trades/{scanned}/pay")

    assert (after_scan["status"], after_scan["trade_state"], after_scan["transaction_id"]) == ("pending", "NOTPAY", None)
    assert (after_fail["status"], after_fail["trade_state"], after_fail["trade_type"]) == ("failed", "PAYERROR", "MWEB")
    assert (after_pay["status"], after_pay["trade_state"]) == ("paid", "SUCCESS")
    wx_merchant.wait_for_notifications(scanned, 1)
    assert wechatpay.query_payment(trade_ref(scanned)).status == TradeStatus.SUCCEEDED


def test_refused_shopper_actions(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)

    assert control_status(sandbox, "POST", f"wechatpay/trades/{out_trade_no}/pay") == 409
    assert control_status(sandbox, "POST", f"wechatpay/trades/{out_trade_no}/fail") == 409
    assert control_status(sandbox, "POST", "wechatpay/trades/NOPE000/pay") == 404
    assert control_status(sandbox, "GET", "wechatpay/trades/NOPE000") == 404
    assert control_status(sandbox, "GET", "wechatpay/refunds/NOPE") == 404


def test_reset_forgets_wechatpay_trades(sandbox, wechatpay, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no)

    sandbox.control("POST", "reset")

    assert sandbox.control("GET", "wechatpay/trades")["trades"] == []
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.NOT_FOUND
