"""Accessibility and phones, in Chromium.

axe-core (installed from npm by `make test`, pinned in package-lock.json) is
injected into every page as an init script, which the page's own
Content-Security-Policy does not apply to, and run on the shopper's pages in
English and Chinese: no serious or critical violation (contrast, names,
labels, landmarks, WCAG 2.2's 24 px tap targets included). On a 390 × 844
phone the cart, the order list and the order page never scroll sideways, and
the header takes two rows at most.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from orders.models import Order
from tests.browser.conftest import fill_address

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
                       "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"}
LOCALES = {"en": "en-US", "zh-hans": "zh-CN"}

# Every rule axe runs by default, plus WCAG 2.2's minimum target size (24 px).
RUN_AXE = """async () => {
  const result = await axe.run(document, {rules: {"target-size": {enabled: true}}, resultTypes: ["violations"]});
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target.join(" ")).join(", ")}`);
}"""


def axe_script() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: `make test` installs axe-core with `npm ci` (package-lock.json)")
    return AXE.read_text()


def new_page(browser, csp_watch, *, language: str, phone: bool = False):
    context = browser.new_context(locale=LOCALES[language], **(PHONE if phone else {}))
    context.set_default_timeout(15_000)
    csp_watch.watch(context)
    context.add_init_script(axe_script())
    return context, context.new_page()


def violations(page) -> list[str]:
    page.wait_for_load_state("load")
    return page.evaluate(RUN_AXE)


def shopper_walk(page, base_url: str, sandbox, check) -> Order:
    """Catalogue → cart → checkout → cashier → QR → paid order → refund form → order with a refund."""
    page.goto(f"{base_url}/")
    check("catalogue")
    page.goto(f"{base_url}/products/bamboo-notebook/")
    page.get_by_test_id("add-NOTE-A5").click()
    check("cart")
    page.get_by_test_id("checkout").click()
    check("checkout")
    page.fill("#id_consignee_name", "Han Meimei")
    page.fill("#id_consignee_phone", "13900139000")
    fill_address(page)
    page.get_by_test_id("place-order").click()
    expect(page).to_have_url(re.compile(r"/pay/$"))
    check("cashier")
    page.locator("[data-testid='pay-option-alipay:qr'] input").check()
    page.get_by_test_id("pay").click()
    expect(page.get_by_test_id("qr-code")).to_be_visible()
    check("QR")
    order = Order.objects.order_by("-pk").first()
    out_trade_no = order.payments.get().out_trade_no
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")
    expect(page.get_by_test_id("payment-result")).to_have_attribute("data-result", "success", timeout=20_000)
    check("payment result")
    page.goto(f"{base_url}{order.get_absolute_url()}")
    check("order")
    page.get_by_test_id("apply-for-refund").click()
    check("refund")
    page.get_by_test_id("apply-refund").click()
    expect(page.get_by_test_id("refund-under-review")).to_be_visible()
    check("order with a refund")
    return order


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_axe_finds_no_serious_or_critical_violation_on_the_shoppers_pages(
        live_server, shop_sandbox, browser, csp_watch, language):
    from shop.demo import demo_setup

    demo_setup()
    context, page = new_page(browser, csp_watch, language=language)
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        expect(page.locator("html")).to_have_attribute("lang", language)
        found[name] = violations(page)

    try:
        page.goto(f"{live_server.url}/accounts/login/")
        check("sign in")
        signs_in(page, live_server.url)
        shopper_walk(page, live_server.url, shop_sandbox, check)
    finally:
        context.close()
    assert len(found) == 10, list(found)
    assert {name: problems for name, problems in found.items() if problems} == {}


def signs_in(page, base_url: str) -> None:
    """The demo shopper signs in, in whatever language the page speaks."""
    if not page.url.endswith("/accounts/login/"):
        page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", "shopper")
    page.fill("#id_password", "shopper-demo-1")
    page.get_by_test_id("sign-in").click()
    expect(page).to_have_url(f"{base_url}/")


def fits_the_screen(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")


def header_rows(page) -> int:
    """How many rows the header's links and controls take (the brand sits beside them, or above: a row more)."""
    return page.evaluate("""() => {
      const tops = [...document.querySelectorAll(".site-header nav > *")]
        .map(item => item.getBoundingClientRect().top).sort((a, b) => a - b);
      const rows = tops.filter((top, i) => i === 0 || top - tops[i - 1] > 12).length;
      const brand = document.querySelector(".site-header .brand").getBoundingClientRect();
      const nav = document.querySelector(".site-header nav").getBoundingClientRect();
      return brand.bottom <= nav.top ? rows + 1 : rows;
    }""")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_on_a_390_px_phone_cart_orders_and_order_page_never_scroll_sideways(
        live_server, shop_sandbox, browser, csp_watch, language):
    from shop.demo import demo_setup

    demo_setup()
    context, page = new_page(browser, csp_watch, language=language, phone=True)
    widths: dict[str, tuple[int, int]] = {}
    rows: dict[str, int] = {}

    def check(name: str) -> None:
        widths[name] = fits_the_screen(page)
        rows[name] = header_rows(page)

    try:
        signs_in(page, live_server.url)
        page.goto(f"{live_server.url}/products/walnut-tea-table/")
        page.get_by_test_id("add-TABLE-WALNUT").click()
        page.goto(f"{live_server.url}/products/longjing-tea/")
        page.get_by_test_id("quantity-TEA-LJ-500").fill("3")
        page.get_by_test_id("add-TEA-LJ-500").click()
        check("cart")
        # The phone is offered what works on a phone: no QR code to scan with itself.
        page.get_by_test_id("checkout").click()
        page.fill("#id_consignee_name", "Han Meimei")
        page.fill("#id_consignee_phone", "13900139000")
        fill_address(page)
        page.get_by_test_id("place-order").click()
        check("cashier")
        offered = page.locator("input[name=choice]").evaluate_all("inputs => inputs.map(i => i.value)")
        assert offered and not [value for value in offered if value.endswith(":qr")], offered
        order = Order.objects.order_by("-pk").first()
        page.goto(f"{live_server.url}/orders/")
        check("order list")
        page.goto(f"{live_server.url}{order.get_absolute_url()}")
        check("order")
    finally:
        context.close()
    assert {name: (scroll, client) for name, (scroll, client) in widths.items() if scroll > client} == {}
    assert all(client == 390 for _scroll, client in widths.values()), widths
    assert {name: count for name, count in rows.items() if count > 2} == {}
