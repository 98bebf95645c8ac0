"""A gateway's POST skips the browser's middleware; a browser's page keeps all of it
(shop/middleware.py, ServerToServerMiddleware)."""
import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import translation

from payments.models import Payment, PaymentStatus
from payments.views import gateway_notify
from refunds.views import gateway_refund_notify
from shop.middleware import BROWSER_ONLY, ServerToServerMiddleware
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_fake_gateway(settings):
    settings.PAYMENT_GATEWAYS = ["fake"]


def _notify(client, raw, **extra):
    return client.post(reverse("payments:notify", kwargs={"gateway": "fake"}), raw.body,
                       content_type="application/json", HTTP_X_FAKE_SIGNATURE=raw.header("X-Fake-Signature"),
                       **extra)


def test_the_gateways_notify_endpoints_are_marked():
    assert gateway_notify.server_to_server
    assert gateway_refund_notify.server_to_server


def test_it_sits_after_security_and_before_everything_it_may_skip():
    middleware = settings.MIDDLEWARE
    here = middleware.index("shop.middleware.ServerToServerMiddleware")
    assert middleware[:here] == ["django.middleware.security.SecurityMiddleware"]
    assert BROWSER_ONLY <= set(middleware[here + 1:])


def test_the_lean_chain_is_what_settings_list_less_the_browsers():
    """MIDDLEWARE stays the one list: the gateways' chain is derived from it."""
    lean = ServerToServerMiddleware(lambda request: None)
    kept = {type(hook.__self__).__module__ + "." + type(hook.__self__).__qualname__
            for hook in lean._view_middleware}
    assert kept == {"shop.middleware.RejectNulCharactersMiddleware"}


def test_a_notification_sets_no_cookie_creates_no_session_and_is_not_csrf_checked(fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    client = Client(enforce_csrf_checks=True)

    response = _notify(client, fake_gateway.notification(payment.out_trade_no),
                       HTTP_COOKIE="sessionid=someone-elses")

    assert response.status_code == 200
    assert not response.cookies
    assert "Set-Cookie" not in response.headers
    assert not Session.objects.exists()
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    # No browser middleware ran: not the user's, the CSP or the framing one.
    assert not hasattr(response.wsgi_request, "session")
    assert not hasattr(response.wsgi_request, "user")
    assert "Content-Security-Policy" not in response.headers
    assert "X-Frame-Options" not in response.headers
    # What the rest of the stack adds still is there.
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Length"] == str(len(response.content))


def test_a_get_to_a_notify_endpoint_goes_down_the_whole_stack_as_before(client):
    response = client.get(reverse("payments:notify", kwargs={"gateway": "fake"}))

    assert response.status_code == 405
    assert "Content-Security-Policy" in response.headers


def test_a_nul_in_the_address_of_a_post_is_still_a_404(client):
    assert client.post("/payments/fa\x00ke/notify/", b"{}", content_type="application/json").status_code == 404


def test_a_browser_page_still_gets_its_session_csrf_and_csp(client):
    response = client.get(reverse("login"))

    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    assert "Content-Security-Policy" in response.headers
    assert response.headers["X-Frame-Options"] == "DENY"
    assert hasattr(response.wsgi_request, "session") and hasattr(response.wsgi_request, "user")


def test_a_browser_post_without_its_csrf_token_is_still_refused():
    client = Client(enforce_csrf_checks=True)

    response = client.post(reverse("login"), {"username": "alice", "password": "x"})

    assert response.status_code == 403


def test_a_notification_runs_in_the_default_language_whatever_the_thread_had_active(client, monkeypatch):
    """No LocaleMiddleware for a gateway: the default language, as it picked for a client asking none."""
    import payments.views

    seen = []

    def spy(request, **kwargs):
        seen.append(translation.get_language())
        return HttpResponse(b"success")

    monkeypatch.setattr(payments.views, "notification_response", spy)
    translation.activate("zh-hans")

    response = client.post(reverse("payments:notify", kwargs={"gateway": "fake"}), b"{}",
                           content_type="application/json")

    assert response.status_code == 200
    assert seen == [settings.LANGUAGE_CODE]
    assert translation.get_language() == "zh-hans"  # put back as it was
