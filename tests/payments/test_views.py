import hashlib
import hmac
import re

import pytest
from django.urls import reverse

from orders.models import Order, OrderStatus
from payments.gateways.base import PayMethod
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


PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"


def offered(page: str) -> list[str]:
    return re.findall(r'name="choice" value="([^"]+)"', page)


def test_a_computer_is_offered_the_website_and_a_qr_code(shopper_client, shopper):
    order = place_order(shopper=shopper)
    page = shopper_client.get(cashier_url(order), HTTP_USER_AGENT=DESKTOP).content.decode()
    assert offered(page) == ["fake:page", "fake:qr"]
    assert order.total.format() in page
    assert "img/pay/generic.svg" in page  # the fake has no mark of its own
    assert "I am paying on" not in page  # nobody is asked which device they hold


def test_a_phone_is_offered_the_mobile_page_and_never_a_qr_code_to_scan_with_itself(shopper_client, shopper):
    order = place_order(shopper=shopper)
    page = shopper_client.get(cashier_url(order), HTTP_USER_AGENT=PHONE).content.decode()
    assert offered(page) == ["fake:wap"]


def test_a_gateway_with_no_way_for_this_device_is_not_offered(shopper_client, shopper, fake_gateway):
    """WeChat Pay's shape: QR and H5 only. A computer gets the QR, a phone H5."""
    fake_gateway.with_capabilities(methods=frozenset({PayMethod.QR, PayMethod.WAP}))
    order = place_order(shopper=shopper)
    assert offered(shopper_client.get(cashier_url(order), HTTP_USER_AGENT=DESKTOP).content.decode()) == ["fake:qr"]
    assert offered(shopper_client.get(cashier_url(order), HTTP_USER_AGENT=PHONE).content.decode()) == ["fake:wap"]
    fake_gateway.with_capabilities(methods=frozenset({PayMethod.WAP}))
    page = shopper_client.get(cashier_url(order), HTTP_USER_AGENT=DESKTOP).content.decode()
    assert offered(page) == [] and 'data-testid="no-options"' in page


def test_the_switch_shows_the_other_devices_ways(shopper_client, shopper):
    order = place_order(shopper=shopper)
    page = shopper_client.get(cashier_url(order), {"device": "mobile"}, HTTP_USER_AGENT=DESKTOP).content.decode()
    assert offered(page) == ["fake:wap"]


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


def test_choosing_the_website_goes_to_the_gateway(shopper_client, shopper):
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:page", "device": "desktop"})
    payment = Payment.objects.get()
    assert payment.method == "page"
    assert response.url == f"https://fake.invalid/pay/{payment.out_trade_no}"


def test_a_phone_gets_the_mobile_flavour(shopper_client, shopper):
    order = place_order(shopper=shopper)
    shopper_client.post(cashier_url(order), {"choice": "fake:wap", "device": "mobile"}, HTTP_USER_AGENT=PHONE)
    assert Payment.objects.get().method == "wap"


@pytest.mark.parametrize("choice,device", [("fake:wap", "desktop"), ("fake:qr", "mobile"), ("fake:redirect", "desktop")])
def test_a_way_not_offered_on_the_device_is_an_error_next_to_the_field(shopper_client, shopper, choice, device):
    order = place_order(shopper=shopper)
    response = shopper_client.post(cashier_url(order), {"choice": choice, "device": device})
    assert response.status_code == 400
    assert 'data-field="choice">This way to pay is not offered on this device' in response.content.decode()
    assert not Payment.objects.exists()


def test_the_cashier_shows_the_orders_items(shopper_client, shopper):
    order = place_order(shopper=shopper, quantity=2, price_minor=1999)
    summary = shopper_client.get(cashier_url(order)).content.decode().split('data-testid="order-summary"')[1]
    assert order.lines.get().name in summary and "× 2" in summary and "¥39.98" in summary


@pytest.mark.parametrize("status,says", [(OrderStatus.PAID, "This order has been paid"),
                                         (OrderStatus.REFUNDED, "This order has been paid"),
                                         (OrderStatus.CLOSED, "closed without being paid")])
def test_an_order_not_awaiting_payment_shows_its_state_and_no_amount_due(shopper_client, shopper, status, says):
    order = place_order(shopper=shopper)
    Order.objects.filter(pk=order.pk).update(status=status)
    page = shopper_client.get(cashier_url(order)).content.decode()
    assert says in page and 'data-testid="order-status"' in page
    assert "Amount due" not in page and 'data-testid="cashier-form"' not in page


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


def test_another_shoppers_order_cannot_be_paid_here(shopper_client, other_shopper, fake_gateway):
    # A valid choice goes straight to the locking read, which is filtered by shopper.
    order = place_order(shopper=other_shopper)
    response = shopper_client.post(cashier_url(order), {"choice": "fake:qr", "device": "desktop"})
    assert response.status_code == 404
    assert not Payment.objects.exists()
    assert fake_gateway.calls == []


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


def qr_page_of(client, payment) -> str:
    return client.get(reverse("payments:qr", kwargs={"out_trade_no": payment.out_trade_no})).content.decode()


def test_the_qr_page_names_the_app_counts_down_and_has_a_text_alternative(shopper_client, shopper, fake_gateway):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    page = qr_page_of(shopper_client, payment)
    assert "<h1>Scan with Fake Pay</h1>" in page
    assert f'aria-label="QR code to pay {payment.amount} with Fake Pay"' in page
    seconds = int(re.search(r'data-seconds-left="(\d+)"', page).group(1))
    assert 0 < seconds <= 30 * 60
    assert "The code expires at" in page
    assert f'data-testid="qr-text">fake://pay/{payment.out_trade_no}<' in page
    assert 'data-testid="sandbox-scan"' not in page  # not a sandbox code


def test_in_demo_mode_the_sandboxs_scan_page_is_linked(shopper_client, shopper, fake_gateway, settings):
    payment, _ = start_payment(order=place_order(shopper=shopper))
    scan = f"{settings.SANDBOX_URL}/alipay/scan/tok/"
    Payment.objects.filter(pk=payment.pk).update(qr_content=scan)
    settings.DEBUG = True
    assert f'<a href="{scan}" target="_blank"' in qr_page_of(shopper_client, payment)
    settings.DEBUG = False
    assert 'data-testid="sandbox-scan"' not in qr_page_of(shopper_client, payment)
