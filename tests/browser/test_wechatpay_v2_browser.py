"""A shopper pays with WeChat Pay on API v2 (Native QR) in Chromium, against the sandbox process."""
import re

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderStatus
from payments.gateways import get_gateway
from payments.gateways.base import PayMethod
from payments.gateways.wechatpay_v2 import WechatPayV2Gateway
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentStatus
from tests.browser.conftest import check_out

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_v2_qr_page_moves_on_by_itself_once_the_phone_pays(shopper_page, live_server, shop_sandbox_v2):
    assert isinstance(get_gateway("wechatpay"), WechatPayV2Gateway)
    page = shopper_page
    check_out(page, live_server.url, "CUP-WHITE", 3)
    expect(page.get_by_test_id("amount-due")).to_have_text("¥119.70")

    # The same cashier entry as for API v3.
    page.get_by_label("Scan a QR code with the WeChat Pay app").check()
    page.get_by_test_id("pay").click()

    expect(page).to_have_url(re.compile(r"/payments/[0-9A-Za-z]+/qr/$"))
    qr = page.get_by_test_id("qr-code")
    expect(qr.locator("svg")).to_be_visible()
    code_url = qr.get_attribute("data-qr-content")
    assert code_url.startswith(shop_sandbox_v2.url("/wechatpay/scan/"))
    payment = Payment.objects.get()
    assert (payment.gateway, payment.method, payment.status) == ("wechatpay", PayMethod.QR, PaymentStatus.PENDING)
    assert shop_sandbox_v2.control("GET", f"wechatpay/trades/{payment.out_trade_no}")["trade_type"] == "NATIVE"

    # The phone, as it would after scanning: opens the code's URL and pays there.
    phone = page.context.new_page()
    phone.goto(code_url)
    expect(phone.get_by_test_id("sandbox-amount")).to_have_text("¥119.70")
    phone.get_by_test_id("sandbox-pay").click()
    expect(phone.get_by_test_id("sandbox-status")).to_have_attribute("data-status", "paid")
    phone.close()

    # Nobody touches the first page: its own polling takes it to the result.
    page.wait_for_url(re.compile(rf"/payments/{payment.out_trade_no}/result/$"), timeout=20_000)
    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success")
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    assert Order.objects.get().status == OrderStatus.PAID
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED
    # Whichever came first, the page's orderquery or the XML notification, it was paid once.
    assert set(GatewayNotification.objects.values_list("outcome", flat=True)) <= {
        NotificationOutcome.APPLIED, NotificationOutcome.UNCHANGED}
