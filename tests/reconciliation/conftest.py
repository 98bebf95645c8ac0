import pytest

from payments.gateways import reset_gateway_cache


@pytest.fixture
def fake(fake_gateway, settings):
    """The in-memory gateway as the only enabled one, bills included."""
    settings.PAYMENT_GATEWAYS = ["fake"]
    reset_gateway_cache()
    from payments.gateways import get_gateway

    return get_gateway("fake")
