"""End-to-end fixtures: the live shop and the sandbox gateway process (tests/conftest.py)."""
import pytest

from tests.e2e.shop_client import ShopClient


@pytest.fixture
def sandbox(shop_sandbox):
    return shop_sandbox


@pytest.fixture
def shop(live_server, sandbox, transactional_db) -> ShopClient:
    """A shopper's HTTP session against the live shop, signed in, with stock to buy."""
    from shop.demo import demo_setup

    demo_setup()
    client = ShopClient(live_server.url)
    client.sign_in("shopper", "shopper-demo-1")
    return client
