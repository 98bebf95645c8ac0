"""WeChat Pay Native and H5 payments (§6.1-§6.3), with the shop's adapter as the client,
and the encrypted payment notification (§5) it must accept."""
import json
import re
from datetime import datetime, timedelta
from urllib.parse import quote, urljoin

import pytest
import requests

from payments.exceptions import GatewayRejected
from payments.gateways.base import ActionKind, TradeStatus
from tests.gateway_references import trade_ref
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.wechatpay_client import APPID, MCHID, decrypt_resource, payment_request, raw_notification
from tests.sandbox.wechatpay_flows import h5_prepay, notification_log, paid_trade, prepay, wechat_trade

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]


def test_native_prepay_answers_the_scan_page_and_the_order_is_notpay(sandbox, wechatpay, wx_merchant, out_trade_no):
    action = prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=8888)

    assert action.kind == ActionKind.QR
    assert action.qr_content.startswith(sandbox.url("/wechatpay/scan/"))
    state = wechatpay.query_payment(trade_ref(out_trade_no))
    assert (state.status, state.amount_minor, state.gateway_trade_no) == (TradeStatus.PENDING, 8888, "")
    assert state.raw["trade_state"] == "NOTPAY" and state.raw["trade_type"] == "NATIVE"
    trade = wechat_trade(sandbox, out_trade_no)
    assert (trade["status"], trade["trade_state"], trade["refund_count"]) == ("announced", "NOTPAY", 0)


def test_scan_then_pay_sends_a_notification_the_adapter_accepts(
    sandbox, wechatpay, wx_merchant, shopper, out_trade_no
):
    action = prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=8888)

    page = shopper.open(action.qr_content)
    scanned = wechatpay.query_payment(trade_ref(out_trade_no))
    paid_page = shopper.press_and_read(page, "sandbox-pay")
    (notification,) = wx_merchant.wait_for_notifications(out_trade_no, 1)

    assert page.state == "pending" and page.element("sandbox-amount").text == "¥88.88"
    assert scanned.status == TradeStatus.PENDING
    assert paid_page.state == "paid" and not paid_page.has("sandbox-pay")
    parsed = wechatpay.parse_notification(raw_notification(notification))
    trade = wechat_trade(sandbox, out_trade_no)
    assert (parsed.out_trade_no, parsed.status, parsed.amount_minor) == (out_trade_no, TradeStatus.SUCCEEDED, 8888)
    assert parsed.gateway_trade_no == trade["transaction_id"]
    assert re.fullmatch(r"4200\d{24}", trade["transaction_id"])
    assert re.fullmatch(r"EV-[0-9a-f]{32}", parsed.dedupe_key)
    queried = wechatpay.query_payment(trade_ref(out_trade_no))
    assert (queried.status, queried.amount_minor, queried.gateway_trade_no) == (
        TradeStatus.SUCCEEDED, 8888, trade["transaction_id"],
    )  # fmt: skip
    assert queried.paid_at == parsed.paid_at
    assert wx_merchant.notifications()[0].path == "/payments/wechatpay/notify/"


def test_the_notification_envelope_and_resource_follow_the_protocol(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no, amount_minor=1234)
    (notification,) = wx_merchant.notifications(out_trade_no)

    envelope = json.loads(notification.body)
    resource = decrypt_resource(envelope["resource"])

    assert notification.headers["Content-Type"] == "application/json"
    assert set(envelope) == {"id", "create_time", "resource_type", "event_type", "summary", "resource"}
    assert (envelope["resource_type"], envelope["event_type"], envelope["summary"]) == (
        "encrypt-resource", "TRANSACTION.SUCCESS", "支付成功",
    )  # fmt: skip
    assert envelope["create_time"].endswith("+08:00")
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert envelope["resource"]["associated_data"] == "transaction"
    assert envelope["resource"]["original_type"] == "transaction"
    assert re.fullmatch(r"[0-9A-Za-z]{12}", envelope["resource"]["nonce"])
    assert (resource["mchid"], resource["appid"], resource["trade_state"]) == (MCHID, APPID, "SUCCESS")
    assert resource["amount"] == {"total": 1234, "payer_total": 1234, "currency": "CNY", "payer_currency": "CNY"}
    assert resource["payer"]["openid"] and resource["bank_type"]
    assert datetime.fromisoformat(resource["success_time"]).utcoffset() == timedelta(hours=8)
    assert notification.body == json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def test_query_by_transaction_id_knows_only_paid_orders(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    trade = paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)

    by_id = wx.call("GET", f"/v3/pay/transactions/id/{trade['transaction_id']}", query=f"mchid={MCHID}")
    unknown = wx.call("GET", "/v3/pay/transactions/id/4200000000000000000000000000", query=f"mchid={MCHID}")

    assert by_id.status_code == 200 and wx.answer_verifies(by_id)
    assert (by_id.json()["out_trade_no"], by_id.json()["trade_state"]) == (out_trade_no, "SUCCESS")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "ORDER_NOT_EXIST")


def test_an_unknown_order_is_not_found(sandbox, wechatpay, out_trade_no):
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.NOT_FOUND


def test_h5_pay_redirects_to_the_redirect_url_as_given(sandbox, wechatpay, wx_merchant, shopper, out_trade_no):
    action = h5_prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=500)
    expected_return = f"{wx_merchant.wechatpay_return_url}?out_trade_no={out_trade_no}"

    page = shopper.open(action.url)
    response = shopper.press(page, "sandbox-pay")
    requests.get(response.headers["Location"], timeout=10)
    (notification,) = wx_merchant.wait_for_notifications(out_trade_no, 1)

    assert action.kind == ActionKind.REDIRECT
    assert action.url.startswith(sandbox.url("/wechatpay/h5/"))
    assert f"&redirect_url={quote(expected_return, safe='')}" in action.url
    assert page.state == "pending"
    assert (response.status_code, response.headers["Location"]) == (302, expected_return)
    (browser_return,) = [request for request in wx_merchant.received if request.method == "GET"]
    assert wechatpay.parse_return(browser_return.fields) == out_trade_no
    parsed = wechatpay.parse_notification(raw_notification(notification))
    assert (parsed.amount_minor, parsed.raw["trade_type"]) == (500, "MWEB")
    assert wechatpay.query_payment(trade_ref(out_trade_no)).raw["trade_type"] == "MWEB"


def test_h5_fail_links_back_and_cancel_goes_back_unchanged(sandbox, wechatpay, wx_merchant, shopper):
    failed, cancelled = new_out_trade_no(), new_out_trade_no()
    fail_page = shopper.open(h5_prepay(wechatpay, wx_merchant, failed).url)
    cancel_page = shopper.open(h5_prepay(wechatpay, wx_merchant, cancelled).url)

    after_fail = shopper.press_and_read(fail_page, "sandbox-fail")
    after_cancel = shopper.press(cancel_page, "sandbox-cancel")

    assert after_fail.state == "failed"
    assert after_fail.element("sandbox-return-link").attrs["href"].endswith(f"?out_trade_no={failed}")
    assert wechatpay.query_payment(trade_ref(failed)).raw["trade_state"] == "PAYERROR"
    assert after_cancel.status_code == 302
    assert after_cancel.headers["Location"].endswith(f"?out_trade_no={cancelled}")
    assert wechatpay.query_payment(trade_ref(cancelled)).raw["trade_state"] == "NOTPAY"
    assert notification_log(sandbox, failed) == notification_log(sandbox, cancelled) == []


def test_h5_prepay_needs_the_scene_info(sandbox, wx, wx_merchant, out_trade_no):
    body = {
        "appid": APPID,
        "mchid": MCHID,
        "description": "tea",
        "out_trade_no": out_trade_no,
        "notify_url": wx_merchant.wechatpay_notify_url,
        "amount": {"total": 100},
    }

    no_scene = wx.call("POST", "/v3/pay/transactions/h5", payload=body)
    no_ip = wx.call("POST", "/v3/pay/transactions/h5", payload={**body, "scene_info": {"h5_info": {"type": "Wap"}}})
    bad_type = wx.call(
        "POST", "/v3/pay/transactions/h5",
        payload={**body, "scene_info": {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Desktop"}}},
    )  # fmt: skip

    assert [(r.status_code, r.json()["detail"]["field"]) for r in (no_scene, no_ip, bad_type)] == [
        (400, "scene_info"), (400, "scene_info.payer_client_ip"), (400, "scene_info.h5_info.type"),
    ]  # fmt: skip


def test_the_scan_page_cancel_leaves_the_order_waiting(sandbox, wechatpay, wx_merchant, shopper, out_trade_no):
    page = shopper.open(prepay(wechatpay, wx_merchant, out_trade_no).qr_content)

    cancelled = shopper.press_and_read(page, "sandbox-cancel")
    again = shopper.open(page.url)

    assert cancelled.state == "cancelled"
    assert again.state == "pending" and again.has("sandbox-pay")
    assert wechatpay.query_payment(trade_ref(out_trade_no)).status == TradeStatus.PENDING


def test_fail_is_payerror_without_a_notification(sandbox, wechatpay, wx_merchant, shopper, out_trade_no):
    page = shopper.open(prepay(wechatpay, wx_merchant, out_trade_no).qr_content)

    failed = shopper.press_and_read(page, "sandbox-fail")
    stale_pay = shopper.submit_stale(page, "pay")

    assert failed.state == "failed"
    assert stale_pay.status_code == 409
    state = wechatpay.query_payment(trade_ref(out_trade_no))
    assert (state.status, state.raw["trade_state"]) == (TradeStatus.FAILED, "PAYERROR")
    assert notification_log(sandbox, out_trade_no) == []


def test_the_same_prepay_again_answers_the_same_code_url(sandbox, wechatpay, wx_merchant, out_trade_no):
    request = payment_request(wx_merchant, out_trade_no)
    first = wechatpay.start_payment(request)
    second = wechatpay.start_payment(request)

    assert first.qr_content == second.qr_content


@pytest.mark.parametrize("change", ["amount", "h5 instead of native"])
def test_other_parameters_under_a_used_out_trade_no_are_refused(sandbox, wechatpay, wx_merchant, out_trade_no, change):
    prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=100)

    with pytest.raises(GatewayRejected) as refused:
        if change == "amount":
            prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=200)
        else:
            h5_prepay(wechatpay, wx_merchant, out_trade_no, amount_minor=100)

    assert (refused.value.code, refused.value.sub_code) == ("403", "OUT_TRADE_NO_USED")


def test_a_paid_order_cannot_be_prepaid_again(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)

    with pytest.raises(GatewayRejected) as refused:
        prepay(wechatpay, wx_merchant, out_trade_no)

    assert refused.value.sub_code == "ORDERPAID"


def test_past_time_expire_payment_is_refused_but_the_order_stays_notpay(
    sandbox, wechatpay, wx_merchant, shopper, out_trade_no
):
    action = prepay(wechatpay, wx_merchant, out_trade_no, expires_in=timedelta(minutes=2))
    sandbox.control("POST", "settings", {"clock_offset_seconds": 180})

    page = shopper.open(action.qr_content)
    state = wechatpay.query_payment(trade_ref(out_trade_no))

    assert page.state == "expired" and not page.has("sandbox-pay")
    assert shopper.submit_stale(page, "pay").status_code == 409
    assert (state.status, state.raw["trade_state"]) == (TradeStatus.PENDING, "NOTPAY")
    trade = wechat_trade(sandbox, out_trade_no)
    assert trade["expired"] is True and trade["trade_state"] == "NOTPAY"
    with pytest.raises(GatewayRejected) as refused:
        prepay(wechatpay, wx_merchant, out_trade_no, expires_in=timedelta(minutes=2))
    assert refused.value.sub_code in ("ORDER_CLOSED", "OUT_TRADE_NO_USED")


def test_a_time_expire_sooner_than_one_minute_is_moved_up(sandbox, wechatpay, wx_merchant, out_trade_no):
    prepay(wechatpay, wx_merchant, out_trade_no, expires_in=timedelta(seconds=5))
    sandbox.control("POST", "settings", {"clock_offset_seconds": 30})

    trade = sandbox.control("POST", f"wechatpay/trades/{out_trade_no}/pay")

    assert trade["trade_state"] == "SUCCESS"
    created = datetime.fromisoformat(trade["created_at"])
    assert datetime.fromisoformat(trade["expires_at"]) - created >= timedelta(seconds=59)


def test_the_scan_page_of_an_unknown_token_is_not_found(sandbox):
    assert requests.get(urljoin(sandbox.base_url, "/wechatpay/scan/nope/"), timeout=5).status_code == 404
    assert requests.get(urljoin(sandbox.base_url, "/wechatpay/h5/nope/"), timeout=5).status_code == 404

