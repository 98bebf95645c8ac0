"""The shopper's refund form and customer service's admin desk."""
import re
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order, OrderStatus
from payments.gateways.base import GatewayRefundStatus
from refunds.models import InvariantViolation, Refund, RefundStatus
from refunds.services import refund_reject
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


def apply_url(order) -> str:
    return reverse("refunds:apply", kwargs={"order_no": order.order_no})


def form_data(**overrides) -> dict:
    return {"amount": "40.00", "reason": "damaged", "reason_text": "", "token": str(uuid.uuid4()), **overrides}


class TestShopperForm:
    def test_defaults_to_the_whole_refundable_amount(self, client):
        order, _ = paid_order(price_minor=12345)
        client.force_login(order.shopper)
        page = client.get(apply_url(order)).content.decode()
        assert 'value="123.45"' in page

    def test_applying_shows_the_refund_pending_on_the_order(self, client):
        order, _ = paid_order(price_minor=10000)
        client.force_login(order.shopper)
        response = client.post(apply_url(order), form_data(amount="40.50", reason_text="cracked"))
        assert response.url == order.get_absolute_url()
        refund = Refund.objects.get()
        assert (refund.amount_minor, refund.reason, refund.reason_text) == (4050, "damaged", "cracked")
        page = client.get(order.get_absolute_url()).content.decode()
        assert "Refund pending" in page and "Waiting for review" in page and "¥40.50" in page

    @pytest.mark.parametrize("amount,message", [
        ("0", "Ensure this value is greater than or equal to 0.01."),
        ("-5", "Ensure this value is greater than or equal to 0.01."),
        ("100.01", "At most ¥100.00 can be refunded."),
        ("1.234", "Ensure that there are no more than 2 decimal places."),
        ("abc", "Enter a number."),
    ])
    def test_bad_amounts_are_errors_next_to_the_field(self, client, amount, message):
        order, _ = paid_order(price_minor=10000)
        client.force_login(order.shopper)
        response = client.post(apply_url(order), form_data(amount=amount))
        assert response.status_code == 400
        assert f'data-field="amount">{message}' in response.content.decode()
        assert not Refund.objects.exists()

    def test_a_reason_is_required_and_other_needs_details(self, client):
        order, _ = paid_order()
        client.force_login(order.shopper)
        assert 'data-field="reason"' in client.post(apply_url(order), form_data(reason="")).content.decode()
        response = client.post(apply_url(order), form_data(reason="other"))
        assert 'data-field="reason_text">Tell us what happened.' in response.content.decode()
        assert not Refund.objects.exists()

    def test_someone_elses_order_is_not_found(self, client):
        order, _ = paid_order()
        client.force_login(reviewer("nosy", can_review=False))
        assert client.get(apply_url(order)).status_code == 404
        assert client.post(apply_url(order), form_data()).status_code == 404
        assert not Refund.objects.exists()

    def test_an_unpaid_order_has_nothing_to_refund(self, client):
        from tests.orders.factories import place_order

        order = place_order()
        client.force_login(order.shopper)
        response = client.post(apply_url(order), form_data())
        assert response.url == order.get_absolute_url()
        assert not Refund.objects.exists()


def admin_refund_url(refund) -> str:
    return reverse("admin:refunds_refund_change", args=[refund.pk])


def decide(client, refund, decision, note="", confirm=True):
    """A decision from the review page; money decisions answer with a confirmation page first."""
    url = reverse("admin:refunds_refund_decide", args=[refund.pk])
    first = client.post(url, {"decision": decision, "note": note})
    if not confirm or first.status_code != 200:
        return first
    return client.post(url, {"decision": decision, "note": note, "confirm": "yes"})


class TestAdminDesk:
    def test_the_review_page_shows_order_payments_earlier_refunds_and_reason(self, client):
        order, payment = paid_order()
        earlier = apply_for_refund(order, 1000, reason="changed_mind")
        refund = apply_for_refund(order, 2000, reason="damaged", reason_text="the lid is cracked")
        client.force_login(reviewer())
        page = client.get(admin_refund_url(refund)).content.decode()
        for expected in (order.order_no, payment.out_trade_no, earlier.out_refund_no, "the lid is cracked",
                         'data-testid="approve"', 'data-testid="reject"'):
            assert expected in page

    def test_the_review_page_shows_who_approved_and_the_event_log(self, client, gateway):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000, reason_text="scratched")
        client.force_login(reviewer())
        decide(client, refund, "approve", note="photo checked")
        page = client.get(admin_refund_url(refund)).content.decode()
        assert "Approvals (who approved each step)" in page
        assert "photo checked" in page  # the approval's note, with its reviewer
        for reason in ("approved", "sent to the gateway", "money returned"):
            assert reason in page, reason

    def test_approving_from_the_detail_page(self, client, gateway):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        client.force_login(reviewer())
        decide(client, refund, "approve")
        refund.refresh_from_db()
        assert refund.status == RefundStatus.SUCCEEDED
        assert refund.reviewed_by.username == "reviewer"

    def test_rejecting_without_a_note_is_refused(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        client.force_login(reviewer())
        response = client.get(decide(client, refund, "reject", note="").url)
        assert "Say why the refund is rejected." in response.content.decode()
        refund.refresh_from_db()
        assert refund.status == RefundStatus.REQUESTED
        decide(client, refund, "reject", note="outside the return window")
        refund.refresh_from_db()
        assert (refund.status, refund.review_note) == (RefundStatus.REJECTED, "outside the return window")

    def test_staff_without_the_permission_can_look_but_not_decide(self, client, gateway):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        clerk = reviewer("clerk", can_review=False)
        clerk.user_permissions.add(Permission.objects.get(codename="view_refund"))
        client.force_login(clerk)
        page = client.get(admin_refund_url(refund)).content.decode()
        assert 'data-testid="approve"' not in page
        decide(client, refund, "approve")
        refund.refresh_from_db()
        assert refund.status == RefundStatus.REQUESTED
        assert gateway.refunds_executed == {}
        changelist = client.get(reverse("admin:refunds_refund_changelist")).content.decode()
        assert "approve_selected" not in changelist

    def test_the_queue_filters_and_searches(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        other_order, _ = paid_order()
        client.force_login(reviewer())
        url = reverse("admin:refunds_refund_changelist")
        assert refund.out_refund_no in client.get(url, {"q": order.order_no}).content.decode()
        page = client.get(url, {"q": order.order_no}).content.decode()
        assert other_order.order_no not in page
        assert refund.out_refund_no in client.get(url, {"status__exact": "requested", "gateway": "fake"}).content.decode()

    def test_bulk_reject_asks_for_a_note(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        client.force_login(reviewer())
        url = reverse("admin:refunds_refund_changelist")
        response = client.post(url, {"action": "reject_selected", "_selected_action": [refund.pk]})
        assert "Why (the shopper sees this)" in response.content.decode()
        client.post(url, {"action": "reject_selected", "_selected_action": [refund.pk], "confirm": "1",
                          "note": "duplicate application"})
        refund.refresh_from_db()
        assert refund.status == RefundStatus.REJECTED
        assert refund.order.status == OrderStatus.PAID

    def test_alarms_show_on_every_admin_page(self, client):
        InvariantViolation.objects.create(kind="refunds_exceed_paid", subject="X", detail="d",
                                          last_seen_at="2026-11-22T00:00:00Z")
        order, _ = paid_order()
        apply_for_refund(order, 100)
        client.force_login(reviewer())
        page = client.get(reverse("admin:index")).content.decode()
        assert "1 money invariant violation needs attention" in page
        assert "1 refund waits for your decision" in page


def decide_url(refund) -> str:
    return reverse("admin:refunds_refund_decide", args=[refund.pk])


class TestNoMoneyOnTheFirstClick:
    def test_approving_shows_a_confirmation_first_and_moves_money_only_when_confirmed(self, client, gateway):
        order, _ = paid_order(price_minor=21050)
        refund = apply_for_refund(order, 21050)
        client.force_login(reviewer())

        first = client.post(decide_url(refund), {"decision": "approve", "note": "checked"})

        page = first.content.decode()
        assert first.status_code == 200 and 'data-testid="confirm-decision"' in page
        for shown in (refund.out_refund_no, "¥210.50", "Fake Pay", order.order_no, order.shopper.email):
            assert shown in page, shown
        assert 'value="yes"' in page and "Yes, approve ¥210.50" in page
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.REQUESTED
        assert not refund.approvals.exists() and gateway.refunds_executed == {}

        done = client.post(decide_url(refund), {"decision": "approve", "note": "checked", "confirm": "yes"})

        assert done.url == reverse("admin:refunds_refund_changelist")
        assert gateway.refunds_executed == {refund.out_refund_no: 21050}
        messages = [str(m) for m in done.wsgi_request._messages]
        assert messages == [f"Refund {refund.out_refund_no} of ¥210.50 approved and refunded through Fake Pay."]

    def test_a_bulk_approval_lists_each_refund_and_leaves_out_what_the_reviewer_may_not_approve(self, client, gateway):
        desk = reviewer()
        mine, _ = paid_order(shopper=desk)
        theirs, _ = paid_order()
        own = apply_for_refund(mine, 1000)
        other = apply_for_refund(theirs, 2000)
        client.force_login(desk)
        url = reverse("admin:refunds_refund_changelist")
        selected = {"action": "approve_selected", "_selected_action": [own.pk, other.pk]}

        first = client.post(url, selected).content.decode()

        listed = first.split('data-testid="confirm-refunds"')[1].split("</table>")[0]
        assert other.out_refund_no in listed and own.out_refund_no not in listed
        skipped = first.split('data-testid="confirm-skipped"')[1]
        assert own.out_refund_no in skipped and "your own order" in skipped
        assert gateway.refunds_executed == {}

        client.post(url, {**selected, "confirm": "yes"})

        assert gateway.refunds_executed == {other.out_refund_no: 2000}
        assert Refund.objects.get(pk=own.pk).status == RefundStatus.REQUESTED

    def test_a_bulk_retry_asks_too(self, client, gateway):
        gateway.refund_outcome = GatewayRefundStatus.CLOSED
        order, _ = paid_order()
        refund = apply_for_refund(order, 1000)
        client.force_login(reviewer())
        decide(client, refund, "approve")
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.FAILED
        gateway.refund_outcome = GatewayRefundStatus.SUCCEEDED
        url = reverse("admin:refunds_refund_changelist")
        first = client.post(url, {"action": "retry_selected", "_selected_action": [refund.pk]})
        assert "Yes, send again" in first.content.decode()
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.FAILED
        client.post(url, {"action": "retry_selected", "_selected_action": [refund.pk], "confirm": "yes"})
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED

    def test_approve_is_the_primary_button_and_reject_the_destructive_one(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 1000)
        client.force_login(reviewer())
        page = client.get(admin_refund_url(refund)).content.decode()
        assert 'class="button-primary" data-testid="approve"' in page
        assert 'class="button-danger" data-testid="reject"' in page

    def test_rejecting_lands_on_the_queue_with_what_happened(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 1000)
        client.force_login(reviewer())
        response = client.post(decide_url(refund), {"decision": "reject", "note": "worn"}, follow=True)
        assert response.redirect_chain[-1][0] == reverse("admin:refunds_refund_changelist")
        assert f"Refund {refund.out_refund_no} of ¥10.00 rejected; the shopper is emailed your note." in (
            response.content.decode())


class TestMakerChecker:
    def test_the_first_reviewer_sees_one_of_two_and_no_approve_the_second_approves(self, client, gateway, settings):
        settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
        order, _ = paid_order(price_minor=9000)
        refund = apply_for_refund(order, 9000)
        first, second = reviewer("first"), reviewer("second")
        client.force_login(first)
        decide(client, refund, "approve")

        page = client.get(admin_refund_url(refund)).content.decode()
        assert "1 of 2 approvals — waiting for a second reviewer" in page
        assert 'data-testid="approve"' not in page and 'data-testid="waiting-for-second"' in page
        queue = client.get(reverse("admin:refunds_refund_changelist")).content.decode()
        assert "1 of 2 approvals — waiting for a second reviewer" in queue
        assert refund.out_refund_no in client.get(reverse("admin:refunds_refund_changelist"),
                                                  {"review": "second"}).content.decode()
        assert gateway.refunds_executed == {}

        client.force_login(second)
        assert 'data-testid="approve"' in client.get(admin_refund_url(refund)).content.decode()
        decide(client, refund, "approve")
        assert gateway.refunds_executed == {refund.out_refund_no: 9000}

    def test_the_banner_counts_only_what_the_signed_in_reviewer_can_decide(self, client, settings):
        settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
        desk = reviewer()
        own_order, _ = paid_order(shopper=desk)
        apply_for_refund(own_order, 100)  # their own order: not theirs to decide
        big, _ = paid_order(price_minor=9000)
        waiting = apply_for_refund(big, 9000)
        other, _ = paid_order()
        apply_for_refund(other, 100)
        client.force_login(desk)
        decide(client, waiting, "approve")  # now waiting for someone else
        page = client.get(reverse("admin:index")).content.decode()
        assert "1 refund waits for your decision" in page
        mine = client.get(reverse("admin:refunds_refund_changelist"), {"review": "mine"}).content.decode()
        assert mine.count('class="action-select"') == 1

    def test_staff_who_cannot_review_see_no_count(self, client):
        order, _ = paid_order()
        apply_for_refund(order, 100)
        clerk = reviewer("clerk", can_review=False)
        clerk.user_permissions.add(Permission.objects.get(codename="view_refund"))
        client.force_login(clerk)
        assert "waits for your decision" not in client.get(reverse("admin:index")).content.decode()


class TestReviewPage:
    def test_it_shows_what_a_decision_needs_in_yuan_and_no_internal_fields(self, client):
        order, payment = paid_order(price_minor=12345)
        earlier = apply_for_refund(order, 1000, reason="changed_mind")
        refund_reject(refund_id=earlier.pk, reviewer=reviewer("someone"), note="no")
        refund = apply_for_refund(order, 2345, reason="damaged", reason_text="the lid is cracked")
        client.force_login(reviewer())
        page = client.get(admin_refund_url(refund)).content.decode()
        contact = page.split('data-testid="review-contact"')[1].split("</section>")[0]
        assert order.shopper.email in contact and order.consignee_phone in contact
        assert "the lid is cracked" in page and "The goods arrived damaged" in page
        for money in ("¥23.45", "¥123.45", "¥10.00"):
            assert money in page, money
        for raw in ("(fen)", "application_token", "Times sent", "Approvals needed", "Submit count"):
            assert raw not in page, raw

    def test_refunds_are_found_by_username_email_phone_and_numbers(self, client):
        order, payment = paid_order()
        refund = apply_for_refund(order, 100)
        other, _ = paid_order()
        apply_for_refund(other, 100)
        client.force_login(reviewer())
        url = reverse("admin:refunds_refund_changelist")
        for query in (order.shopper.username, order.shopper.email, order.order_no, refund.out_refund_no,
                      payment.out_trade_no):
            page = client.get(url, {"q": query}).content.decode()
            assert refund.out_refund_no in page and other.order_no not in page, query
        Order.objects.filter(pk=order.pk).update(consignee_phone="13911112222")
        assert refund.out_refund_no in client.get(url, {"q": "13911112222"}).content.decode()

    def test_orders_are_found_the_same_ways(self, client):
        order, payment = paid_order()
        Order.objects.filter(pk=order.pk).update(consignee_phone="13911113333")
        order.refresh_from_db()
        refund = apply_for_refund(order, 100)
        other, _ = paid_order()
        desk = reviewer()
        desk.user_permissions.add(Permission.objects.get(codename="view_order"))
        client.force_login(desk)
        url = reverse("admin:orders_order_changelist")
        for query in (order.shopper.username, order.shopper.email, order.consignee_phone, refund.out_refund_no,
                      payment.out_trade_no, order.order_no):
            page = client.get(url, {"q": query}).content.decode()
            assert order.order_no in page and other.order_no not in page, query

    def test_the_queue_lists_in_constant_queries(self, client):
        client.force_login(reviewer())
        url = reverse("admin:refunds_refund_changelist")

        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
            return len(captured)

        apply_for_refund(paid_order()[0], 100)
        one = queries()
        for _ in range(3):
            apply_for_refund(paid_order()[0], 100)
        assert queries() == one


def test_after_a_decision_the_reviewer_is_back_on_the_queue_they_came_from(client, gateway):
    order, _ = paid_order()
    refund = apply_for_refund(order, 1000)
    client.force_login(reviewer())
    queue = reverse("admin:refunds_refund_changelist") + "?status__exact=requested"
    review = client.get(queue).content.decode()
    (link,) = set(re.findall(rf'href="(/admin/refunds/refund/{refund.pk}/change/[^"]*)"', review))
    page = client.get(link.replace("&amp;", "&")).content.decode()
    (action,) = re.findall(r'action="([^"]*/decide/[^"]*)" data-testid="decide-form"', page)
    confirmation = client.post(action.replace("&amp;", "&"), {"decision": "approve"}).content.decode()
    (confirm_to,) = re.findall(r'<form method="post" action="([^"]*)">', confirmation)
    done = client.post(confirm_to.replace("&amp;", "&"), {"decision": "approve", "confirm": "yes"})
    assert done.url == queue
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
