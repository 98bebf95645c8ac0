"""A shopper pays with Alipay in Chromium, against the sandbox gateway process."""
import re

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderStatus
from tests.browser.conftest import check_out

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_page_pay_ends_on_the_success_page(shopper_page, live_server, shop_sandbox):
    page = shopper_page
    check_out(page, live_server.url, "TEA-LJ-250", 2)
    expect(page.get_by_test_id("amount-due")).to_have_text("¥176.00")

    page.get_by_label("Pay on the Alipay website").check()
    page.get_by_test_id("pay").click()

    # The auto-submitting form takes the browser to the sandbox's Alipay page.
    expect(page).to_have_url(re.compile(r"/alipay/cashier/"))
    page.get_by_test_id("sandbox-pay").click()

    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success")
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    assert Order.objects.get().status == OrderStatus.PAID


def test_cancel_ends_on_the_failure_page_and_the_order_can_be_paid_again(shopper_page, live_server, shop_sandbox):
    page = shopper_page
    check_out(page, live_server.url, "NOTE-A5")
    page.get_by_label("Pay on the Alipay website").check()
    page.get_by_test_id("pay").click()
    page.get_by_test_id("sandbox-cancel").click()

    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "failure")
    expect(page.get_by_test_id("order-status")).to_have_text("Awaiting payment")
    page.get_by_test_id("pay-again").click()
    expect(page.get_by_test_id("cashier-form")).to_be_visible()
    assert Order.objects.get().status == OrderStatus.PENDING_PAYMENT


def test_qr_page_moves_on_by_itself_once_the_phone_pays(shopper_page, live_server, shop_sandbox):
    page = shopper_page
    check_out(page, live_server.url, "CUP-WHITE", 3)
    page.get_by_label("Scan a QR code with the Alipay app").check()
    page.get_by_test_id("pay").click()
    qr = page.get_by_test_id("qr-code")
    expect(qr.locator("svg")).to_be_visible()

    # The phone: opens what the QR code says and pays there.
    phone = page.context.browser.new_page()
    phone.goto(qr.get_attribute("data-qr-content"))
    phone.get_by_test_id("sandbox-pay").click()
    expect(phone.get_by_test_id("sandbox-status")).to_have_attribute("data-status", "paid")
    phone.close()

    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success", timeout=20_000)
    assert Order.objects.get().status == OrderStatus.PAID
