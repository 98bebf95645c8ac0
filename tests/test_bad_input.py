"""Bad input is a 4xx everywhere: a NUL in any URL segment or form value, an id
that is not a number, a huge id. Never a 500 (the test client raises on one)."""
import pytest
from django.urls import reverse

from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db

NUL_PATHS = [
    "/orders/%00/", "/orders/%00/pay/", "/orders/%00/refund/", "/payments/%00/status/", "/payments/%00/qr/",
    "/payments/%00/result/", "/payments/%00/notify/", "/payments/%00/return/", "/refunds/%00/notify/",
    "/products/%00/", "/admin/refunds/refund/%00/change/", "/admin/payments/payment/%00/change/",
    "/%00", "/cart/%00",
]


@pytest.fixture
def staff_client(client):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="desk", staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["refunds", "payments"]))
    client.force_login(staff)
    return client


@pytest.mark.parametrize("path", NUL_PATHS)
def test_a_nul_in_any_url_segment_is_not_found(staff_client, path):
    assert staff_client.get(path).status_code == 404
    assert staff_client.post(path, {}).status_code in (403, 404)


@pytest.mark.parametrize("path", ["/", "/cart/", "/orders/", "/admin/refunds/refund/", "/accounts/login/"])
def test_a_nul_in_a_query_value_is_a_bad_request(staff_client, path):
    assert staff_client.get(path, {"q": "tea\x00"}).status_code == 400


def test_a_nul_in_an_anonymous_cart_form_is_a_bad_request(client):
    assert client.post("/cart/add/", {"sku": "\x00", "quantity": "1"}).status_code == 400
    assert client.post("/cart/update/", {"sku": "TEA\x00", "quantity": "1"}).status_code == 400
    assert client.post("/accounts/login/", {"username": "a\x00", "password": "x"}).status_code == 400


@pytest.mark.parametrize("object_id", ["abc", "1.5", "-1", "99999999999999999999999", "1e3"])
def test_a_refund_admin_id_that_is_no_number_is_not_found(staff_client, object_id):
    assert staff_client.get(f"/admin/refunds/refund/{object_id}/change/").status_code in (302, 404)
    assert staff_client.post(f"/admin/refunds/refund/{object_id}/decide/",
                             {"decision": "approve"}).status_code == 404


@pytest.mark.parametrize("name", ["orders:detail", "payments:status", "payments:result", "payments:qr"])
def test_an_unknown_number_is_not_found(staff_client, name):
    key = "order_no" if name.startswith("orders") else "out_trade_no"
    assert staff_client.get(reverse(name, kwargs={key: "9" * 200})).status_code == 404
