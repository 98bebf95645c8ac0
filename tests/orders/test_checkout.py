import uuid

import pytest
from django.urls import reverse

from orders.models import Order, OrderEvent, OrderStatus
from shop.cart import SESSION_KEY
from shop.models import Sku

ADDRESS = {
    "consignee_name": "Li Lei",
    "consignee_phone": "13800138000",
    "consignee_address": "1 Nanjing Road, Shanghai",
}


def put_in_cart(client, items: dict) -> None:
    session = client.session
    session[SESSION_KEY] = items
    session.save()


def checkout(client, **overrides):
    data = {**ADDRESS, "checkout_token": str(uuid.uuid4()), **overrides}
    return client.post(reverse("orders:checkout"), data)


def stock(sku) -> int:
    return Sku.objects.get(pk=sku.pk).stock


@pytest.mark.django_db
def test_checkout_creates_order_reserves_stock_and_goes_to_cashier(shopper_client, shopper, tea, cup):
    put_in_cart(shopper_client, {tea.code: 2, cup.code: 1})

    response = checkout(shopper_client)

    order = Order.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("payments:cashier", kwargs={"order_no": order.order_no})
    assert order.shopper == shopper
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.total_minor == 2 * 8800 + 3990
    assert order.consignee_address == ADDRESS["consignee_address"]
    assert [(line.sku_code, line.unit_price_minor, line.quantity) for line in order.lines.all()] == [
        (tea.code, 8800, 2),
        (cup.code, 3990, 1),
    ]
    assert stock(tea) == 8 and stock(cup) == 9
    assert order.expires_at > order.created_at
    assert OrderEvent.objects.filter(order=order, to_status=OrderStatus.PENDING_PAYMENT).count() == 1
    assert shopper_client.session[SESSION_KEY] == {}

    cashier = shopper_client.get(response.url).content.decode()
    assert "¥215.90" in cashier


@pytest.mark.django_db
def test_checkout_requires_sign_in(client, tea):
    put_in_cart(client, {tea.code: 1})
    response = checkout(client)
    assert response.status_code == 302
    assert reverse("login") in response.url
    assert not Order.objects.exists()


def assert_refused(response, *, message: str, tea=None, stock_before=None):
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Order.objects.exists()
    if tea is not None:
        assert stock(tea) == stock_before


@pytest.mark.django_db
def test_empty_cart_is_refused(shopper_client):
    assert_refused(checkout(shopper_client), message="Your cart is empty.")


@pytest.mark.django_db
def test_unknown_sku_in_cart_is_refused(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 1, "GONE-1": 1})
    assert_refused(checkout(shopper_client), message="GONE-1 is no longer available", tea=tea, stock_before=10)


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -3, "2", True])
def test_malformed_cart_lines_are_dropped(shopper_client, tea, quantity):
    put_in_cart(shopper_client, {tea.code: quantity})
    assert_refused(checkout(shopper_client), message="Your cart is empty.", tea=tea, stock_before=10)


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [100, 10**12])
def test_huge_quantity_in_cart_is_refused(shopper_client, tea, quantity):
    put_in_cart(shopper_client, {tea.code: quantity})
    assert_refused(checkout(shopper_client), message="The quantity of TEA-1 is not valid.", tea=tea, stock_before=10)


@pytest.mark.django_db
def test_quantity_above_stock_is_refused(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 11})
    assert_refused(checkout(shopper_client), message="Only 10 of Tea", tea=tea, stock_before=10)


@pytest.mark.django_db
def test_tampered_price_fields_are_ignored(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 1})
    checkout(shopper_client, total_minor="1", price="0.01", unit_price_minor="1")
    assert Order.objects.get().total_minor == 8800


@pytest.mark.django_db
@pytest.mark.parametrize(
    "field,value,message",
    [
        ("consignee_name", "", "This field is required."),
        ("consignee_phone", "", "This field is required."),
        ("consignee_phone", "call me", "Enter a phone number of digits"),
        ("consignee_address", "", "This field is required."),
        ("consignee_address", "here", "Enter the full delivery address."),
    ],
)
def test_missing_or_bad_address_fields_are_errors_next_to_the_field(shopper_client, tea, field, value, message):
    put_in_cart(shopper_client, {tea.code: 1})
    response = checkout(shopper_client, **{field: value})
    assert f'data-field="{field}">{message}' in response.content.decode()
    assert_refused(response, message=message, tea=tea, stock_before=10)


@pytest.mark.django_db
def test_submitting_the_same_checkout_twice_keeps_one_order(shopper_client, tea):
    token = str(uuid.uuid4())
    put_in_cart(shopper_client, {tea.code: 1})
    first = checkout(shopper_client, checkout_token=token)
    put_in_cart(shopper_client, {tea.code: 1})  # the reload resubmits the same form
    second = checkout(shopper_client, checkout_token=token)

    order = Order.objects.get()
    assert first.url == second.url == reverse("payments:cashier", kwargs={"order_no": order.order_no})
    assert stock(tea) == 9


@pytest.mark.django_db
def test_checkout_page_prefills_the_last_address(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 1})
    checkout(shopper_client)
    put_in_cart(shopper_client, {tea.code: 1})
    page = shopper_client.get(reverse("orders:checkout")).content.decode()
    assert "1 Nanjing Road, Shanghai" in page
