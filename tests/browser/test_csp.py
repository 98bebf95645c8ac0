"""The Content-Security-Policy: on every page, no inline script allowed, and the
browser tests' watch (tests/browser/conftest.py) really reports a violation."""
import pytest
from playwright.sync_api import expect

from tests.polling import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_policy_forbids_inline_scripts_and_styles(client):
    policy = client.get("/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_watch_reports_a_blocked_inline_script(page, live_server, csp_watch):
    page.goto(f"{live_server.url}/")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.inlineRan = true";
        document.body.appendChild(script);
    }""")
    wait_for(lambda: csp_watch.violations, what="the CSP violation report")
    assert page.evaluate("() => window.inlineRan === undefined")
    assert any("script-src" in text for text in csp_watch.violations)
    assert csp_watch.pages_seen == [f"{live_server.url}/"]
    csp_watch.violations.clear()  # expected here; any other test's would fail it


def test_the_language_switch_changes_language_with_its_button_only(page, live_server):
    """Choosing a language does nothing by itself (no surprise on a keyboard); the button switches."""
    page.goto(f"{live_server.url}/")
    page.get_by_label("Language").select_option("zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_test_id("language-switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.get_by_test_id("cart-link")).to_contain_text("购物车")
