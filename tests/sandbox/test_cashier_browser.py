"""A real browser (Debian's Chromium through Playwright) pays on the sandbox cashier page."""
import html
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.sandbox.alipay_client import sdk_verifies

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]

@pytest.fixture
def page(browser):
    """The shared headless Chromium of tests/conftest.py, in a zh-CN context."""
    context = browser.new_context(locale="zh-CN")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def auto_submit_form(action: str, fields: dict[str, str]) -> str:
    """What the shop's cashier renders for a page.pay FORM action (A2)."""
    inputs = "".join(
        f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">' for name, value in fields.items()
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"></head><body>'
        f'<form id="pay" method="post" action="{html.escape(action)}">{inputs}</form>'
        "<script>document.getElementById('pay').submit()</script></body></html>"
    )


def test_a_browser_posts_the_form_presses_pay_and_returns_signed(page, sandbox, sdk, alipay, merchant, out_trade_no):
    fields = alipay.signed_params(
        "alipay.trade.page.pay",
        {"out_trade_no": out_trade_no, "total_amount": "88.88", "subject": "龙井茶 / 明前", "product_code": "FAST_INSTANT_TRADE_PAY"},
        return_url=merchant.return_url,
        notify_url=merchant.notify_url,
    )
    page.set_content(auto_submit_form(alipay.gateway_url + "?charset=utf-8", fields))
    page.wait_for_url(sandbox.base_url + "/alipay/cashier/**")

    assert page.get_by_test_id("sandbox-amount").inner_text() == "¥88.88"
    assert page.locator("h1").inner_text() == "龙井茶 / 明前"
    page.get_by_test_id("sandbox-pay").click()
    page.wait_for_url(merchant.return_url + "?**")

    returned = dict(parse_qsl(urlsplit(page.url).query))
    assert sdk_verifies(sdk, returned)
    assert returned["out_trade_no"] == out_trade_no
    (notification,) = merchant.wait_for_notifications(out_trade_no, 1)
    assert notification.fields["subject"] == "龙井茶 / 明前"
    assert sdk_verifies(sdk, notification.fields)
