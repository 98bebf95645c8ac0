"""Checkout under concurrency, on real PostgreSQL row locks."""
import uuid

import pytest

from orders.exceptions import InsufficientStock
from orders.models import Order
from orders.services import checkout as services
from orders.services import order_place
from shop.models import Sku
from tests.concurrency import run_in_parallel
from tests.orders.factories import CONSIGNEE
from tests.shop.factories import SkuFactory, UserFactory


@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_checkouts_for_five_in_stock_sell_exactly_five():
    sku = SkuFactory(stock=5)
    shoppers = [UserFactory() for _ in range(20)]

    results = run_in_parallel(
        lambda i: order_place(
            shopper=shoppers[i], items=[(sku.code, 1)], consignee=CONSIGNEE, checkout_token=uuid.uuid4()
        ),
        20,
    )

    placed = [value for kind, value in results if kind == "ok"]
    refused = [value for kind, value in results if kind == "error"]
    assert len(placed) == 5
    assert len(refused) == 15
    assert all(isinstance(exc, InsufficientStock) for exc in refused)
    assert Order.objects.count() == 5
    assert Sku.objects.get(pk=sku.pk).stock == 0


@pytest.mark.django_db(transaction=True)
def test_fifty_parallel_orders_get_fifty_distinct_numbers():
    sku = SkuFactory(stock=100)
    shopper = UserFactory()

    results = run_in_parallel(
        lambda i: order_place(
            shopper=shopper, items=[(sku.code, 1)], consignee=CONSIGNEE, checkout_token=uuid.uuid4()
        ).order_no,
        50,
    )

    assert [kind for kind, _ in results] == ["ok"] * 50
    numbers = [value for _, value in results]
    assert len(set(numbers)) == 50
    assert all(len(number) == 16 and number.isdigit() for number in numbers)
    assert Sku.objects.get(pk=sku.pk).stock == 50


@pytest.mark.django_db(transaction=True)
def test_the_same_checkout_submitted_in_parallel_places_one_order():
    sku = SkuFactory(stock=10)
    shopper = UserFactory()
    token = uuid.uuid4()

    results = run_in_parallel(
        lambda i: order_place(shopper=shopper, items=[(sku.code, 1)], consignee=CONSIGNEE, checkout_token=token),
        5,
    )

    assert Order.objects.count() == 1
    assert Sku.objects.get(pk=sku.pk).stock == 9
    winners = [value for kind, value in results if kind == "ok"]
    assert len(winners) == 1
    errors = [value for kind, value in results if kind == "error"]
    assert all(type(exc).__name__ == "CheckoutAlreadyPlaced" for exc in errors)
    assert {exc.order_no for exc in errors} == {winners[0].order_no}


@pytest.mark.django_db
def test_an_order_number_collision_draws_a_new_number(monkeypatch):
    sku = SkuFactory(stock=10)
    shopper = UserFactory()
    drawn = iter(["2026112200000001", "2026112200000001", "2026112200000002"])
    monkeypatch.setattr(services, "new_order_no", lambda now: next(drawn))

    first = order_place(shopper=shopper, items=[(sku.code, 1)], consignee=CONSIGNEE)
    second = order_place(shopper=shopper, items=[(sku.code, 1)], consignee=CONSIGNEE)

    assert (first.order_no, second.order_no) == ("2026112200000001", "2026112200000002")
    assert Sku.objects.get(pk=sku.pk).stock == 8


@pytest.mark.django_db
@pytest.mark.parametrize("quantity", [0, -1, 100, True, "1", 1.0])
def test_order_place_refuses_bad_quantities_without_touching_stock(quantity):
    from orders.exceptions import InvalidQuantity

    sku = SkuFactory(stock=10)
    with pytest.raises(InvalidQuantity):
        order_place(shopper=UserFactory(), items=[(sku.code, quantity)], consignee=CONSIGNEE)
    assert Sku.objects.get(pk=sku.pk).stock == 10
    assert not Order.objects.exists()
