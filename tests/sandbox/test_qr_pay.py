"""precreate: the QR code is the sandbox scan page; the trade exists once it is opened (A7)."""
import pytest

from tests.sandbox.alipay_client import sdk_verifies

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def test_scan_then_pay_notifies_and_shows_paid(sandbox, sdk, alipay, merchant, shopper, out_trade_no):
    created = sdk.api_alipay_trade_precreate(subject="茶具 tea set", out_trade_no=out_trade_no, total_amount="66.60")
    qr_code = created["qr_code"]
    assert qr_code.startswith(sandbox.base_url + "/alipay/scan/")
    assert sdk.api_alipay_trade_query(out_trade_no=out_trade_no)["sub_code"] == "ACQ.TRADE_NOT_EXIST"

    scanned = shopper.open(qr_code)

    waiting = sdk.api_alipay_trade_query(out_trade_no=out_trade_no)
    assert scanned.state == "pending"
    assert waiting["trade_status"] == "WAIT_BUYER_PAY"
    assert waiting["total_amount"] == "66.60"
    assert waiting["receipt_amount"] == waiting["buyer_pay_amount"] == "0.00"
    assert len(waiting["trade_no"]) == 28

    paid_page = shopper.press_and_read(scanned, "sandbox-pay")

    assert paid_page.state == "paid"
    assert not paid_page.has("sandbox-pay")
    (notification,) = merchant.wait_for_notifications(out_trade_no, 1)
    assert sdk_verifies(sdk, notification.fields)
    assert notification.fields["trade_status"] == "TRADE_SUCCESS"
    assert notification.fields["trade_no"] == waiting["trade_no"]
    paid = sdk.api_alipay_trade_query(out_trade_no=out_trade_no)
    assert (paid["trade_status"], paid["receipt_amount"]) == ("TRADE_SUCCESS", "66.60")
    assert "send_pay_date" in paid


def test_pressing_pay_twice_pays_once(sandbox, alipay, merchant, shopper, out_trade_no):
    qr_code = alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "5.00", "subject": "tea"},
        notify_url=merchant.notify_url,
    ).node["qr_code"]  # fmt: skip
    page = shopper.open(qr_code)

    first = shopper.press(page, "sandbox-pay")
    second = shopper.press(page, "sandbox-pay")

    assert (first.status_code, second.status_code) == (302, 409)
    log = sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}")["notifications"]
    assert len(log) == 1
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["status"] == "paid"


def test_fail_on_the_scan_page_closes_the_trade(alipay, merchant, shopper, out_trade_no):
    qr_code = alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "5.00", "subject": "tea"},
        notify_url=merchant.notify_url,
    ).node["qr_code"]  # fmt: skip

    failed = shopper.press_and_read(shopper.open(qr_code), "sandbox-fail")

    assert failed.state == "failed"
    assert alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no}).node["trade_status"] == "TRADE_CLOSED"


def test_cancel_on_the_scan_page_leaves_the_trade_waiting(alipay, merchant, shopper, out_trade_no):
    qr_code = alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "5.00", "subject": "tea"},
        notify_url=merchant.notify_url,
    ).node["qr_code"]  # fmt: skip

    cancelled = shopper.press_and_read(shopper.open(qr_code), "sandbox-cancel")

    assert cancelled.state == "cancelled"
    assert alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no}).node["trade_status"] == "WAIT_BUYER_PAY"


def test_the_control_api_scans_and_pays_without_a_browser(sandbox, alipay, merchant, out_trade_no):
    alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "5.00", "subject": "tea"},
        notify_url=merchant.notify_url,
    )  # fmt: skip

    scanned = sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")
    paid = sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")

    assert (scanned["status"], scanned["trade_status"]) == ("pending", "WAIT_BUYER_PAY")
    assert (paid["status"], paid["trade_status"]) == ("paid", "TRADE_SUCCESS")
    assert merchant.wait_for_notifications(out_trade_no, 1)[0].fields["trade_no"] == paid["trade_no"]


def test_precreate_again_returns_the_same_code_or_refuses_a_changed_amount(alipay, merchant, out_trade_no):
    biz = {"out_trade_no": out_trade_no, "total_amount": "5.00", "subject": "tea"}
    first = alipay.call("alipay.trade.precreate", biz, notify_url=merchant.notify_url)
    again = alipay.call("alipay.trade.precreate", biz, notify_url=merchant.notify_url)
    changed = alipay.call("alipay.trade.precreate", {**biz, "total_amount": "6.00"})

    assert first.node["qr_code"] == again.node["qr_code"]
    assert (changed.code, changed.sub_code) == ("40004", "ACQ.CONTEXT_INCONSISTENT")


@pytest.mark.parametrize("amount", ["0.00", "1.001", "-1.00", "abc", "100000000.01"])
def test_precreate_refuses_an_impossible_amount(alipay, out_trade_no, amount):
    answer = alipay.call("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": amount, "subject": "t"})

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.INVALID_PARAMETER")
