"""Shop pages in the shared headless Chromium (the `browser` fixture of tests/conftest.py).

Every context the browser tests open is watched for the Content-Security-
Policy: a page of the shop without the header, or any violation Chromium
reports (a `securitypolicyviolation` event or its console message), fails
the test at teardown.
"""
from dataclasses import dataclass, field

import pytest

# Injected by Playwright through the DevTools protocol, so the page's own
# CSP does not apply to it.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " blocked " + event.blockedURI
                + " on " + document.location.href);
});
"""


@dataclass
class CspWatch:
    shop_origin: str
    violations: list[str] = field(default_factory=list)
    pages_without_policy: list[str] = field(default_factory=list)
    pages_seen: list[str] = field(default_factory=list)

    def watch(self, context):
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("page", self._page)
        return context

    def _page(self, page):
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message):
        if "CSP violation" in message.text or "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _response(self, response):
        if response.request.resource_type == "document" and response.url.startswith(self.shop_origin):
            self.pages_seen.append(response.url)
            if "content-security-policy" not in response.headers:
                self.pages_without_policy.append(response.url)

    def assert_clean(self):
        assert self.violations == [], self.violations
        assert self.pages_without_policy == [], self.pages_without_policy


@pytest.fixture
def csp_watch(live_server):
    watch = CspWatch(shop_origin=live_server.url)
    yield watch
    watch.assert_clean()


def new_context(browser, csp_watch: CspWatch):
    context = browser.new_context(locale="en-US")
    context.set_default_timeout(15_000)
    return csp_watch.watch(context)


@pytest.fixture
def page(browser, csp_watch):
    context = new_context(browser, csp_watch)
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
    fill_address(page)
    page.get_by_test_id("place-order").click()


def fill_address(page) -> None:
    page.fill("#id_address_province", "Zhejiang")
    page.fill("#id_address_city", "Hangzhou")
    page.fill("#id_address_district", "Xihu")
    page.fill("#id_address_street", "88 Wensan Road")
