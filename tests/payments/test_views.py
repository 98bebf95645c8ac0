import hashlib
import hmac

import pytest
from django.urls import reverse

from orders.models import Order, OrderStatus
from payments.gateways.fake import SECRET
from payments.models import Payment, PaymentStatus
from tests.orders.factories import place_order
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_fake_gateway(settings):
    # Autouse fixtures run first, so `fake_gateway` is built after this change.
    settings.PAYMENT_GATEWAYS = ["fake"]


def cashier_url(order) -> str:
    return reverse("payments:cashier", kwargs={"order_no": order.order_no})


def test_cashier_offers_redirect_and_qr(shopper_client, shopper):
    order = place_order(shopper=shopper)
    page = shopper_client.get(cashier_url(order)).content.decode()
    assert 'value="fake:redirect"' in page and 'value="fake:qr"' in page
    assert order.total.format() in page


def test_cashier_hides_a_gateway_that_is_not_configured(shopper_client, shopper, settings):
    settings.PAYMENT_GATEWAYS = ["fake", "unionpay"]
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS,
                                "unionpay": {**settings.GATEWAY_OPTIONS["unionpay"], "sign_cert_path": "/nowhere.pfx"}}
    page = shopper_client.get(cashier_url(place_order(shopper=shopper))).content.decode()
    assert "unionpay" not in page


def test_choosing_qr_shows_the_qr_page(shopper_client, shopper):
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:qr", "device": "desktop"})
    payment = Payment.objects.get()
    assert response.url == reverse("payments:qr", kwargs={"out_trade_no": payment.out_trade_no})
    page = shopper_client.get(response.url).content.decode()
    assert "<svg" in page and f'data-qr-content="fake://pay/{payment.out_trade_no}"' in page


def test_choosing_redirect_goes_to_the_gateway(shopper_client, shopper):
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:redirect", "device": "desktop"})
    payment = Payment.objects.get()
    assert payment.method == "page"
    assert response.url == f"https://fake.invalid/pay/{payment.out_trade_no}"


def test_a_phone_gets_the_mobile_flavour(shopper_client, shopper):
    order = place_order(shopper=shopper)
    shopper_client.post(cashier_url(order), {"choice": "fake:redirect", "device": "mobile"})
    assert Payment.objects.get().method == "wap"


def test_the_device_defaults_from_the_user_agent(shopper_client, shopper):
    order = place_order(shopper=shopper)
    page = shopper_client.get(
        cashier_url(order), HTTP_USER_AGENT="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148"
    ).content.decode()
    assert 'value="mobile" id="id_device_1" checked' in page.replace('required ', '')


def test_an_unknown_choice_is_an_error_next_to_the_field(shopper_client, shopper):
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "alipay:qr", "device": "desktop"})
    assert response.status_code == 400
    assert 'data-field="choice"' in response.content.decode()
    assert not Payment.objects.exists()


def test_a_paid_order_cannot_start_a_new_attempt(shopper_client, shopper):
    order = place_order(shopper=shopper)
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.PAID)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:qr", "device": "desktop"})
    assert 'data-testid="not-payable"' in response.content.decode()
    assert not Payment.objects.exists()


def test_gateway_failure_is_shown_and_nothing_is_paid(shopper_client, shopper, fake_gateway):
    from payments.exceptions import GatewayUnavailable

    fake_gateway.fail_next["start_payment"] = GatewayUnavailable("timeout")
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:qr", "device": "desktop"})
    assert response.status_code == 400
    assert "could not be reached" in response.content.decode()
    assert Payment.objects.get().status == PaymentStatus.FAILED


@pytest.mark.parametrize("page", ["payments:qr", "payments:status", "payments:result"])
def test_another_shoppers_payment_pages_are_not_found(client, shopper, other_shopper, page):
    payment, _ = start_payment(order=place_order(shopper=other_shopper))
    client.force_login(shopper)
    assert client.get(reverse(page, kwargs={"out_trade_no": payment.out_trade_no})).status_code == 404


def test_status_reports_done_once_paid(shopper_client, shopper, fake_gateway):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    url = reverse("payments:status", kwargs={"out_trade_no": payment.out_trade_no})
    assert shopper_client.get(url).json()["done"] is False
    fake_gateway.pay(payment.out_trade_no)
    Payment.objects.filter(pk=payment.pk).update(last_queried_at=None)
    data = shopper_client.get(url).json()
    assert data == {"payment": "succeeded", "order": "paid", "done": True,
                    "result_url": reverse("payments:result", kwargs={"out_trade_no": payment.out_trade_no})}


def result_of(client, payment) -> str:
    page = client.get(reverse("payments:result", kwargs={"out_trade_no": payment.out_trade_no})).content.decode()
    return page.split('data-result="')[1].split('"')[0]


def test_result_page_tells_the_truth(shopper_client, shopper, fake_gateway):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    fake_gateway.trades.clear()
    # The gateway has never seen the trade: the shopper did not pay.
    assert result_of(shopper_client, payment) == "failure"

    Payment.objects.filter(pk=payment.pk).update(gateway_status="pending", last_queried_at=None)
    from payments.gateways.base import TradeState, TradeStatus

    fake_gateway.trades[payment.out_trade_no] = TradeState(out_trade_no=payment.out_trade_no,
                                                           status=TradeStatus.PENDING)
    assert result_of(shopper_client, payment) == "confirming"

    fake_gateway.pay(payment.out_trade_no)
    Payment.objects.filter(pk=payment.pk).update(last_queried_at=None)
    assert result_of(shopper_client, payment) == "success"


def signed_return(out_trade_no: str, *, forged=False) -> dict:
    key = b"other" if forged else SECRET
    return {"out_trade_no": out_trade_no, "sig": hmac.new(key, out_trade_no.encode(), hashlib.sha256).hexdigest()}


def test_return_confirms_by_query_before_showing_success(shopper_client, shopper, fake_gateway):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    fake_gateway.pay(payment.out_trade_no)
    response = shopper_client.get(reverse("payments:return", kwargs={"gateway": "fake"}),
                                  signed_return(payment.out_trade_no))
    assert response.url == reverse("payments:result", kwargs={"out_trade_no": payment.out_trade_no})
    assert ("query_payment", payment.out_trade_no) in fake_gateway.calls
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


def test_return_parameters_alone_never_mark_paid(shopper_client, shopper):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    shopper_client.get(reverse("payments:return", kwargs={"gateway": "fake"}), signed_return(payment.out_trade_no))
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING
    assert result_of(shopper_client, payment) == "failure"


def test_a_forged_return_is_refused(shopper_client, shopper):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    response = shopper_client.get(reverse("payments:return", kwargs={"gateway": "fake"}),
                                  signed_return(payment.out_trade_no, forged=True))
    assert response.status_code == 400


def notify_url(gateway="fake") -> str:
    return reverse("payments:notify", kwargs={"gateway": gateway})


def test_notify_answers_the_providers_acknowledgement(client, fake_gateway):
    payment, _ = start_payment()
    fake_gateway.pay(payment.out_trade_no)
    raw = fake_gateway.notification(payment.out_trade_no)
    response = client.post(notify_url(), raw.body, content_type="application/json",
                           HTTP_X_FAKE_SIGNATURE=raw.header("X-Fake-Signature"))
    assert (response.status_code, response.content) == (200, b"ok")
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED


def test_notify_rejects_bad_input_with_a_4xx(client):
    response = client.post(notify_url(), b"\xff\xfe garbage", content_type="application/octet-stream")
    assert (response.status_code, response.content) == (400, b"fail")


def test_notify_for_an_unknown_gateway_is_not_found(client):
    assert client.post(notify_url("paypal"), b"x", content_type="text/plain").status_code == 404


def test_notify_only_accepts_post(client):
    assert client.get(notify_url()).status_code == 405


def test_fifty_anonymous_returns_ask_the_gateway_once(client, fake_gateway):
    """The return URL is public and replayable: one query per attempt per interval."""
    payment, _ = start_payment()
    params = signed_return(payment.out_trade_no)
    for _ in range(50):
        response = client.get(reverse("payments:return", kwargs={"gateway": "fake"}), params)
        assert response.status_code == 302
    assert [call for call in fake_gateway.calls if call[0] == "query_payment"] == [
        ("query_payment", payment.out_trade_no)]


@pytest.mark.django_db(transaction=True)
def test_returns_at_once_answer_from_the_database_while_a_query_is_in_flight(fake_gateway, live_server):
    import threading

    import requests

    from tests.concurrency import run_in_parallel

    payment, _ = start_payment()
    params = signed_return(payment.out_trade_no)
    release = threading.Event()
    real_query = type(fake_gateway).query_payment
    queries = []

    def slow_query(self, reference):
        queries.append(reference.out_trade_no)
        release.wait(10)  # the gateway hangs until the other hits are answered
        return real_query(self, reference)

    url = live_server.url + reverse("payments:return", kwargs={"gateway": "fake"})
    type(fake_gateway).query_payment = slow_query
    try:
        first = threading.Thread(target=lambda: requests.get(url, params=params, allow_redirects=False, timeout=20))
        first.start()
        from tests.polling import wait_for
        wait_for(lambda: queries, what="the first return's query to start")
        answers = run_in_parallel(
            lambda i: requests.get(url, params=params, allow_redirects=False, timeout=5).status_code, 10)
        release.set()
        first.join(20)
    finally:
        type(fake_gateway).query_payment = real_query
        release.set()
    assert answers == [("ok", 302)] * 10
    assert queries == [payment.out_trade_no]
