import pytest
from django.urls import reverse

from shop.cart import SESSION_KEY


def cart_of(client) -> dict:
    return client.session.get(SESSION_KEY, {})


@pytest.mark.django_db
def test_add_change_and_remove(client, tea, cup):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 2})
    client.post(reverse("shop:cart_add"), {"sku": cup.code, "quantity": 1})
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 1})
    assert cart_of(client) == {tea.code: 3, cup.code: 1}

    client.post(reverse("shop:cart_update"), {"sku": tea.code, "quantity": 5})
    assert cart_of(client)[tea.code] == 5

    client.post(reverse("shop:cart_remove"), {"sku": cup.code})
    assert cart_of(client) == {tea.code: 5}

    page = client.get(reverse("shop:cart"))
    assert "¥440.00" in page.content.decode()  # 5 × ¥88.00, computed on the server


@pytest.mark.django_db
def test_changing_quantity_to_zero_removes_the_line(client, tea):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 2})
    client.post(reverse("shop:cart_update"), {"sku": tea.code, "quantity": 0})
    assert cart_of(client) == {}


@pytest.mark.django_db
def test_unknown_sku_is_a_form_error(client):
    response = client.post(reverse("shop:cart_add"), {"sku": "NOPE", "quantity": 1})
    assert response.status_code == 400
    assert "This product is not available." in response.content.decode()
    assert cart_of(client) == {}


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", ["0", "-1", "100", "99999999999999999999", "1.5", "two", ""])
def test_bad_quantity_is_an_error_next_to_the_field(client, tea, quantity):
    response = client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": quantity})
    assert response.status_code == 400
    assert 'data-field="quantity"' in response.content.decode()
    assert cart_of(client) == {}


@pytest.mark.django_db
def test_posted_price_is_ignored(client, tea):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 1, "price": "1", "price_minor": "1"})
    assert cart_of(client) == {tea.code: 1}
    page = client.get(reverse("shop:cart")).content.decode()
    assert "¥88.00" in page
    assert "¥0.01" not in page


@pytest.mark.django_db
def test_inactive_sku_cannot_be_added(client, tea):
    tea.is_active = False
    tea.save()
    response = client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 1})
    assert response.status_code == 400
    assert cart_of(client) == {}


@pytest.mark.django_db
def test_catalogue_shows_the_cheapest_price(client, tea):
    from tests.shop.factories import SkuFactory

    SkuFactory(product=tea.product, code="TEA-2", price_minor=1999)
    page = client.get(reverse("shop:catalogue")).content.decode()
    assert "from ¥19.99" in page


def stock_of(sku) -> int:
    from shop.models import Sku

    return Sku.objects.get(pk=sku.pk).stock


@pytest.mark.django_db
def test_adding_more_than_the_stock_is_an_error_on_the_line_and_changes_nothing(client, tea):
    response = client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 11})
    assert response.status_code == 400
    assert 'data-field="quantity">Only 10 left; lower the quantity.' in response.content.decode()
    assert cart_of(client) == {}
    assert stock_of(tea) == 10


@pytest.mark.django_db
def test_adding_counts_what_the_cart_already_holds(client, tea):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 8})
    response = client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 3})
    assert response.status_code == 400
    assert "You already have 8 in your cart. Only 10 left; lower the quantity." in response.content.decode()
    assert cart_of(client) == {tea.code: 8}
    assert stock_of(tea) == 10


@pytest.mark.django_db
def test_changing_a_line_above_the_stock_shows_the_error_on_that_line(client, tea, cup):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 2})
    client.post(reverse("shop:cart_add"), {"sku": cup.code, "quantity": 1})
    response = client.post(reverse("shop:cart_update"), {"sku": tea.code, "quantity": 12})
    page = response.content.decode()
    assert response.status_code == 400
    assert f'data-line="{tea.code}">Only 10 left; lower the quantity.' in page
    assert f'data-line="{cup.code}"' not in page
    assert cart_of(client) == {tea.code: 2, cup.code: 1}
    assert stock_of(tea) == 10


@pytest.mark.django_db
def test_a_line_the_stock_no_longer_covers_is_marked_and_checkout_is_not_offered(client, tea):
    client.post(reverse("shop:cart_add"), {"sku": tea.code, "quantity": 4})
    type(tea).objects.filter(pk=tea.pk).update(stock=3)  # sold meanwhile
    page = client.get(reverse("shop:cart")).content.decode()
    assert f'data-line="{tea.code}">Only 3 left; lower the quantity.' in page
    assert 'data-testid="checkout"' not in page and 'data-testid="cart-blocked"' in page
    type(tea).objects.filter(pk=tea.pk).update(stock=0)
    page = client.get(reverse("shop:cart")).content.decode()
    assert "No longer available; remove it from your cart." in page
