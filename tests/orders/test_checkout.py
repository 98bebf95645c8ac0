import uuid

import pytest
from django.urls import reverse

from orders.models import Order, OrderEvent, OrderStatus
from shop.cart import SESSION_KEY
from shop.models import Sku

ADDRESS = {
    "consignee_name": "Li Lei",
    "consignee_phone": "13800138000",
    "address_province": "Shanghai",
    "address_city": "Shanghai",
    "address_district": "Huangpu",
    "address_street": "1 Nanjing Road East, Room 1203",
    "address_postal_code": "200001",
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
    assert (order.address_province, order.address_city, order.address_district, order.address_street,
            order.address_postal_code) == ("Shanghai", "Shanghai", "Huangpu", "1 Nanjing Road East, Room 1203",
                                           "200001")
    # The one-line address older code and older orders read.
    assert order.consignee_address == "Shanghai Shanghai Huangpu 1 Nanjing Road East, Room 1203 200001"
    assert order.language == "en"
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


def assert_sent_back_to_the_cart(client, response, *, tea=None, stock_before=None):
    assert response.status_code == 302 and response.url == reverse("shop:cart")
    assert "Your cart is empty." in client.get(response.url).content.decode()
    assert not Order.objects.exists()
    if tea is not None:
        assert stock(tea) == stock_before


@pytest.mark.django_db
def test_empty_cart_is_refused(shopper_client):
    assert_sent_back_to_the_cart(shopper_client, checkout(shopper_client))


@pytest.mark.django_db
def test_an_empty_cart_never_reaches_the_checkout_form(shopper_client):
    """Redirected to the cart, which says it is empty; no form to fill for nothing."""
    response = shopper_client.get(reverse("orders:checkout"))
    assert response.status_code == 302 and response.url == reverse("shop:cart")
    page = shopper_client.get(response.url).content.decode()
    assert "Your cart is empty." in page and 'data-testid="checkout"' not in page


@pytest.mark.django_db
def test_a_cart_line_over_the_stock_goes_back_to_the_cart(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 11})
    response = shopper_client.get(reverse("orders:checkout"))
    assert response.status_code == 302 and response.url == reverse("shop:cart")
    page = shopper_client.get(response.url).content.decode()
    assert f'data-line="{tea.code}">Only 10 left; lower the quantity.' in page
    assert 'data-testid="checkout"' not in page


@pytest.mark.django_db
def test_unknown_sku_in_cart_is_refused(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 1, "GONE-1": 1})
    assert_refused(checkout(shopper_client), message="GONE-1 is no longer available", tea=tea, stock_before=10)


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -3, "2", True])
def test_malformed_cart_lines_are_dropped(shopper_client, tea, quantity):
    put_in_cart(shopper_client, {tea.code: quantity})
    assert_sent_back_to_the_cart(shopper_client, checkout(shopper_client), tea=tea, stock_before=10)


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
        ("address_province", "", "This field is required."),
        ("address_city", "", "This field is required."),
        ("address_street", "", "This field is required."),
        ("address_street", "No1", "Enter the street, number and building."),
        ("address_postal_code", "2000", "A postal code is six digits, e.g. 310013."),
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
    assert "1 Nanjing Road East, Room 1203</textarea>" in page
    assert 'value="Huangpu"' in page and 'value="200001"' in page


@pytest.mark.django_db
def test_the_form_says_what_to_autofill_and_sums_up_the_order_beside_it(shopper_client, tea):
    put_in_cart(shopper_client, {tea.code: 2})
    page = shopper_client.get(reverse("orders:checkout")).content.decode()
    for attribute in ('type="tel"', 'autocomplete="tel"', 'autocomplete="name"', 'autocomplete="address-level1"',
                      'autocomplete="address-level2"', 'autocomplete="address-level3"',
                      'autocomplete="street-address"', 'autocomplete="postal-code"'):
        assert attribute in page, attribute
    summary = page.split('data-testid="order-summary"')[1]
    assert "Tea" in summary and "× 2" in summary and "¥176.00" in summary
