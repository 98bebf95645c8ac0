import re

import pytest
from playwright.sync_api import expect

from orders.models import Order
from shop.demo import demo_setup
from tests.browser.conftest import fill_address

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, base_url: str, username: str = "shopper", password: str = "shopper-demo-1") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_text(f"Sign out {username}")).to_be_visible()


def test_demo_shopper_checks_out_two_products_and_reaches_the_cashier(live_server, page):
    demo_setup()
    sign_in(page, live_server.url, "shopper", "shopper-demo-1")

    page.goto(f"{live_server.url}/products/longjing-tea/")
    page.get_by_test_id("quantity-TEA-LJ-250").fill("2")
    page.get_by_test_id("add-TEA-LJ-250").click()
    expect(page.get_by_test_id("cart-total")).to_have_text("¥176.00")

    page.goto(f"{live_server.url}/products/ceramic-cup/")
    page.get_by_test_id("add-CUP-WHITE").click()
    expect(page.get_by_test_id("cart-total")).to_have_text("¥215.90")

    page.get_by_test_id("checkout").click()
    page.fill("#id_consignee_name", "Han Meimei")
    page.fill("#id_consignee_phone", "13900139000")
    fill_address(page)
    page.get_by_test_id("place-order").click()

    expect(page).to_have_url(re.compile(r"/orders/\d{16}/pay/$"))
    expect(page.get_by_test_id("amount-due")).to_have_text("¥215.90")
    order = Order.objects.get()
    assert order.total_minor == 21590
    assert page.url.endswith(f"/orders/{order.order_no}/pay/")


def test_missing_address_is_shown_next_to_the_field(live_server, page):
    demo_setup()
    sign_in(page, live_server.url, "shopper", "shopper-demo-1")
    page.goto(f"{live_server.url}/products/bamboo-notebook/")
    page.get_by_test_id("add-NOTE-A5").click()
    page.get_by_test_id("checkout").click()
    page.fill("#id_consignee_name", "Han Meimei")
    page.fill("#id_consignee_phone", "13900139000")
    fill_address(page)
    page.fill("#id_address_street", "")
    page.get_by_test_id("place-order").click()

    expect(page.locator('[data-field="address_street"]')).to_have_text("This field is required.")
    assert not Order.objects.exists()
