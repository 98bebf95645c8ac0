"""A shopper pays with UnionPay in Chromium, on the sandbox's UnionPay page."""
import re

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderStatus
from payments.gateways.base import PayMethod
from payments.models import Payment, PaymentStatus
from tests.browser.conftest import check_out

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_paying_on_the_unionpay_page_lands_on_the_success_page(shopper_page, live_server, shop_sandbox):
    page = shopper_page
    check_out(page, live_server.url, "TEA-LJ-250", 2)
    expect(page.get_by_test_id("amount-due")).to_have_text("¥176.00")

    page.get_by_label("Pay on the UnionPay website").check()
    page.get_by_test_id("pay").click()

    # The shop's auto-submitting form posts the signed consume to UnionPay.
    expect(page).to_have_url(re.compile(r"/unionpay/cashier/"))
    expect(page.get_by_test_id("sandbox-amount")).to_have_text("¥176.00")
    payment = Payment.objects.get()
    assert (payment.gateway, payment.method, payment.status) == ("unionpay", PayMethod.PAGE, PaymentStatus.PENDING)
    page.get_by_test_id("sandbox-pay").click()

    # UnionPay's page posts the shopper back (its script file submits the
    # form), and the shop shows what the query or the notification decided.
    expect(page).to_have_url(re.compile(rf"/payments/{payment.out_trade_no}/result/$"))
    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success")
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    assert Order.objects.get().status == OrderStatus.PAID
    payment.refresh_from_db()
    assert payment.returned_at is not None and payment.status == PaymentStatus.SUCCEEDED


def test_cancel_on_the_unionpay_page_lands_on_the_failure_page_and_pay_again_works(shopper_page, live_server,
                                                                                   shop_sandbox):
    page = shopper_page
    check_out(page, live_server.url, "NOTE-A5")
    page.get_by_label("Pay on the UnionPay website").check()
    page.get_by_test_id("pay").click()
    page.get_by_test_id("sandbox-cancel").click()

    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "failure")
    page.get_by_test_id("pay-again").click()
    page.get_by_label("Pay on the UnionPay website").check()
    page.get_by_test_id("pay").click()
    page.get_by_test_id("sandbox-pay").click()

    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success")
    assert Order.objects.get().status == OrderStatus.PAID
