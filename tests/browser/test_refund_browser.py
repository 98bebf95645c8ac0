"""A refund in Chromium: the shopper applies, customer service approves in admin,
the money goes back through the sandbox gateway process."""
import re

import pytest
from playwright.sync_api import expect

from orders.models import Order, OrderStatus
from refunds.models import Refund, RefundStatus
from tests.browser.conftest import check_out, new_context

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_shopper_applies_service_approves_in_admin_and_the_order_shows_refunded(
        shopper_page, live_server, shop_sandbox, browser, csp_watch):
    page = shopper_page
    # Paid with Alipay QR; the "phone" pays through the sandbox's control API.
    check_out(page, live_server.url, "NOTE-A5")
    page.get_by_label("Scan a QR code with the Alipay app").check()
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("qr-code")).to_be_visible()
    order = Order.objects.get()
    out_trade_no = order.payments.get().out_trade_no
    shop_sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")
    shop_sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")
    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success", timeout=20_000)

    # The shopper applies from the order page.
    page.goto(f"{live_server.url}{order.get_absolute_url()}")
    expect(page.get_by_test_id("order-status")).to_have_text("Paid")
    page.get_by_test_id("apply-for-refund").click()
    page.get_by_label("Amount (¥)").fill("19.99")
    page.get_by_label("Reason").select_option("damaged")
    page.get_by_label("Details").fill("The cover arrived torn.")
    page.get_by_test_id("apply-refund").click()
    expect(page.get_by_test_id("order-status")).to_have_text("Refund pending")
    expect(page.get_by_test_id("refund-status")).to_have_text("Waiting for review")
    refund = Refund.objects.get(order=order)
    assert (refund.amount_minor, refund.reason, refund.reason_text) == (1999, "damaged", "The cover arrived torn.")

    # Customer service, in its own browser context, approves in admin.
    context = new_context(browser, csp_watch)
    try:
        staff = context.new_page()
        staff.goto(f"{live_server.url}/admin/")
        staff.fill("#id_username", "service")
        staff.fill("#id_password", "service-demo-1")
        staff.locator("input[type=submit]").click()
        staff.locator("tr.model-refund a").first.click()  # the refund queue
        expect(staff).to_have_url(re.compile(r"/admin/refunds/refund/$"))
        staff.get_by_role("link", name=refund.out_refund_no).click()
        review = staff.get_by_test_id("refund-review")
        expect(review.get_by_test_id("review-status")).to_have_text("Waiting for review")
        expect(review).to_contain_text("The cover arrived torn.")
        expect(review.get_by_test_id("review-contact")).to_contain_text("shopper@example.com")
        staff.get_by_test_id("review-note").fill("Photo of the torn cover checked.")
        staff.get_by_test_id("approve").click()
        # The confirmation: nothing has moved yet.
        confirm = staff.get_by_test_id("confirm-decision")
        expect(confirm).to_contain_text(refund.out_refund_no)
        expect(confirm).to_contain_text("¥19.99")
        assert shop_sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 0
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.REQUESTED
        staff.get_by_test_id("confirm").click()
        # Back on the queue, told what happened.
        expect(staff).to_have_url(re.compile(r"/admin/refunds/refund/$"))
        expect(staff.locator("ul.messagelist").last).to_contain_text(
            f"Refund {refund.out_refund_no} of ¥19.99 approved and refunded through Alipay.")
    finally:
        context.close()

    # Back on the shopper's side.
    page.reload()
    expect(page.get_by_test_id("refund-status")).to_have_text("Refunded")
    expect(page.get_by_test_id("history")).to_contain_text("Refunded")
    expect(page.get_by_test_id("order-status")).to_have_text("Refunded")
    expect(page.get_by_test_id("apply-for-refund")).to_have_count(0)
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.REFUNDED
    at_sandbox = shop_sandbox.control("GET", f"alipay/trades/{out_trade_no}")
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 1999)
