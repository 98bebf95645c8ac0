"""UnionPay notifications at the shop's endpoints, against the real inbox and database.

Signed here with throwaway certificates (tests/payments/gateways/unionpay_support.py)
the shop is configured to trust. Every hostile or malformed notification is
refused with a 4xx, stored as rejected, and leaves the order alone; never a
500. Thirty copies of one notification at once make one transition.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import OrderEvent, OrderStatus
from payments.gateways import reset_gateway_cache
from payments.gateways.base import PayMethod
from payments.gateways.unionpay.formats import format_txn_time
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from payments.services import payment_apply_notification
from tests.concurrency import run_in_parallel
from tests.payments.factories import start_payment
from tests.payments.gateways.unionpay_support import (
    FILE_TRANSFER_URL,
    GATEWAY_BASE,
    MER_ID,
    TestChain,
    consume_fields,
    form_body,
    merchant_pfx,
    raw_notification,
)

NOTIFY = "/payments/unionpay/notify/"


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="module")
def trust_files(tmp_path_factory, chain):
    directory = tmp_path_factory.mktemp("unionpay-shop")
    bundle = directory / "chain.pem"
    bundle.write_bytes(chain.bundle_pem())
    return merchant_pfx(directory / "merchant.pfx"), bundle


@pytest.fixture(autouse=True)
def unionpay_configured(settings, trust_files):
    pfx, bundle = trust_files
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS, "unionpay": {
        "mer_id": MER_ID, "sign_cert_path": str(pfx), "sign_cert_password": "test-pfx-password",
        "verify_cert_path": str(bundle), "gateway_base": GATEWAY_BASE, "file_transfer_url": FILE_TRANSFER_URL,
    }}
    reset_gateway_cache()
    yield
    reset_gateway_cache()


def unionpay_payment(**order_kwargs) -> Payment:
    payment, _action = start_payment(gateway_code="unionpay", method=PayMethod.PAGE, **order_kwargs)
    return payment


def fields_for(payment: Payment, **changes: str) -> dict[str, str]:
    fields = consume_fields(payment.out_trade_no, format_txn_time(payment.requested_at),
                            amount=str(payment.amount_minor))
    return {**fields, **changes}


def post(client: Client, fields: dict[str, str] | None = None, *, body: bytes | None = None):
    return client.post(NOTIFY, data=form_body(fields or {}) if body is None else body,
                       content_type="application/x-www-form-urlencoded")


def untouched(payment: Payment) -> bool:
    payment.refresh_from_db()
    return (payment.status == PaymentStatus.PENDING
            and payment.order.__class__.objects.get(pk=payment.order_id).status == OrderStatus.PENDING_PAYMENT)


def hostile(chain: TestChain, payment: Payment) -> dict[str, dict[str, str] | bytes]:
    good = fields_for(payment)
    return {
        "forged signature": chain.forged(good),
        "certificate outside the chain": chain.impostor.sign(good),
        "wrong CN": chain.wrong_cn.sign(good),
        "expired certificate": chain.expired.sign(good),
        "tampered amount": {**chain.unionpay.sign(good), "txnAmt": "1"},
        "signed wrong amount": chain.unionpay.sign(fields_for(payment, txnAmt="1")),
        "wrong merchant": chain.unionpay.sign(fields_for(payment, merId="898110000009999")),
        "unknown order": chain.unionpay.sign(fields_for(payment, orderId="2024010100000000P01")),
        "stale: another transaction under the same number": chain.unionpay.sign(fields_for(
            payment, txnTime=format_txn_time(payment.requested_at - timedelta(days=1)))),
        "malformed body": b"orderId=%ZZ&&signature",
        "empty body": b"",
        "not a form": "订单".encode(),
    }


@pytest.mark.django_db
def test_hostile_and_malformed_notifications_are_refused_stored_and_change_nothing(client, chain):
    payment = unionpay_payment()
    cases = hostile(chain, payment)

    for label, message in cases.items():
        response = post(client, body=message) if isinstance(message, bytes) else post(client, message)
        assert response.status_code == 400, label
        assert response.content == b"fail", label
        assert untouched(payment), label

    stored = list(GatewayNotification.objects.order_by("pk"))
    assert len(stored) == len(cases)
    assert {row.outcome for row in stored} == {NotificationOutcome.REJECTED}
    # Validly signed lies (amount, order, txnTime) are stored as verified: staff can tell them apart.
    details = sorted(row.outcome_detail for row in stored if row.verified)
    assert len(details) == 3, details
    assert any("says 1 fen" in detail for detail in details)
    assert any("the notification names" in detail for detail in details)
    assert not OrderEvent.objects.filter(order_id=payment.order_id, to_status=OrderStatus.PAID).exists()


@pytest.mark.django_db
def test_the_real_one_after_the_lies_pays_the_order_once(client, chain):
    payment = unionpay_payment()
    for message in hostile(chain, payment).values():
        post(client, body=message) if isinstance(message, bytes) else post(client, message)

    response = post(client, chain.unionpay.sign(fields_for(payment)))
    again = post(client, chain.unionpay.sign(fields_for(payment)))

    assert (response.status_code, response.content) == (200, b"ok")
    assert again.status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.gateway_trade_no) == (PaymentStatus.SUCCEEDED, "782405011003040674028")
    assert payment.order.__class__.objects.get(pk=payment.order_id).status == OrderStatus.PAID
    outcomes = list(GatewayNotification.objects.filter(verified=True, outcome__in=[
        NotificationOutcome.APPLIED, NotificationOutcome.DUPLICATE]).values_list("outcome", flat=True))
    assert sorted(outcomes) == [NotificationOutcome.APPLIED, NotificationOutcome.DUPLICATE]


@pytest.mark.django_db
def test_a_payment_notification_posted_to_the_refund_endpoint_is_refused(client, chain):
    payment = unionpay_payment()
    response = client.post(reverse("refunds:notify", kwargs={"gateway": "unionpay"}),
                           data=form_body(chain.unionpay.sign(fields_for(payment))),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    notification = GatewayNotification.objects.get()
    assert (notification.kind, notification.outcome) == (NotificationKind.REFUND, NotificationOutcome.REJECTED)
    assert untouched(payment)


@pytest.mark.django_db(transaction=True)
def test_thirty_copies_at_once_make_one_transition(chain):
    """Thirty threads, each with its own connection, apply the same notification at once
    (tests/e2e/test_unionpay_payments.py sends thirty over HTTP from the sandbox)."""
    payment = unionpay_payment()
    raw = raw_notification(chain.unionpay.sign(fields_for(payment)))

    results = run_in_parallel(lambda index: payment_apply_notification(gateway_code="unionpay", raw=raw), 30)

    assert [(kind, answer.status, answer.body) for kind, answer in results] == [("ok", 200, b"ok")] * 30
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.events.filter(to_status=PaymentStatus.SUCCEEDED).count() == 1
    assert OrderEvent.objects.filter(order_id=payment.order_id, to_status=OrderStatus.PAID).count() == 1
    outcomes = list(GatewayNotification.objects.values_list("outcome", flat=True))
    assert (outcomes.count(NotificationOutcome.APPLIED), outcomes.count(NotificationOutcome.DUPLICATE)) == (1, 29)
