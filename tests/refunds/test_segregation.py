"""Segregation of duties: nobody decides on money of their own order, and admin
actions need the change permission of what they change (403 when forged)."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission

from payments.models import GatewayNotification
from refunds.exceptions import SelfReviewNotAllowed
from refunds.models import Refund, RefundApproval, RefundStatus
from refunds.services import refund_approve
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


def status(refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


class TestSelfApproval:
    def test_a_reviewer_cannot_approve_a_refund_of_their_own_order(self):
        staff_shopper = reviewer("desk-and-shopper")
        order, _ = paid_order(shopper=staff_shopper)
        refund = apply_for_refund(order, 4000)

        with pytest.raises(SelfReviewNotAllowed):
            refund_approve(refund_id=refund.pk, reviewer=staff_shopper)

        assert status(refund) == RefundStatus.REQUESTED
        assert not RefundApproval.objects.exists()
        refund_approve(refund_id=refund.pk, reviewer=reviewer("colleague"))
        assert status(refund) == RefundStatus.SUCCEEDED

    def test_above_the_threshold_neither_approver_may_be_the_applicant(self, settings):
        settings.REFUND_SECOND_APPROVAL_ABOVE_MINOR = 5000
        staff_shopper = reviewer("desk-and-shopper")
        order, _ = paid_order(shopper=staff_shopper, price_minor=9000)
        refund = apply_for_refund(order, 9000)
        assert refund.approvals_required == 2

        refund_approve(refund_id=refund.pk, reviewer=reviewer("first"))
        with pytest.raises(SelfReviewNotAllowed):
            refund_approve(refund_id=refund.pk, reviewer=staff_shopper)  # as the second approver
        assert status(refund) == RefundStatus.REQUESTED
        assert RefundApproval.objects.filter(refund=refund).count() == 1

        refund_approve(refund_id=refund.pk, reviewer=reviewer("second"))
        assert status(refund) == RefundStatus.SUCCEEDED

    def test_the_admin_page_shows_why(self, client):
        staff_shopper = reviewer("desk-and-shopper")
        order, _ = paid_order(shopper=staff_shopper)
        refund = apply_for_refund(order, 4000)
        client.force_login(staff_shopper)
        response = client.post(f"/admin/refunds/refund/{refund.pk}/decide/", {"decision": "approve"}, follow=True)
        assert "You cannot decide on a refund of your own order" in response.content.decode()
        assert status(refund) == RefundStatus.REQUESTED


def view_only_staff(client, *codenames):
    user = reviewer("viewer", can_review=False)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


class TestViewOnlyStaff:
    def test_sees_no_action_and_a_forged_process_again_is_forbidden(self, client, fake_gateway):
        order, payment = paid_order()
        notification = GatewayNotification.objects.get()
        view_only_staff(client, "view_gatewaynotification", "view_payment")

        page = client.get("/admin/payments/gatewaynotification/").content.decode()
        assert 'value="reprocess"' not in page
        forged = client.post("/admin/payments/gatewaynotification/",
                             {"action": "reprocess", ACTION_CHECKBOX_NAME: [notification.pk]})
        assert forged.status_code == 403
        assert GatewayNotification.objects.get().process_count == 1

        page = client.get("/admin/payments/payment/").content.decode()
        assert 'value="query_gateway"' not in page
        forged = client.post("/admin/payments/payment/", {"action": "query_gateway", ACTION_CHECKBOX_NAME: [payment.pk]})
        assert forged.status_code == 403
        assert not [call for call in fake_gateway.calls if call[0] == "query_payment"]

    def test_without_the_review_permission_refund_actions_and_decisions_are_forbidden(self, client):
        order, _ = paid_order()
        refund = apply_for_refund(order, 4000)
        view_only_staff(client, "view_refund")

        assert 'value="approve_selected"' not in client.get("/admin/refunds/refund/").content.decode()
        forged = client.post("/admin/refunds/refund/", {"action": "approve_selected", ACTION_CHECKBOX_NAME: [refund.pk]})
        assert forged.status_code == 403
        assert client.post(f"/admin/refunds/refund/{refund.pk}/decide/", {"decision": "approve"}).status_code == 403
        assert status(refund) == RefundStatus.REQUESTED

    def test_with_the_change_permission_the_action_runs(self, client, fake_gateway):
        paid_order()
        notification = GatewayNotification.objects.get()
        view_only_staff(client, "view_gatewaynotification", "change_gatewaynotification")
        assert 'value="reprocess"' in client.get("/admin/payments/gatewaynotification/").content.decode()
        response = client.post("/admin/payments/gatewaynotification/",
                               {"action": "reprocess", ACTION_CHECKBOX_NAME: [notification.pk]})
        assert response.status_code == 302
        assert GatewayNotification.objects.get().process_count == 2
