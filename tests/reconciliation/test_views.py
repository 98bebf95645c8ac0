"""The finance pages: who may see and decide, what they show, the CSV exports."""
import csv
import io
from dataclasses import replace

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from reconciliation.models import Discrepancy, DiscrepancyStatus, Statement
from shop.demo import demo_setup
from tests.reconciliation.support import DAY, at, paid_payment, reconcile, stranger_line
from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db
OVERVIEW = "/finance/reconciliation/"


@pytest.fixture
def accounts(db):
    demo_setup()
    from django.contrib.auth import get_user_model

    return {user.username: user for user in get_user_model().objects.all()}


@pytest.fixture
def planted(fake):
    """A reconciled day with an amount mismatch, a stranger's payment and a payment the bill lacks."""
    mismatch = paid_payment(fake, paid_at=at(DAY, 9), price_minor=8800)
    lacking = paid_payment(fake, paid_at=at(DAY, 10), price_minor=1999)
    clean = paid_payment(fake, paid_at=at(DAY, 11), price_minor=3990)
    lines = [replace(line, amount_minor=8801) if line.out_trade_no == mismatch.out_trade_no else line
             for line in fake.recorded_lines(DAY) if line.out_trade_no != lacking.out_trade_no]
    fake.bills[DAY] = [*lines, stranger_line("STRANGER1", 4200, at(DAY, 12))]
    _run, statement = reconcile()
    return {"statement": statement, "mismatch": mismatch, "lacking": lacking, "clean": clean}


def day_url(statement: Statement, suffix: str = "") -> str:
    return f"{OVERVIEW}{statement.gateway}/{statement.day.isoformat()}/{suffix}"


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize("username", ["shopper", "service"])
def test_shoppers_and_customer_service_get_403_everywhere(client, accounts, planted, username):
    client.force_login(accounts[username])
    discrepancy = Discrepancy.objects.get(reference="STRANGER1")
    statement = planted["statement"]
    for url in (OVERVIEW, day_url(statement), day_url(statement, "lines.csv"), reverse("reconciliation:discrepancies"),
                reverse("reconciliation:discrepancies-csv"), reverse("reconciliation:discrepancy", args=[discrepancy.pk])):
        assert client.get(url).status_code == 403, url
    for url in (reverse("reconciliation:resolve", args=[discrepancy.pk]), day_url(statement, "sign-off/")):
        assert client.post(url, {"resolve-note": "x"}).status_code == 403, url
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == DiscrepancyStatus.OPEN


def test_a_viewer_without_the_decide_permission_sees_but_cannot_decide(client, planted):
    viewer = UserFactory(username="auditor", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_reports"))
    client.force_login(viewer)
    discrepancy = Discrepancy.objects.get(reference="STRANGER1")

    page = client.get(reverse("reconciliation:discrepancy", args=[discrepancy.pk])).content.decode()
    assert 'data-testid="resolve-form"' not in page
    response = client.post(reverse("reconciliation:resolve", args=[discrepancy.pk]), {"resolve-note": "x"},
                           follow=True)
    assert "Only finance may do this." in response.content.decode()
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == DiscrepancyStatus.OPEN


def test_the_finance_group_has_the_permissions(accounts):
    finance = Group.objects.get(name="Finance")
    assert {"view_reports", "decide_discrepancies"} <= set(finance.permissions.values_list("codename", flat=True))
    assert accounts["finance"].has_perm("reconciliation.decide_discrepancies")


def test_the_overview_shows_each_day_with_its_status_and_the_charts(client, accounts, planted):
    client.force_login(accounts["finance"])
    page = client.get(OVERVIEW).content.decode()
    assert f'data-testid="day-fake-{DAY.isoformat()}" data-status="matched"' in page
    assert 'class="badge"' in page  # three open discrepancies on that day
    assert 'data-testid="net-chart"' in page and "<polyline" in page
    assert 'data-testid="open-chart"' in page and "<rect" in page
    assert "<script" not in page.split("</header>")[1]  # charts are server-rendered SVG


def test_the_day_page_sets_the_bill_beside_our_records(client, accounts, planted):
    client.force_login(accounts["finance"])
    page = client.get(day_url(planted["statement"])).content.decode()
    # The bill: 8801 + 3990 + 4200; ours: 8800 + 1999 + 3990.
    assert "¥169.91" in page and "¥147.89" in page
    assert 'data-testid="line-counts">3 lines in the bill, 1 matched.' in page
    assert "Amount mismatch" in page and "Missing here" in page and "Missing at the gateway" in page
    assert 'data-testid="sign-off-blocked"' in page
    for reference in ("STRANGER1", planted["mismatch"].out_trade_no, planted["lacking"].out_trade_no):
        assert f'data-testid="discrepancy-{reference}"' in page
    assert f'/admin/orders/order/{planted["lacking"].order_id}/change/' in page


def test_the_pages_speak_chinese(client, accounts, planted):
    client.force_login(accounts["finance"])
    page = client.get(day_url(planted["statement"]), HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "金额不符" in page and "对账" in page


def test_resolving_needs_a_note_and_records_who_and_when(client, accounts, planted):
    client.force_login(accounts["finance"])
    discrepancy = Discrepancy.objects.get(reference="STRANGER1")
    url = reverse("reconciliation:resolve", args=[discrepancy.pk])

    response = client.post(url, {"resolve-note": "  "}, follow=True)
    assert "Say how the discrepancy was resolved." in response.content.decode()
    assert Discrepancy.objects.get(pk=discrepancy.pk).status == DiscrepancyStatus.OPEN

    response = client.post(url, {"resolve-note": "Refunded by hand.", "next": day_url(planted["statement"])})
    assert response.status_code == 302 and response.url == day_url(planted["statement"])
    discrepancy.refresh_from_db()
    assert (discrepancy.status, discrepancy.note, discrepancy.decided_by) == (
        DiscrepancyStatus.RESOLVED, "Refunded by hand.", accounts["finance"])
    assert discrepancy.decided_at is not None and discrepancy.closed_at is not None


def test_accepting_and_signing_off_the_day(client, accounts, planted):
    client.force_login(accounts["finance"])
    statement = planted["statement"]
    assert "This day cannot be signed off" in client.post(day_url(statement, "sign-off/"), follow=True).content.decode()
    for discrepancy in Discrepancy.objects.all():
        client.post(reverse("reconciliation:accept", args=[discrepancy.pk]), {"accept-note": ""})
    assert not Discrepancy.objects.filter(status=DiscrepancyStatus.OPEN).exists()

    page = client.get(day_url(statement)).content.decode()
    assert 'data-testid="sign-off-form"' in page
    response = client.post(day_url(statement, "sign-off/"), {"note": "Checked against the bank."}, follow=True)
    assert "is signed off." in response.content.decode()
    statement.refresh_from_db()
    assert (statement.signed_off_by, statement.sign_off_note) == (accounts["finance"], "Checked against the bank.")


def test_the_lines_export_is_streamed_utf8_with_a_bom(client, accounts, planted):
    client.force_login(accounts["finance"])
    response = client.get(day_url(planted["statement"], "lines.csv"))
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    content = b"".join(response.streaming_content)
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0][0] == "Line" and len(rows) == 4
    results = {row[2]: row[-1] for row in rows[1:]}
    assert results[planted["clean"].out_trade_no] == "Matched"
    assert results[planted["mismatch"].out_trade_no] == "Amount mismatch: Open"
    assert results["STRANGER1"] == "Missing here: Open"
    assert {row[6] for row in rows[1:]} == {"¥88.01", "¥39.90", "¥42.00"}


def test_the_discrepancies_export_follows_the_filters(client, accounts, planted):
    client.force_login(accounts["finance"])
    response = client.get(reverse("reconciliation:discrepancies-csv"), {"kind": "missing_here"})
    content = b"".join(response.streaming_content)
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert [row[5] for row in rows[1:]] == ["STRANGER1"]
    assert rows[1][2:4] == ["Missing here", "Open"] and rows[1][7] == "¥42.00"


def test_the_discrepancy_list_filters_by_gateway_kind_state_and_age(client, accounts, planted):
    client.force_login(accounts["finance"])
    url = reverse("reconciliation:discrepancies")
    page = client.get(url).content.decode()
    assert page.count('data-testid="discrepancy-') == 4  # three rows and the table
    assert client.get(url, {"kind": "amount_mismatch"}).content.decode().count('data-testid="discrepancy-') == 2
    assert client.get(url, {"older_than_days": 3}).content.decode().count('data-testid="discrepancy-') == 1
    assert client.get(url, {"gateway": "fake", "status": "resolved"}).content.decode().count(
        'data-testid="discrepancy-') == 1
