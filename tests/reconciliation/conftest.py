import pytest

from payments.gateways import reset_gateway_cache


@pytest.fixture(autouse=True)
def bills_storage(settings, tmp_path):
    """Each test keeps its bills in its own folder."""
    settings.STORAGES = {**settings.STORAGES, "bills": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "bills")}}}
    return tmp_path / "bills"


@pytest.fixture
def fake(fake_gateway, settings):
    """The in-memory gateway as the only enabled one, bills included."""
    settings.PAYMENT_GATEWAYS = ["fake"]
    reset_gateway_cache()
    from payments.gateways import get_gateway

    return get_gateway("fake")
