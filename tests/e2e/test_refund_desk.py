"""Customer service's refund desk over real HTTP, against the sandbox process: money
moves only on the confirmation's POST, never on the first click, and once.

Every test asks the sandbox how many refunds it really made.
"""
from __future__ import annotations

import lxml.html
import pytest

from refunds.models import Refund, RefundApproval, RefundStatus
from tests.e2e.refund_support import apply, paid_order, staff_client, trade
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def refunds_at_sandbox(sandbox, payment) -> int:
    return trade(sandbox, payment)["refund_count"]


def status(refund: Refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


def confirmation_rows(page) -> list[str]:
    tree = lxml.html.fromstring(page.text)
    return [" ".join(row.text_content().split()) for row in tree.cssselect("[data-testid=confirm-refunds] tbody tr")]


def test_approving_from_the_review_page_asks_first_and_refunds_once_confirmed(shop, sandbox, live_server):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 4000)
    staff = staff_client(live_server.url)
    decide = f"/admin/refunds/refund/{refund.pk}/decide/"

    first = staff.post(decide, {"decision": "approve", "note": "photo checked"})

    assert first.status_code == 200
    assert 'data-testid="confirm-decision"' in first.text
    (row,) = confirmation_rows(first)
    for shown in (refund.out_refund_no, "¥40.00", "Alipay", order.order_no, "shopper", "shopper@example.com"):
        assert shown in row, shown
    assert status(refund) == RefundStatus.REQUESTED
    assert not RefundApproval.objects.filter(refund=refund).exists()
    assert refunds_at_sandbox(sandbox, payment) == 0

    confirmed = staff.post(decide, {"decision": "approve", "note": "photo checked", "confirm": "yes"})

    # Back on the queue, told what happened.
    assert confirmed.url.endswith("/admin/refunds/refund/")
    assert f"Refund {refund.out_refund_no} of ¥40.00 approved and refunded through Alipay." in confirmed.text
    assert status(refund) == RefundStatus.SUCCEEDED
    assert (refunds_at_sandbox(sandbox, payment), trade(sandbox, payment)["refunded_minor"]) == (1, 4000)
    # A second confirmation (a double click, a reload) refunds nothing more.
    staff.post(decide, {"decision": "approve", "note": "again", "confirm": "yes"})
    assert refunds_at_sandbox(sandbox, payment) == 1


def test_bulk_approval_lists_every_refund_moves_nothing_then_refunds_each_once(shop, sandbox, live_server):
    paid = [paid_order(shop, sandbox, {"NOTE-A5": 1}), paid_order(shop, sandbox, {"CUP-WHITE": 1})]
    refunds = [apply(paid[0][0], 1999), apply(paid[1][0], 1000)]
    staff = staff_client(live_server.url)
    selected = {"action": "approve_selected", "_selected_action": [refund.pk for refund in refunds]}

    first = staff.post("/admin/refunds/refund/", selected)

    assert first.status_code == 200
    rows = confirmation_rows(first)
    assert len(rows) == 2
    for refund, amount in zip(refunds, ("¥19.99", "¥10.00"), strict=True):
        (row,) = [row for row in rows if refund.out_refund_no in row]
        assert amount in row and refund.order.order_no in row and "Alipay" in row and "shopper" in row
    assert "Yes, approve ¥29.99" in first.text
    assert [status(refund) for refund in refunds] == [RefundStatus.REQUESTED] * 2
    assert [refunds_at_sandbox(sandbox, payment) for _order, payment in paid] == [0, 0]

    done = staff.post("/admin/refunds/refund/", {**selected, "confirm": "yes"})

    assert done.status_code == 200
    for refund in refunds:
        assert f"Refund {refund.out_refund_no} of" in done.text
    wait_for(lambda: [status(refund) for refund in refunds] == [RefundStatus.SUCCEEDED] * 2,
             what="both refunds to succeed")
    assert [refunds_at_sandbox(sandbox, payment) for _order, payment in paid] == [1, 1]


def test_maker_checker_the_first_reviewer_waits_the_second_approves(shop, sandbox, live_server, settings):
    settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 8800)
    first, second = staff_client(live_server.url, "service"), staff_client(live_server.url, "service2")
    decide = f"/admin/refunds/refund/{refund.pk}/decide/"
    page = f"/admin/refunds/refund/{refund.pk}/change/"

    first.post(decide, {"decision": "approve", "confirm": "yes"})

    mine = first.get(page).text
    assert "1 of 2 approvals — waiting for a second reviewer" in mine
    assert 'data-testid="approve"' not in mine and 'data-testid="reject"' in mine
    assert refund.out_refund_no not in first.get("/admin/refunds/refund/?review=mine").text
    assert refund.out_refund_no in first.get("/admin/refunds/refund/?review=second").text
    assert refunds_at_sandbox(sandbox, payment) == 0
    # Offered nothing, and a forged second approval by the same person is refused.
    again = first.post(decide, {"decision": "approve", "confirm": "yes"})
    assert "You approved it already" in again.text
    assert RefundApproval.objects.filter(refund=refund).count() == 1

    theirs = second.get(page).text
    assert 'data-testid="approve"' in theirs
    assert refund.out_refund_no in second.get("/admin/refunds/refund/?review=mine").text
    assert "1 refund waits for your decision" in second.get("/admin/").text
    done = second.post(decide, {"decision": "approve", "confirm": "yes"})

    assert f"Refund {refund.out_refund_no} of ¥88.00 approved and refunded through Alipay." in done.text
    assert status(refund) == RefundStatus.SUCCEEDED
    assert refunds_at_sandbox(sandbox, payment) == 1
