"""page.pay and wap.pay: the cashier page, its buttons and the signed return (A7, A9)."""
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.sandbox.alipay_client import SELLER_ID, beijing_now_text, sdk_verifies
from tests.sandbox.flows import new_out_trade_no

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def page_biz(out_trade_no: str, amount: str = "88.88", **extra: str) -> dict:
    return {
        "out_trade_no": out_trade_no,
        "total_amount": amount,
        "subject": "龙井茶 Longjing tea",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        **extra,
    }


def open_cashier(shopper, alipay, merchant, biz, **common):
    url = alipay.page_pay_url(biz, return_url=merchant.return_url, notify_url=merchant.notify_url, **common)
    return shopper.arrive(shopper.http.get(url, allow_redirects=False, timeout=10))


def query_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def test_pay_notifies_and_returns_with_signed_parameters(sandbox, sdk, alipay, merchant, shopper, out_trade_no):
    """python-alipay-sdk builds the URL and checks the return and the notification."""
    url = sandbox.alipay_gateway_url + "?" + sdk.api_alipay_trade_page_pay(
        subject="龙井茶", out_trade_no=out_trade_no, total_amount="88.88",
        return_url=merchant.return_url, notify_url=merchant.notify_url,
    )  # fmt: skip
    page = shopper.arrive(shopper.http.get(url, allow_redirects=False, timeout=10))
    assert page.state == "announced"
    assert page.element("sandbox-amount").text.strip() == "¥88.88"
    assert {"sandbox-pay", "sandbox-fail", "sandbox-cancel"} <= set(page.elements)

    response = shopper.press(page, "sandbox-pay")

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(merchant.return_url + "?")
    returned = query_params(location)
    assert sdk_verifies(sdk, returned)
    assert alipay.verify_callback(returned)
    assert returned["method"] == "alipay.trade.page.pay.return"
    assert returned["out_trade_no"] == out_trade_no
    assert returned["total_amount"] == "88.88"
    assert returned["seller_id"] == SELLER_ID
    assert len(returned["trade_no"]) == 28 and returned["trade_no"].isdigit()
    assert "trade_status" not in returned

    (notification,) = merchant.wait_for_notifications(out_trade_no, 1)
    fields = notification.fields
    assert notification.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert sdk_verifies(sdk, fields)
    assert fields["trade_status"] == "TRADE_SUCCESS"
    assert fields["trade_no"] == returned["trade_no"]
    assert fields["total_amount"] == fields["receipt_amount"] == "88.88"
    assert fields["notify_type"] == "trade_status_sync"
    assert fields["fund_bill_list"] == '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]'
    assert fields["subject"] == "龙井茶"
    assert {"notify_id", "notify_time", "gmt_create", "gmt_payment", "buyer_id", "buyer_logon_id"} <= set(fields)

    queried = sdk.api_alipay_trade_query(out_trade_no=out_trade_no)
    assert (queried["trade_status"], queried["total_amount"]) == ("TRADE_SUCCESS", "88.88")
    paid_page = shopper.open(page.url)
    assert paid_page.state == "paid" and not paid_page.has("sandbox-pay")


def test_the_auto_submitted_form_post_is_accepted(alipay, merchant, shopper, out_trade_no):
    params = alipay.signed_params(
        "alipay.trade.page.pay", page_biz(out_trade_no), return_url=merchant.return_url,
        notify_url=merchant.notify_url,
    )  # fmt: skip
    response = shopper.http.post(
        alipay.gateway_url + "?charset=utf-8", data=params, allow_redirects=False, timeout=10
    )

    page = shopper.arrive(response)

    assert page.element("sandbox-out-trade-no").text == out_trade_no


def test_fail_closes_the_trade_and_links_back_without_trade_no(alipay, sdk, merchant, shopper, out_trade_no):
    page = open_cashier(shopper, alipay, merchant, page_biz(out_trade_no))

    failed = shopper.press_and_read(page, "sandbox-fail")

    assert failed.state == "failed"
    link = failed.element("sandbox-return-link").attrs["href"]
    returned = query_params(link)
    assert link.startswith(merchant.return_url)
    assert sdk_verifies(sdk, returned)
    assert "trade_no" not in returned
    assert alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no}).node["trade_status"] == "TRADE_CLOSED"
    assert shopper.submit_stale(page, "pay").status_code == 409
    assert merchant.notifications(out_trade_no) == []


def test_cancel_creates_no_trade_and_goes_back_to_the_return_url(alipay, sdk, merchant, shopper, out_trade_no):
    page = open_cashier(shopper, alipay, merchant, page_biz(out_trade_no))

    response = shopper.press(page, "sandbox-cancel")

    assert response.status_code == 302
    returned = query_params(response.headers["Location"])
    assert sdk_verifies(sdk, returned) and "trade_no" not in returned
    answer = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no})
    assert answer.sub_code == "ACQ.TRADE_NOT_EXIST"
    # The shopper may still change their mind before the deadline.
    assert shopper.press(page, "sandbox-pay").status_code == 302


def test_wap_cancel_goes_to_quit_url(alipay, merchant, shopper, out_trade_no):
    biz = page_biz(out_trade_no, product_code="QUICK_WAP_WAY", quit_url=merchant.base_url + "/orders/1/")
    page = open_cashier(shopper, alipay, merchant, biz, method="alipay.trade.wap.pay")

    response = shopper.press(page, "sandbox-cancel")
    paid = shopper.press(page, "sandbox-pay")

    assert response.headers["Location"] == merchant.base_url + "/orders/1/"
    assert query_params(paid.headers["Location"])["method"] == "alipay.trade.wap.pay.return"


def test_the_same_number_with_another_amount_is_refused(alipay, merchant, shopper, out_trade_no):
    open_cashier(shopper, alipay, merchant, page_biz(out_trade_no, "88.88"))

    page = open_cashier_error(shopper, alipay, merchant, page_biz(out_trade_no, "99.00"))

    assert page.element("sandbox-error").attrs["data-sub-code"] == "ACQ.CONTEXT_INCONSISTENT"


def open_cashier_error(shopper, alipay, merchant, biz, **common):
    url = alipay.page_pay_url(biz, return_url=merchant.return_url, notify_url=merchant.notify_url, **common)
    return shopper.open(url)


def test_a_paid_or_closed_number_cannot_be_paid_again(alipay, merchant, shopper, out_trade_no, sandbox):
    page = open_cashier(shopper, alipay, merchant, page_biz(out_trade_no))
    shopper.press(page, "sandbox-pay")
    closed_no = new_out_trade_no()
    open_cashier(shopper, alipay, merchant, page_biz(closed_no))
    sandbox.control("POST", f"alipay/trades/{closed_no}/scan")
    assert alipay.call("alipay.trade.close", {"out_trade_no": closed_no}).code == "10000"

    paid_again = open_cashier_error(shopper, alipay, merchant, page_biz(out_trade_no))
    closed_again = open_cashier_error(shopper, alipay, merchant, page_biz(closed_no))

    assert paid_again.element("sandbox-error").attrs["data-sub-code"] == "ACQ.TRADE_HAS_SUCCESS"
    assert closed_again.element("sandbox-error").attrs["data-sub-code"] == "ACQ.TRADE_HAS_CLOSE"


def test_a_request_with_a_bad_signature_shows_an_error_page(alipay, merchant, shopper, out_trade_no):
    url = alipay.page_pay_url(page_biz(out_trade_no), return_url=merchant.return_url)
    forged = url.replace("88.88", "0.01")

    page = shopper.open(forged)

    assert page.element("sandbox-error").attrs["data-sub-code"] == "isv.invalid-signature"


def test_after_time_expire_the_page_says_expired_and_refuses_payment(alipay, merchant, shopper, out_trade_no):
    biz = page_biz(out_trade_no, time_expire=beijing_now_text(timedelta(minutes=-1)))
    page = open_cashier(shopper, alipay, merchant, biz)

    refused = shopper.submit_stale(page, "pay")

    assert page.state == "expired" and not page.has("sandbox-pay")
    assert refused.status_code == 409
    answer = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no})
    assert answer.node["trade_status"] == "TRADE_CLOSED"


def test_time_expire_is_judged_on_the_sandbox_clock(alipay, merchant, shopper, out_trade_no, sandbox):
    biz = page_biz(out_trade_no, time_expire=beijing_now_text(timedelta(hours=1)))
    page = open_cashier(shopper, alipay, merchant, biz)
    assert page.state == "announced"

    sandbox.control("POST", "settings", {"clock_offset_seconds": 2 * 3600})
    expired = shopper.open(page.url)

    assert expired.state == "expired"


def test_a_missing_product_code_is_refused(alipay, merchant, shopper, out_trade_no):
    biz = page_biz(out_trade_no)
    del biz["product_code"]

    page = open_cashier_error(shopper, alipay, merchant, biz)

    assert page.element("sandbox-error").attrs["data-sub-code"] == "ACQ.INVALID_PARAMETER"


def test_the_return_keeps_the_merchant_query_string(alipay, merchant, shopper, out_trade_no):
    biz = page_biz(out_trade_no)
    url = alipay.page_pay_url(biz, return_url=merchant.return_url + "?lang=zh", notify_url=merchant.notify_url)
    page = shopper.arrive(shopper.http.get(url, allow_redirects=False, timeout=10))

    location = shopper.press(page, "sandbox-pay").headers["Location"]

    assert location.startswith(merchant.return_url + "?lang=zh&")
    assert query_params(location)["lang"] == "zh"
