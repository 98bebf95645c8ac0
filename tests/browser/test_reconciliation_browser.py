"""Finance in Chromium: yesterday's reconciled bill, its discrepancies decided, the CSV exported, the day signed off.

The day is the demo's (manage.py demo_reconciliation): real payments through
the sandbox gateway process, one of each discrepancy put into its bill.
"""
import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from payments.gateways.base import BEIJING
from reconciliation.models import Discrepancy, DiscrepancyStatus, Statement
from shop.demo import demo_setup
from tests.browser.test_checkout_flow import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_finance_resolves_a_discrepancy_exports_the_lines_and_signs_off_yesterday(page, live_server, shop_sandbox):
    demo_setup()
    shop_sandbox.control("POST", "settings", {"time_scale": 1.0})
    call_command("demo_reconciliation", "--sandbox-url", shop_sandbox.base_url, "--force", "--gateways", "alipay")
    yesterday = (datetime.now(BEIJING) - timedelta(days=1)).date()
    statement = Statement.objects.get(gateway="alipay", day=yesterday)
    stranger = Discrepancy.objects.get(statement=statement, kind="missing_here", status=DiscrepancyStatus.OPEN)

    sign_in(page, live_server.url, username="finance", password="finance-demo-1")
    page.goto(f"{live_server.url}/finance/reconciliation/")
    cell = page.get_by_test_id(f"day-alipay-{yesterday.isoformat()}")
    expect(cell).to_have_attribute("data-status", "matched")
    cell.get_by_role("link").click()

    # The day: the bill beside ours, and its discrepancies.
    expect(page).to_have_url(re.compile(rf"/finance/reconciliation/alipay/{yesterday.isoformat()}/$"))
    expect(page.get_by_test_id("statement-status")).to_have_text("Reconciled")
    table = page.get_by_test_id("discrepancy-table")
    for kind in ("missing_here", "missing_at_gateway", "amount_mismatch", "duplicate", "status_mismatch"):
        expect(table.locator(f"tr[data-kind='{kind}']").first).to_be_visible()
    expect(page.get_by_test_id("sign-off-blocked")).to_be_visible()

    # Resolve one with a note.
    page.get_by_test_id(f"open-{stranger.reference}").click()
    expect(page.get_by_test_id("discrepancy-status")).to_have_attribute("data-status", "open")
    page.get_by_test_id("resolve").click()  # no note yet: refused
    expect(page.locator("#id_resolve-note:invalid")).to_have_count(1)
    page.get_by_label("How was it resolved?").fill("A test payment of the acquirer; refunded by hand.")
    page.get_by_test_id("resolve").click()
    expect(page.locator("ul.messages")).to_contain_text(f"{stranger.reference} is resolved.")
    expect(page.get_by_test_id("discrepancy-status")).to_have_attribute("data-status", "resolved")
    expect(page.get_by_test_id("decided")).to_contain_text("by finance")
    expect(page.get_by_test_id("note")).to_have_text("A test payment of the acquirer; refunded by hand.")

    # Accept the others, from each one's page.
    for item in Discrepancy.objects.filter(statement=statement, status=DiscrepancyStatus.OPEN):
        page.goto(f"{live_server.url}/finance/reconciliation/discrepancies/{item.pk}/")
        page.get_by_test_id("accept").click()
        expect(page.get_by_test_id("discrepancy-status")).to_have_attribute("data-status", "accepted")

    # Export the lines: UTF-8 with a BOM, one row per bill line.
    page.goto(f"{live_server.url}/finance/reconciliation/alipay/{yesterday.isoformat()}/")
    with page.expect_download() as download:
        page.get_by_test_id("lines-csv").click()
    content = open(download.value.path(), "rb").read()
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert len(rows) == 1 + Statement.objects.get(pk=statement.pk).line_count
    assert any(row[-1] == "Missing here: Resolved" for row in rows[1:])

    # Nothing open: sign the day off.
    page.get_by_label("Note (optional)").fill("Checked against the Alipay merchant console.")
    page.get_by_test_id("sign-off").click()
    expect(page.locator("ul.messages")).to_contain_text("is signed off.")
    expect(page.get_by_test_id("signed-off")).to_contain_text("Signed off by finance")
    statement.refresh_from_db()
    assert statement.signed_off_by.username == "finance"
    assert statement.sign_off_note == "Checked against the Alipay merchant console."
