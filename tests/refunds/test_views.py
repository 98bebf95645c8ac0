"""The shopper's refund form and customer service's admin desk."""
import uuid

import pytest
from django.urls import reverse

from orders.models import OrderStatus
from refunds.models import InvariantViolation, Refund, RefundStatus
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


def decide(client, refund, decision, note=""):
    return client.post(reverse("admin:refunds_refund_decide", args=[refund.pk]),
                       {"decision": decision, "note": note})


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
        from django.contrib.auth.models import Permission

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
        assert "1 refund waits for review" in page
