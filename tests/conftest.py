import pytest

from tests.shop.factories import SkuFactory, UserFactory


@pytest.fixture
def shopper(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_shopper(db):
    return UserFactory(username="bob")


@pytest.fixture
def shopper_client(client, shopper):
    client.force_login(shopper)
    return client


@pytest.fixture
def tea(db):
    return SkuFactory(code="TEA-1", price_minor=8800, stock=10, product__name="Tea")


@pytest.fixture
def cup(db):
    return SkuFactory(code="CUP-1", price_minor=3990, stock=10, product__name="Cup")
