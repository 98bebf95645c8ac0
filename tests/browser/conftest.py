"""Shop pages in the shared headless Chromium (the `browser` fixture of tests/conftest.py)."""
import pytest


@pytest.fixture
def page(browser):
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def shopper_page(page, live_server, transactional_db):
    """A page signed in as the demo shopper, with the demo catalogue in stock."""
    from shop.demo import demo_setup
    from tests.browser.test_checkout_flow import sign_in

    demo_setup()
    sign_in(page, live_server.url)
    return page


def check_out(page, base_url: str, sku: str, quantity: int = 1) -> None:
    """From a product page to the cashier, as a shopper clicks."""
    slug = {"NOTE-A5": "bamboo-notebook", "TEA-LJ-250": "longjing-tea", "CUP-WHITE": "ceramic-cup"}[sku]
    page.goto(f"{base_url}/products/{slug}/")
    page.get_by_test_id(f"quantity-{sku}").fill(str(quantity))
    page.get_by_test_id(f"add-{sku}").click()
    page.get_by_test_id("checkout").click()
    page.fill("#id_consignee_name", "Han Meimei")
    page.fill("#id_consignee_phone", "13900139000")
    page.fill("#id_consignee_address", "88 Wensan Road, Hangzhou")
    page.get_by_test_id("place-order").click()
