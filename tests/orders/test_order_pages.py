import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from orders.models import Order
from refunds.services import refund_approve, refund_reject
from tests.orders.factories import place_order
from tests.refunds.factories import apply_for_refund, paid_order, reviewer
from tests.shop.factories import UserFactory


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["orders:detail", "payments:cashier"])
def test_another_shoppers_order_is_not_found(client, shopper, other_shopper, page):
    order = place_order(shopper=other_shopper)
    client.force_login(shopper)
    assert client.get(reverse(page, kwargs={"order_no": order.order_no})).status_code == 404
    client.force_login(other_shopper)
    assert client.get(reverse(page, kwargs={"order_no": order.order_no})).status_code == 200


@pytest.mark.django_db
def test_unknown_order_number_is_not_found(shopper_client):
    assert shopper_client.get(reverse("orders:detail", kwargs={"order_no": "2026010100000000"})).status_code == 404


@pytest.mark.django_db
def test_my_orders_lists_only_mine(shopper_client, shopper, other_shopper):
    mine = place_order(shopper=shopper)
    theirs = place_order(shopper=other_shopper)
    page = shopper_client.get(reverse("orders:list")).content.decode()
    assert mine.order_no in page
    assert theirs.order_no not in page


@pytest.mark.django_db
def test_order_pages_need_sign_in(client, shopper):
    order = place_order(shopper=shopper)
    response = client.get(reverse("orders:detail", kwargs={"order_no": order.order_no}))
    assert response.status_code == 302 and reverse("login") in response.url


@pytest.mark.django_db
def test_order_detail_shows_lines_amounts_and_status(shopper_client, shopper):
    order = place_order(shopper=shopper, quantity=2, price_minor=1999)
    page = shopper_client.get(order.get_absolute_url()).content.decode()
    assert "¥39.98" in page
    assert "Awaiting payment" in page


# -- what the order page says, from the database ------------------------------


@pytest.fixture
def gateway(fake_gateway, settings):
    settings.PAYMENT_GATEWAYS = ["fake"]
    return fake_gateway


def order_page(client, order) -> str:
    client.force_login(order.shopper)
    return client.get(order.get_absolute_url()).content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_paid_order_says_how_in_one_line_without_the_attempts(client, gateway):
    order, payment = paid_order()
    page = order_page(client, order)
    assert f"Paid with Fake Pay on {timezone.localtime(payment.paid_at):%Y-%m-%d %H:%M}" in page
    assert 'data-testid="paid-with"' in page
    # The attempts and their codes stay in admin.
    assert payment.out_trade_no not in page and ">qr<" not in page and "Attempt" not in page


@pytest.mark.django_db(transaction=True)
def test_apply_is_hidden_while_a_refund_is_under_review_and_a_rejection_reads_as_one(client, gateway):
    order, _ = paid_order()
    refund = apply_for_refund(order, 1000)
    page = order_page(client, order)
    assert 'data-testid="apply-for-refund"' not in page and 'data-testid="refund-under-review"' in page
    assert "Customer service is reviewing your application" in page
    assert client.get(reverse("refunds:apply", args=[order.order_no])).status_code == 302

    refund_reject(refund_id=refund.pk, reviewer=reviewer(), note="outside the return window")

    page = order_page(client, order)
    history = page.split('data-testid="history"')[1]
    assert "Refund rejected" in history
    assert history.count("— Paid") == 1  # no second "Paid" for the order going back
    assert "outside the return window" in page
    assert 'data-testid="apply-for-refund"' in page


@pytest.mark.django_db(transaction=True)
def test_a_refund_shows_its_state_when_it_came_back_and_when_to_expect_it(client, gateway):
    order, _ = paid_order()
    refund = apply_for_refund(order, 1000)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    refund.refresh_from_db()
    page = order_page(client, order)
    arrival = page.split('data-testid="refund-arrival"')[1].split("</p>")[0]
    assert f"Refunded on {timezone.localtime(refund.refunded_at):%Y-%m-%d %H:%M}" in arrival
    assert f"a bank card by {refund.expected_by:%Y-%m-%d}" in arrival
    # Seven working days: nine or more calendar days, as two weekend days always fall in between.
    assert (refund.expected_by - timezone.localdate(refund.refunded_at)).days >= 9


@pytest.mark.django_db
def test_an_order_from_before_the_structured_address_still_shows_its_address(shopper_client, shopper):
    order = place_order(shopper=shopper)
    Order.objects.filter(pk=order.pk).update(consignee_address="1 Nanjing Road\nShanghai", address_street="")
    page = shopper_client.get(order.get_absolute_url()).content.decode()
    assert "1 Nanjing Road<br>Shanghai" in page


@pytest.mark.django_db
def test_staff_who_may_view_orders_see_the_page_read_only(client, shopper):
    order = place_order(shopper=shopper)
    staff = UserFactory(username="desk", is_staff=True)
    client.force_login(staff)
    assert client.get(order.get_absolute_url()).status_code == 404  # staff without the permission
    staff.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(type(staff).objects.get(pk=staff.pk))
    page = client.get(order.get_absolute_url()).content.decode()
    assert 'data-testid="staff-view"' in page and order.order_no in page
    assert "Pay now" not in page and 'data-testid="apply-for-refund"' not in page
    # Admin's "View on site" leads there.
    shortcut = client.get(f"/admin/r/{_content_type_id(Order)}/{order.pk}/")
    assert shortcut.status_code == 302 and shortcut.url.endswith(order.get_absolute_url())


def _content_type_id(model) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(model).pk
