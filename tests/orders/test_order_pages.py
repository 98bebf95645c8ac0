import pytest
from django.urls import reverse

from tests.orders.factories import place_order


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
