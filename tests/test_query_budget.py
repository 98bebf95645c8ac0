"""What one notification, checkout and payment start cost the database, pinned.

Each money path is counted through the real view with Django's test client:
every SQL statement Django sends and every commit (tests/query_counting.py).
The numbers are exact on purpose: a change that adds a round trip must fail
here and say so, and whoever makes it updates the budget knowingly (and the
README's "Performance" section with it). The pages are pinned another way:
the same number of queries for 10 rows as for 50, on every admin list and on
the shopper's order list.

Follow-up tasks are handed to the broker after the commit by the outbox;
here the hand-over is recorded instead (a worker's work is not the request's).
"""
import time
import urllib.parse
import uuid

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import Order, OrderStatus
from payments.gateways import get_gateway, reset_gateway_cache
from payments.gateways.base import PayMethod
from payments.models import GatewayNotification, NotificationOutcome, Payment, PaymentStatus
from shop import outbox
from shop.cart import SESSION_KEY
from shop.models import OutboxMessage, Sku
from tests.orders.factories import place_order
from tests.payments.factories import start_payment
from tests.payments.gateways.alipay_support import FIXTURES as ALIPAY_FIXTURES
from tests.payments.gateways.alipay_support import callback_signature
from tests.payments.gateways.fixtures.wechatpay import stub as wechat
from tests.query_counting import RoundTrips
from tests.refunds.factories import apply_for_refund, paid_order
from tests.shop.factories import SkuFactory, UserFactory

# Statements and commits of each path. Change only with a reason.
# A notification's common case is one statement (notification_statement.py);
# a duplicate is that statement, which writes nothing, then the inbox's path.
NOTIFICATION = (1, 1)
DUPLICATE_NOTIFICATION = (4, 2)
CHECKOUT = (8, 2)
PAYMENT_START = (8, 2)
REFUND_NOTIFICATION = (19, 1)


@pytest.fixture
def handed_to_broker(monkeypatch):
    """The outbox's deliveries after the commit, recorded instead of published."""
    delivered = []
    monkeypatch.setattr(outbox, "_deliver", delivered.append)
    return delivered


@pytest.fixture
def real_gateways(settings):
    """Alipay and WeChat Pay v3 with test keys: the notifications below are signed for them."""
    settings.PAYMENT_GATEWAYS = ["alipay", "wechatpay"]
    settings.GATEWAY_OPTIONS = {
        **settings.GATEWAY_OPTIONS,
        # The published test app key pair plays both sides: Alipay's public
        # key is the app's, so the test signs as Alipay with the app's key.
        "alipay": {**settings.GATEWAY_OPTIONS["alipay"],
                   "alipay_public_key_path": str(ALIPAY_FIXTURES / "app-public-key.pem"),
                   "app_private_key_path": str(ALIPAY_FIXTURES / "app-private-key.pem")},
        "wechatpay": wechat.options(),
    }
    reset_gateway_cache()
    yield settings.GATEWAY_OPTIONS
    reset_gateway_cache()


def alipay_notification_body(payment: Payment, options: dict) -> bytes:
    fields = {
        "notify_time": "2026-12-01 10:00:00", "notify_type": "trade_status_sync", "notify_id": uuid.uuid4().hex,
        "app_id": options["alipay"]["app_id"], "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
        "trade_no": f"2026120122001{uuid.uuid4().int % 10**12:012d}", "out_trade_no": payment.out_trade_no,
        "seller_id": options["alipay"]["seller_id"],
        "total_amount": f"{payment.amount_minor // 100}.{payment.amount_minor % 100:02d}",
        "trade_status": "TRADE_SUCCESS", "gmt_payment": "2026-12-01 09:59:59",
    }
    key = serialization.load_pem_private_key((ALIPAY_FIXTURES / "app-private-key.pem").read_bytes(), password=None)
    fields["sign"] = callback_signature(fields, key)
    return urllib.parse.urlencode(fields).encode()


def post_alipay(client, body: bytes):
    return client.post(reverse("payments:notify", kwargs={"gateway": "alipay"}), body,
                       content_type="application/x-www-form-urlencoded")


def wechatpay_notification(payment: Payment):
    """A TRANSACTION.SUCCESS notification as WeChat Pay signs and encrypts it, sent now."""
    plain = wechat.transaction(out_trade_no=payment.out_trade_no,
                               amount={"total": payment.amount_minor, "payer_total": payment.amount_minor,
                                       "currency": "CNY", "payer_currency": "CNY"})
    body = wechat.json_bytes(wechat.envelope(wechat.encrypt_resource(plain), notification_id=uuid.uuid4().hex))
    return body, wechat.signed_headers(body, timestamp=str(int(time.time())))


def paid(payment: Payment) -> bool:
    payment = Payment.objects.select_related("order").get(pk=payment.pk)
    return payment.status == PaymentStatus.SUCCEEDED and payment.order.status == OrderStatus.PAID


@pytest.mark.django_db(transaction=True)
class TestNotification:
    def test_an_alipay_notification_is_one_transaction(self, client, real_gateways, handed_to_broker):
        payment, _ = start_payment(gateway_code="alipay", method=PayMethod.PAGE)
        body = alipay_notification_body(payment, real_gateways)

        with RoundTrips() as trips:
            response = post_alipay(client, body)

        assert (response.status_code, response.content) == (200, b"success")
        assert paid(payment)
        assert (len(trips.statements), trips.commits) == NOTIFICATION, trips.report()
        assert [delivery.task for delivery in handed_to_broker] == ["payments.tasks.payment_send_confirmation_task"]
        # Stored with its outcome and its payment by the claim itself, never updated after.
        assert not [statement for statement in trips.statements if "UPDATE \"payments_gatewaynotification" in statement]
        stored = GatewayNotification.objects.get()
        assert (stored.outcome, stored.outcome_detail, stored.payment_id, stored.verified) == (
            NotificationOutcome.APPLIED, "payment succeeded, order paid", payment.pk, True)
        assert stored.processed_at is not None

    def test_a_wechatpay_notification_is_one_transaction(self, client, real_gateways, handed_to_broker):
        order = place_order()
        payment = Payment.objects.create(
            order=order, attempt_no=1, gateway="wechatpay", method=PayMethod.QR, out_trade_no=f"{order.order_no}P01",
            amount_minor=order.total_minor, currency=order.currency, status=PaymentStatus.PENDING,
            expires_at=order.expires_at, requested_at=order.created_at.replace(microsecond=0))
        body, headers = wechatpay_notification(payment)

        with RoundTrips() as trips:
            response = client.post(reverse("payments:notify", kwargs={"gateway": "wechatpay"}), body,
                                   content_type="application/json",
                                   **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})

        assert response.status_code in (200, 204), response.content
        assert paid(payment)
        assert (len(trips.statements), trips.commits) == NOTIFICATION, trips.report()

    def test_a_duplicate_is_stored_and_acknowledged_in_one_transaction(self, client, real_gateways,
                                                                       handed_to_broker):
        payment, _ = start_payment(gateway_code="alipay", method=PayMethod.PAGE)
        body = alipay_notification_body(payment, real_gateways)
        post_alipay(client, body)

        with RoundTrips() as trips:
            response = post_alipay(client, body)

        assert response.content == b"success"
        assert (len(trips.statements), trips.commits) == DUPLICATE_NOTIFICATION, trips.report()
        first, second = GatewayNotification.objects.order_by("pk")
        assert (second.outcome, second.duplicate_of_id, second.dedupe_key) == (
            NotificationOutcome.DUPLICATE, first.pk, None)

    def test_a_notification_that_fails_to_apply_is_still_stored(self, client, real_gateways, handed_to_broker,
                                                                monkeypatch):
        """One transaction does not cost the raw-first inbox: the failure is stored, unclaimed.

        The one statement fails (a database error: it is atomic and writes
        nothing), then the inbox's own path fails while applying.
        """
        from payments.services import inbox, notification_statement

        def broken(*args, **kwargs):
            raise RuntimeError("the database went away")

        payment, _ = start_payment(gateway_code="alipay", method=PayMethod.PAGE)
        body = alipay_notification_body(payment, real_gateways)

        with monkeypatch.context() as patched:
            patched.setattr(inbox, "trade_state_apply", broken)
            patched.setattr(notification_statement, "_statement",
                            lambda: ("INSERT INTO payments_payment (id) VALUES (NULL)", {}))
            response = post_alipay(client, body)

        assert response.status_code == 503
        stored = GatewayNotification.objects.get()
        assert (stored.outcome, stored.dedupe_key, bytes(stored.body)) == (NotificationOutcome.FAILED, None, body)
        assert not OutboxMessage.objects.exists() and handed_to_broker == []
        assert not paid(payment)
        # The provider's re-send claims the key the failure never kept.
        assert post_alipay(client, body).content == b"success"
        assert paid(payment)


@pytest.mark.django_db(transaction=True)
def test_a_refund_notification_is_one_transaction(client, settings, monkeypatch):
    """The same inbox serves refunds: stored, claimed, the refund, balance and order moved, once."""
    from payments.gateways.base import GatewayRefundStatus
    from refunds.models import Refund, RefundStatus
    from refunds.services import refund_approve
    from tests.refunds.factories import reviewer

    settings.PAYMENT_GATEWAYS = ["fake"]
    reset_gateway_cache()
    fake_gateway = get_gateway("fake")  # after the settings change, which resets the adapters
    fake_gateway.refund_outcome = GatewayRefundStatus.PROCESSING
    order, _payment = paid_order()
    refund = apply_for_refund(order, 4000)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.PROCESSING
    raw = fake_gateway.refund_notification(refund.out_refund_no)
    monkeypatch.setattr(outbox, "_deliver", lambda delivery: None)

    with RoundTrips() as trips:
        response = client.post(reverse("refunds:notify", kwargs={"gateway": "fake"}), raw.body,
                               content_type="application/json", HTTP_X_FAKE_SIGNATURE=raw.header("X-Fake-Signature"))

    assert response.status_code == 200
    assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PARTIALLY_REFUNDED
    assert (len(trips.statements), trips.commits) == REFUND_NOTIFICATION, trips.report()


CHECKOUT_ADDRESS = {
    "consignee_name": "Li Lei", "consignee_phone": "13800138000", "address_province": "Shanghai",
    "address_city": "Shanghai", "address_district": "Huangpu", "address_street": "1 Nanjing Road East",
    "address_postal_code": "200001",
}


@pytest.mark.django_db(transaction=True)
def test_a_checkout_is_one_transaction_and_the_session(client):
    shopper = UserFactory()
    client.force_login(shopper)
    tea, cup = SkuFactory(stock=50), SkuFactory(stock=50)
    session = client.session
    session[SESSION_KEY] = {tea.code: 2, cup.code: 1}
    session.save()

    with RoundTrips() as trips:
        response = client.post(reverse("orders:checkout"), {**CHECKOUT_ADDRESS, "checkout_token": str(uuid.uuid4())})

    assert response.status_code == 302
    order = Order.objects.get()
    assert order.lines.count() == 2
    assert list(Sku.objects.filter(pk__in=[tea.pk, cup.pk]).order_by("pk").values_list("stock", flat=True)) == [48, 49]
    # The order's transaction, and Django's session save (the cart emptied).
    assert (len(trips.statements), trips.commits) == CHECKOUT, trips.report()


@pytest.mark.django_db(transaction=True)
def test_a_payment_start_is_two_short_transactions_around_the_gateway_call(client, real_gateways, handed_to_broker):
    order = place_order()
    client.force_login(order.shopper)
    with responses.RequestsMock() as gateway:
        wechat.WechatStub(gateway).reply("POST", "/v3/pay/transactions/native",
                                         {"code_url": "weixin://wxpay/bizpayurl?pr=budget"},
                                         timestamp=str(int(time.time())))
        with RoundTrips() as trips:
            response = client.post(reverse("payments:cashier", kwargs={"order_no": order.order_no}),
                                   {"choice": "wechatpay:qr", "device": "desktop"})

    assert response.status_code == 302
    assert Payment.objects.get().status == PaymentStatus.PENDING
    # The attempt committed before the gateway hears of it, its answer after.
    assert (len(trips.statements), trips.commits) == PAYMENT_START, trips.report()


# -- pages: queries that do not grow with the rows shown ------------------------------


def refunded_orders(count: int, shopper=None) -> None:
    """Paid orders (payment, notification), each with a refund application."""
    for _ in range(count):
        order, _payment = paid_order(shopper=shopper)
        apply_for_refund(order)


def queries_of(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


ADMIN_LISTS = ["admin:refunds_refund_changelist", "admin:payments_payment_changelist",
               "admin:orders_order_changelist", "admin:payments_gatewaynotification_changelist"]


@pytest.mark.django_db
def test_admin_lists_run_the_same_queries_for_10_rows_as_for_50(client, fake_gateway, settings):
    settings.PAYMENT_GATEWAYS = ["fake"]
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    refunded_orders(10)
    with_10 = {name: queries_of(client, reverse(name)) for name in ADMIN_LISTS}
    refunded_orders(40)
    with_50 = {name: queries_of(client, reverse(name)) for name in ADMIN_LISTS}
    assert with_50 == with_10
    assert Order.objects.count() == 50


@pytest.mark.django_db
def test_my_orders_run_the_same_queries_for_10_orders_as_for_50_and_page_them(shopper_client, shopper,
                                                                             fake_gateway, settings):
    from orders.views import ORDERS_PER_PAGE

    settings.PAYMENT_GATEWAYS = ["fake"]
    for _ in range(10):
        place_order(shopper=shopper)
    with_10 = queries_of(shopper_client, reverse("orders:list"))
    for _ in range(40):
        place_order(shopper=shopper)
    with_50 = queries_of(shopper_client, reverse("orders:list"))
    assert with_50 == with_10

    page = shopper_client.get(reverse("orders:list")).content.decode()
    assert page.count('data-label="Order number"') == ORDERS_PER_PAGE
    assert "Page 1 of 3" in page and '?page=2' in page
    last = shopper_client.get(reverse("orders:list"), {"page": 3}).content.decode()
    assert last.count('data-label="Order number"') == 50 - 2 * ORDERS_PER_PAGE
    assert "?page=2" in last
    chinese = shopper_client.get(reverse("orders:list"), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "第 1 页，共 3 页" in chinese and "下一页" in chinese
