"""WeChat Pay API v2 refunds end to end: `/secapi/pay/refund` over mutual TLS, the result by
the encrypted refund notification (req_info) or by `refundquery`, and the crashes.

Orders are paid for real through the sandbox, refunds applied for and
approved through the shop's services; every test asks the sandbox what
money it really moved. The v2 refund answer never carries the result
(§10.3), so every refund is `processing` until a notification or a poll.
"""
from __future__ import annotations

import pytest
import requests
from celery.exceptions import Retry

from orders.models import Order, OrderStatus
from payments.gateways.wechatpay_v2 import WechatPayV2Gateway
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment
from refunds.models import Refund, RefundBalance, RefundStatus
from tests.conftest import sandbox_wechatpay_v2_options
from tests.e2e.refund_support import (
    apply,
    approve,
    paid_order,
    poll_until_settled,
    refund_notifications,
    sandbox_refund_notifications,
    succeeded_events,
    trade,
)
from tests.payments.gateways.fixtures.wechatpay_v2 import stub as unit_stub
from tests.polling import wait_for
from tests.sandbox.wechatpay_v2_client import EXACT_ACK, client_cert, fields_of, post, signed_body

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sandbox(shop_sandbox_v2):
    return shop_sandbox_v2


def order_status(order: Order) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order.pk)


def refund_status(refund: Refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


def balance(payment: Payment) -> tuple[int, int, int]:
    row = RefundBalance.objects.get(payment=payment)
    return row.paid_minor, row.reserved_minor, row.refunded_minor


class WorkerDied(Exception):
    """Stands for the worker process being killed (not a gateway error: no autoretry)."""


def test_full_refund_over_mutual_tls_settled_by_refundquery(shop, sandbox):
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")

    refund = approve(apply(order, 7980))

    # v2's answer only says the refund was taken.
    assert refund.status == RefundStatus.PROCESSING and refund.gateway_refund_id
    at_sandbox = sandbox.control("GET", f"wechatpay/refunds/{refund.out_refund_no}")
    assert (at_sandbox["amount_minor"], at_sandbox["requests"]) == (7980, 1)
    assert at_sandbox["notify_url"].endswith("/refunds/wechatpay/notify/")

    polls = poll_until_settled(refund)

    assert polls == 2  # the sandbox says PROCESSING to the first refundquery
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED and refund.refunded_at is not None
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"], at_sandbox["trade_state"]) == (
        1, 7980, "REFUND")
    assert at_sandbox["refunds"][0]["requests"] == 1  # polled, never sent again
    assert not refund_notifications(refund).exists()
    assert balance(payment) == (7980, 7980, 7980)


def test_partial_refunds_by_the_encrypted_notification_then_by_refundquery(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")
    first = approve(apply(order, 3000))
    assert first.status == RefundStatus.PROCESSING

    sandbox.control("POST", f"wechatpay/refunds/{first.out_refund_no}/settle", {"status": "SUCCESS"})

    wait_for(lambda: refund_status(first) == RefundStatus.SUCCEEDED, what="the refund notification")
    (notification,) = refund_notifications(first)
    assert (notification.outcome, notification.verified) == (NotificationOutcome.APPLIED, True)
    assert notification.dedupe_key == f"refund:{first.out_refund_no}:SUCCESS"
    assert b"<req_info>" in bytes(notification.body) and b"<sign>" not in bytes(notification.body)
    assert order_status(order) == OrderStatus.PARTIALLY_REFUNDED
    assert balance(payment) == (7980, 3000, 3000)
    (sent,) = sandbox.wait_for(lambda: [n for n in sandbox_refund_notifications(sandbox, payment)
                                        if n["status"] == "delivered"], what="the acknowledged delivery")
    assert sent["deliveries"][0]["body"] == EXACT_ACK.decode()

    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    rest = approve(apply(order, 4980))
    assert poll_until_settled(rest) == 1

    assert refund_status(rest) == RefundStatus.SUCCEEDED
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (2, 7980)
    assert balance(payment) == (7980, 7980, 7980)


def test_forged_refund_notifications_are_refused_and_the_genuine_one_applies_once(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "forge",
                                       "variants": ["undecryptable", "bad_padding", "tampered_amount",
                                                    "wrong_mchid"]})  # fmt: skip
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")
    refund = approve(apply(order, 3990))

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    every = GatewayNotification.objects.filter(kind=NotificationKind.REFUND)
    wait_for(lambda: every.exclude(outcome=NotificationOutcome.RECEIVED).count() >= 5, what="five notifications")
    rejected = [row.outcome_detail for row in every if row.outcome == NotificationOutcome.REJECTED]
    assert len(rejected) == 4, rejected
    # Another key and a broken padding both end in padding that does not check.
    assert sum("PKCS#7" in detail for detail in rejected) == 2
    assert any("amount 1, ours 3990" in detail for detail in rejected)
    assert any("mch_id" in detail for detail in rejected)
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert succeeded_events(refund) == 1
    assert balance(payment) == (7980, 3990, 3990)


def test_a_refund_without_the_client_certificate_is_refused_by_the_sandbox(shop, sandbox, settings):
    order, payment = paid_order(shop, sandbox, {"NOTE-A5": 1}, gateway="wechatpay")
    body = signed_body({"out_trade_no": payment.out_trade_no, "out_refund_no": f"{order.order_no}X1",
                        "total_fee": "1999", "refund_fee": "1999"})  # fmt: skip

    # Over HTTPS, validly signed, but without a certificate: not taken.
    refused = fields_of(post(sandbox, "/secapi/pay/refund", body).content)
    assert refused["return_code"] == "FAIL" and "证书" in refused["return_msg"]
    # A certificate that is not from the sandbox CA does not even finish the handshake.
    with pytest.raises(requests.exceptions.SSLError):
        post(sandbox, "/secapi/pay/refund", body, cert=(str(unit_stub.CLIENT_CERT), str(unit_stub.CLIENT_KEY)))
    assert trade(sandbox, payment)["refunds"] == []

    # The shop configured with that other certificate: nothing is refunded,
    # the refund waits (an unknown outcome is retried, never guessed).
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS, "wechatpay": sandbox_wechatpay_v2_options(
        sandbox, client_cert_path=str(unit_stub.CLIENT_CERT), client_key_path=str(unit_stub.CLIENT_KEY))}
    refund = apply(order, 1999)
    with pytest.raises(Retry):
        approve(refund)
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.PROCESSING
    assert "TLS failed" in refund.last_error
    assert trade(sandbox, payment)["refunds"] == []

    # With the merchant's own certificate the same refund number goes through, once.
    settings.GATEWAY_OPTIONS = {**settings.GATEWAY_OPTIONS, "wechatpay": sandbox_wechatpay_v2_options(sandbox)}
    cert_path, _key_path = client_cert(sandbox)
    assert settings.GATEWAY_OPTIONS["wechatpay"]["client_cert_path"] == cert_path
    assert poll_until_settled(refund) >= 1
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    (sandbox_refund,) = trade(sandbox, payment)["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["amount_minor"]) == (refund.out_refund_no, 1999)


def test_crash_answer_lost_after_refunding_retry_uses_same_number_and_refunds_once(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1}, gateway="wechatpay")
    refund = apply(order, 8800)
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund", "mode": "crash_after"})

    with pytest.raises(Retry) as retry:
        approve(refund)
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refunded_minor"] == 8800  # the money already moved

    retry.value.sig.apply()
    assert refund_status(refund) == RefundStatus.PROCESSING  # taken again; v2 never says more
    assert poll_until_settled(refund) == 1

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.submit_count == 2
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["requests"]) == (refund.out_refund_no, 2)
    assert succeeded_events(refund) == 1
    assert order_status(order) == OrderStatus.REFUNDED


def test_crash_worker_dies_after_the_refund_call_returned_janitor_settles_it_once(shop, sandbox, monkeypatch):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1}, gateway="wechatpay")
    refund = apply(order, 8800)
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    original = WechatPayV2Gateway.refund
    crashed: list[str] = []

    def refund_then_die(self, request):
        state = original(self, request)
        if not crashed:
            crashed.append(f"{request.out_refund_no}: {state.status}")
            raise WorkerDied(request.out_refund_no)
        return state

    monkeypatch.setattr(WechatPayV2Gateway, "refund", refund_then_die)

    with pytest.raises(WorkerDied):
        approve(refund)

    assert crashed == [f"{refund.out_refund_no}: processing"]
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refunded_minor"] == 8800

    assert poll_until_settled(refund) == 1

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED and refund.submit_count == 1
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    assert at_sandbox["refunds"][0]["requests"] == 1
    assert succeeded_events(refund) == 1
    assert order_status(order) == OrderStatus.REFUNDED
