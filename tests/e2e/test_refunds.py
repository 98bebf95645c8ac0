"""Refunds end to end: the live shop and the sandbox process, real HTTP, real signatures.

Orders are paid for real through the sandbox (QR, paid from its control API
as the shopper's phone would), refunds are applied for and approved through
the shop's services or pages, and every test asks the sandbox what money it
really moved. Celery is eager in tests: an approval's gateway task runs
in-process when the approval commits.

How the crash cases are tested (the `test_crash_*` tests):
- the gateway refunds, then the answer is lost (sandbox fault `crash_after` on
  `alipay.refund` / `wechatpay.refund`): the task asks for a retry (eager
  Celery hands its `Retry` to the caller; the test runs the retry's
  signature as the worker would), which sends the SAME out_refund_no, and
  the sandbox moves the money once (`refund_count == 1`, `requests == 2`);
- the worker dies right after the gateway's refund call returned, before the
  result is recorded (the adapter's `refund` monkeypatched to raise after the
  real call): the broker's redelivery (Alipay) or the janitor's poll
  (WeChat Pay) finishes it, and the money still moved once.
"""
from __future__ import annotations

from datetime import timedelta

import lxml.html
import pytest
import requests
from celery.exceptions import Retry
from django.utils import timezone

from orders.models import Order, OrderStatus
from payments.gateways.alipay.gateway import AlipayGateway
from payments.gateways.wechatpay.gateway import WechatPayGateway
from payments.models import (
    GatewayNotification,
    NotificationKind,
    NotificationOutcome,
    Payment,
    PaymentStatus,
    RefundRequired,
)
from payments.tasks import payment_announce_refund_needed_task
from refunds.exceptions import InvalidRefundAmount, RefundNotAllowed
from refunds.models import Refund, RefundApproval, RefundBalance, RefundReason, RefundStatus
from refunds.services import refunds_create_automatic_pending, refunds_poll_processing
from refunds.tasks import refund_submit_task
from tests.concurrency import run_in_parallel
from tests.e2e.refund_support import (
    apply,
    approve,
    paid_order,
    pay_at_sandbox,
    poll_until_settled,
    refund_notifications,
    sandbox_refund_notifications,
    staff_client,
    start,
    start_attempt,
    succeeded_events,
    trade,
)
from tests.polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def order_status(order: Order) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order.pk)


def balance(payment: Payment) -> tuple[int, int, int]:
    row = RefundBalance.objects.get(payment=payment)
    return row.paid_minor, row.reserved_minor, row.refunded_minor


def refund_status(refund: Refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


class WorkerDied(Exception):
    """Stands for the worker process being killed (not a gateway error: no autoretry)."""


def die_after_the_real_call(monkeypatch, gateway_class) -> list[str]:
    """Make the adapter's `refund` do the real call, then kill the 'worker' once."""
    original = gateway_class.refund
    crashed: list[str] = []

    def refund_then_die(self, request):
        state = original(self, request)
        if not crashed:
            crashed.append(f"{request.out_refund_no}: {state.status}")
            raise WorkerDied(request.out_refund_no)
        return state

    monkeypatch.setattr(gateway_class, "refund", refund_then_die)
    return crashed


# -- Alipay: the answer carries the result ---------------------------------------


def test_alipay_full_refund_is_confirmed_by_the_synchronous_answer(shop, sandbox):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 8800)
    assert order_status(order) == OrderStatus.REFUND_PENDING
    assert trade(sandbox, payment)["refund_count"] == 0

    refund = approve(refund)

    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.gateway_status == "succeeded"
    assert refund.refunded_at is not None
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert at_sandbox["refund_count"] == 1
    assert at_sandbox["refunded_minor"] == 8800 == refund.amount_minor
    assert at_sandbox["trade_status"] == "TRADE_CLOSED"
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["requests"]) == (refund.out_refund_no, 1)
    assert balance(payment) == (8800, 8800, 8800)
    assert succeeded_events(refund) == 1
    # Alipay then notifies the payment's notify_url (TRADE_CLOSED with
    # refund_fee): the shop acknowledges it and nothing changes.
    (notification,) = sandbox.wait_for(
        lambda: [n for n in sandbox_refund_notifications(sandbox, payment) if n["status"] == "delivered"],
        what="the refund notification to be delivered")
    assert [(d["status_code"], d["body"]) for d in notification["deliveries"]] == [(200, "success")]
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.SUCCEEDED
    assert order_status(order) == OrderStatus.REFUNDED


def test_alipay_two_partial_refunds_then_nothing_is_left_to_apply_for(shop, sandbox):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})

    first = approve(apply(order, 2640))  # 30 %
    assert first.status == RefundStatus.SUCCEEDED
    assert order_status(order) == OrderStatus.PARTIALLY_REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 2640)
    assert at_sandbox["trade_status"] == "TRADE_SUCCESS"

    # More than is left is refused before it reaches anyone.
    with pytest.raises(InvalidRefundAmount):
        apply(order, 6161)
    second = approve(apply(order, 6160))  # the rest
    assert second.status == RefundStatus.SUCCEEDED
    assert second.out_refund_no != first.out_refund_no
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (2, 8800)
    assert sorted(r["amount_minor"] for r in at_sandbox["refunds"]) == [2640, 6160]
    assert balance(payment) == (8800, 8800, 8800)

    # A third application is refused: by the service and by the page.
    with pytest.raises(RefundNotAllowed):
        apply(order, 1)
    page = shop.get(f"/orders/{order.order_no}/refund/")
    assert page.url.endswith(f"/orders/{order.order_no}/")
    assert "Nothing on this order can be refunded." in page.text
    assert 'data-testid="apply-for-refund"' not in page.text
    assert Refund.objects.filter(order=order).count() == 2


# -- WeChat Pay: the result arrives by notification ----------------------------------


def test_wechatpay_full_refund_result_arrives_by_notification(shop, sandbox):
    # Queries never settle it here: only the control API's settle does.
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")

    refund = approve(apply(order, 7980))

    assert refund.status == RefundStatus.PROCESSING  # WeChat accepted it, nothing more yet
    assert refund.gateway_refund_id
    assert order_status(order) == OrderStatus.REFUND_PENDING
    at_sandbox = sandbox.control("GET", f"wechatpay/refunds/{refund.out_refund_no}")
    assert (at_sandbox["wire_status"], at_sandbox["amount_minor"]) == ("PROCESSING", 7980)
    assert at_sandbox["notify_url"].endswith("/refunds/wechatpay/notify/")

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    wait_for(lambda: refund_status(refund) == RefundStatus.SUCCEEDED, what="the REFUND.SUCCESS notification")
    assert order_status(order) == OrderStatus.REFUNDED
    (notification,) = refund_notifications(refund)
    assert (notification.outcome, notification.verified) == (NotificationOutcome.APPLIED, True)
    assert succeeded_events(refund) == 1
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 7980)
    assert at_sandbox["trade_state"] == "REFUND"
    assert balance(payment) == (7980, 7980, 7980)


def test_wechatpay_partial_refund_notification_sent_three_times_is_applied_once(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "duplicate", "copies": 3})
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")
    refund = approve(apply(order, 3990))
    assert refund.status == RefundStatus.PROCESSING

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    wait_for(lambda: refund_notifications(refund).exclude(outcome=NotificationOutcome.RECEIVED).count() == 3,
             what="three copies of the notification")
    outcomes = sorted(refund_notifications(refund).values_list("outcome", flat=True))
    assert outcomes == sorted([NotificationOutcome.APPLIED, NotificationOutcome.DUPLICATE,
                               NotificationOutcome.DUPLICATE])
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert succeeded_events(refund) == 1
    assert order_status(order) == OrderStatus.PARTIALLY_REFUNDED
    assert balance(payment) == (7980, 3990, 3990)
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 3990)
    # Every copy was acknowledged with a 2xx, so WeChat stops sending.
    (sent,) = sandbox.wait_for(
        lambda: [n for n in sandbox_refund_notifications(sandbox, payment) if len(n["deliveries"]) == 3],
        what="the delivery log")
    assert [d["status_code"] for d in sent["deliveries"]] == [200, 200, 200]


def test_forged_and_malformed_refund_notifications_are_refused_and_the_genuine_one_applies_once(
        shop, sandbox, live_server):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    sandbox.control("POST", "faults", {
        "target": "wechatpay.refund_notify", "mode": "forge",
        "variants": ["bad_signature", "unknown_serial", "stale_timestamp", "undecryptable", "tampered_amount",
                     "wrong_mchid"],
    })
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")
    refund = approve(apply(order, 3990))

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    every = GatewayNotification.objects.filter(kind=NotificationKind.REFUND)
    wait_for(lambda: every.exclude(outcome=NotificationOutcome.RECEIVED).count() >= 7,
             what="six forgeries and the genuine notification")
    outcomes = list(every.values_list("outcome", flat=True))
    assert outcomes.count(NotificationOutcome.REJECTED) == 6
    assert outcomes.count(NotificationOutcome.APPLIED) == 1
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert succeeded_events(refund) == 1
    assert balance(payment) == (7980, 3990, 3990)
    assert order_status(order) == OrderStatus.PARTIALLY_REFUNDED

    # Posted by hand: malformed bodies are refused with WeChat's error JSON, never a 500.
    notify = f"{live_server.url}/refunds/wechatpay/notify/"
    for body, headers in [
        (b"", {}),
        (b"{not json", {"Content-Type": "application/json"}),
        (b'{"id": "EV-1", "resource": {}}', {"Content-Type": "application/json", "Wechatpay-Serial": "X",
                                            "Wechatpay-Timestamp": "1", "Wechatpay-Nonce": "n",
                                            "Wechatpay-Signature": "c2ln"}),
    ]:
        response = requests.post(notify, data=body, headers=headers, timeout=10)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["code"] == "FAIL"
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert succeeded_events(refund) == 1


def test_thirty_parallel_copies_of_a_refund_notification_settle_the_refund_once(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "duplicate", "copies": 30})
    order, payment = paid_order(shop, sandbox, {"CUP-WHITE": 2}, gateway="wechatpay")
    refund = approve(apply(order, 7980))

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})

    wait_for(lambda: refund_notifications(refund).exclude(outcome=NotificationOutcome.RECEIVED).count() == 30,
             timeout=30, what="thirty copies")
    outcomes = list(refund_notifications(refund).values_list("outcome", flat=True))
    assert (outcomes.count(NotificationOutcome.APPLIED), outcomes.count(NotificationOutcome.DUPLICATE)) == (1, 29)
    assert succeeded_events(refund) == 1
    assert balance(payment) == (7980, 7980, 7980)
    assert order_status(order) == OrderStatus.REFUNDED
    (sent,) = sandbox.wait_for(
        lambda: [n for n in sandbox_refund_notifications(sandbox, payment) if len(n["deliveries"]) == 30],
        what="the delivery log")
    assert {d["status_code"] for d in sent["deliveries"]} == {200}


# -- Polling: the notification is lost, the janitor asks ------------------------------


@pytest.mark.parametrize("kept_processing_by", ["setting", "fault"])
def test_wechatpay_refund_whose_notification_is_lost_is_settled_by_polling(shop, sandbox, kept_processing_by):
    queries = 3 if kept_processing_by == "setting" else 2
    if kept_processing_by == "setting":
        sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": queries}})
    else:
        sandbox.control("POST", "faults", {"target": "wechatpay.refund", "mode": "processing", "queries": queries})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    order, payment = paid_order(shop, sandbox, {"NOTE-A5": 1}, gateway="wechatpay")
    refund = approve(apply(order, 1999))
    assert refund.status == RefundStatus.PROCESSING
    # Nothing is due before the backoff ran out.
    assert refunds_poll_processing(now=timezone.now()) == 0

    polls = poll_until_settled(refund)

    # The sandbox answers PROCESSING to `queries` refund queries and settles
    # the refund at the next one: one poll per query, none wasted or skipped.
    assert polls == queries + 1
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.poll_count == queries + 1
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 1999)
    assert at_sandbox["refunds"][0]["requests"] == 1  # polled, never sent again
    # The notification really was lost: the shop never heard of the refund but by asking.
    sandbox.wait_for(lambda: [n["status"] for n in sandbox_refund_notifications(sandbox, payment)] == ["dropped"],
                     what="the dropped notification")
    assert not refund_notifications(refund).exists()
    # Settled: the janitor leaves it alone from now on.
    assert refunds_poll_processing(now=timezone.now() + timedelta(days=30)) == 0


def test_alipay_refund_left_processing_is_settled_by_polling(shop, sandbox):
    # Accepted with fund_change=N and unsettled for two refund queries: the
    # adapter's own query right after the refund call is the first.
    sandbox.control("POST", "faults", {"target": "alipay.refund", "mode": "processing", "queries": 2})
    order, payment = paid_order(shop, sandbox, {"NOTE-A5": 1})
    refund = approve(apply(order, 1999))
    assert refund.status == RefundStatus.PROCESSING
    assert order_status(order) == OrderStatus.REFUND_PENDING
    assert (trade(sandbox, payment)["refund_count"], trade(sandbox, payment)["refunded_minor"]) == (0, 0)

    polls = poll_until_settled(refund)

    # The poll's query finds no settled refund, so the shop sends the refund
    # again under the same number (a replay at Alipay) and its query settles it.
    assert polls == 1
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.submit_count == 2
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 1999)
    assert at_sandbox["refunds"][0]["requests"] == 2
    assert succeeded_events(refund) == 1


# -- ABNORMAL and CLOSED reach staff ---------------------------------------------------


def test_wechatpay_abnormal_refund_is_flagged_for_staff_who_settle_it(shop, sandbox, live_server):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    order, payment = paid_order(shop, sandbox, {"NOTE-A5": 1}, gateway="wechatpay")
    refund = approve(apply(order, 1999))

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "ABNORMAL"})

    wait_for(lambda: refund_status(refund) == RefundStatus.ABNORMAL, what="the REFUND.ABNORMAL notification")
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.next_poll_at is None
    # Not left to the poller: it is staff's now.
    assert refunds_poll_processing(now=timezone.now() + timedelta(days=30)) == 0
    assert order_status(order) == OrderStatus.REFUND_PENDING
    assert balance(payment) == (1999, 1999, 0)  # the amount stays held

    staff = staff_client(live_server.url)
    queue = staff.get("/admin/refunds/refund/?attention=yes")
    assert queue.status_code == 200
    assert refund.out_refund_no in queue.text
    detail = staff.get(f"/admin/refunds/refund/{refund.pk}/change/")
    assert "Needs manual handling" in detail.text
    assert 'value="settle_succeeded"' in detail.text

    # Staff returned the money another way and record it.
    answer = staff.post(f"/admin/refunds/refund/{refund.pk}/decide/",
                        {"decision": "settle_succeeded", "note": "paid back by bank transfer", "confirm": "yes"})
    assert answer.status_code == 200
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert order_status(order) == OrderStatus.REFUNDED
    assert refund.out_refund_no not in staff.get("/admin/refunds/refund/?attention=yes").text


def test_wechatpay_closed_refund_fails_is_shown_to_staff_and_their_retry_takes_a_new_number(shop, sandbox, live_server):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 10}})
    order, payment = paid_order(shop, sandbox, {"NOTE-A5": 1}, gateway="wechatpay")
    refund = approve(apply(order, 1999))

    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "CLOSED"})

    wait_for(lambda: refund_status(refund) == RefundStatus.FAILED, what="the REFUND.CLOSED notification")
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.last_error
    assert refund.next_poll_at is None
    assert refunds_poll_processing(now=timezone.now() + timedelta(days=30)) == 0
    assert balance(payment) == (1999, 0, 0)
    assert order_status(order) == OrderStatus.PAID
    assert trade(sandbox, payment)["refunded_minor"] == 0

    staff = staff_client(live_server.url)
    assert refund.out_refund_no in staff.get("/admin/refunds/refund/?status__exact=failed").text
    detail = staff.get(f"/admin/refunds/refund/{refund.pk}/change/")
    assert 'data-testid="review-status">Failed<' in detail.text
    assert 'class="errornote"' in detail.text
    assert 'data-testid="retry"' in detail.text
    # The shopper sees it failed and may apply again.
    page = shop.get(f"/orders/{order.order_no}/")
    assert 'data-testid="apply-for-refund"' in page.text
    assert "status-failed" in page.text

    # Staff retry. WeChat Pay ended that number for good (a replay answers
    # the closed refund again), so the retry must go out under a new one.
    closed_no = refund.out_refund_no
    staff.post(f"/admin/refunds/refund/{refund.pk}/decide/", {"decision": "retry", "note": "", "confirm": "yes"})
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.PROCESSING
    assert refund.out_refund_no != closed_no
    assert refund.events.filter(detail__closed_out_refund_no=closed_no).exists()
    sandbox.control("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})
    wait_for(lambda: refund_status(refund) == RefundStatus.SUCCEEDED, what="the retried refund's notification")
    assert order_status(order) == OrderStatus.REFUNDED
    at_sandbox = trade(sandbox, payment)
    assert at_sandbox["refunded_minor"] == 1999
    assert sorted((r["out_refund_no"], r["wire_status"]) for r in at_sandbox["refunds"]) == [
        (closed_no, "CLOSED"), (refund.out_refund_no, "SUCCESS")]


# -- Crash safety ---------------------------------------------------------------------


def test_crash_alipay_answer_lost_after_refunding_retry_uses_same_number_and_refunds_once(shop, sandbox):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 8800)
    sandbox.control("POST", "faults", {"target": "alipay.refund", "mode": "crash_after"})

    # First call: the sandbox refunds and drops the connection. The task asks
    # to be retried (eager Celery in tests hands the Retry to the caller).
    with pytest.raises(Retry) as retry:
        approve(refund)
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refund_count"] == 1  # the money already moved
    assert retry.value.sig.args == (refund.pk,)

    retry.value.sig.apply()  # the worker runs the retry when its countdown ends

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.submit_count == 2
    assert any("unavailable" in e.reason for e in refund.events.all())
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["requests"]) == (refund.out_refund_no, 2)
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == 1
    assert succeeded_events(refund) == 1
    assert balance(payment) == (8800, 8800, 8800)
    assert order_status(order) == OrderStatus.REFUNDED


def test_crash_wechatpay_answer_lost_after_refunding_retry_uses_same_number_and_refunds_once(shop, sandbox):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1}, gateway="wechatpay")
    refund = apply(order, 8800)
    # Only the retry's answer may tell the shop: no notification.
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    sandbox.control("POST", "faults", {"target": "wechatpay.refund", "mode": "crash_after"})

    with pytest.raises(Retry) as retry:
        approve(refund)
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refunded_minor"] == 8800  # the money already moved

    retry.value.sig.apply()

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.submit_count == 2
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["requests"]) == (refund.out_refund_no, 2)
    assert succeeded_events(refund) == 1
    assert order_status(order) == OrderStatus.REFUNDED


def test_crash_worker_dies_after_alipay_refund_returned_redelivery_refunds_once(shop, sandbox, monkeypatch):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 8800)
    crashed = die_after_the_real_call(monkeypatch, AlipayGateway)

    with pytest.raises(WorkerDied):
        approve(refund)

    # The gateway refunded; the shop recorded nothing of the answer.
    assert crashed == [f"{refund.out_refund_no}: succeeded"]
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refund_count"] == 1

    # acks_late + reject_on_worker_lost: the broker hands the task out again.
    refund_submit_task.delay(refund.pk)

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    (sandbox_refund,) = at_sandbox["refunds"]
    assert (sandbox_refund["out_refund_no"], sandbox_refund["requests"]) == (refund.out_refund_no, 2)
    assert succeeded_events(refund) == 1
    assert balance(payment) == (8800, 8800, 8800)
    assert order_status(order) == OrderStatus.REFUNDED


def test_crash_worker_dies_after_wechatpay_refund_returned_janitor_settles_it_once(shop, sandbox, monkeypatch):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1}, gateway="wechatpay")
    refund = apply(order, 8800)
    sandbox.control("POST", "faults", {"target": "wechatpay.refund_notify", "mode": "drop"})
    crashed = die_after_the_real_call(monkeypatch, WechatPayGateway)

    with pytest.raises(WorkerDied):
        approve(refund)

    assert crashed == [f"{refund.out_refund_no}: succeeded"]
    assert refund_status(refund) == RefundStatus.PROCESSING
    assert trade(sandbox, payment)["refunded_minor"] == 8800

    assert poll_until_settled(refund) == 1

    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.submit_count == 1
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    assert at_sandbox["refunds"][0]["requests"] == 1
    assert succeeded_events(refund) == 1
    assert order_status(order) == OrderStatus.REFUNDED


# -- Duplicate payments are given back without review ---------------------------------


def two_open_attempts(shop) -> tuple[Order, Payment, Payment]:
    """A WeChat QR attempt, then an Alipay QR one for the same order.

    WeChat refuses a close in the first 5 minutes, so the newer attempt
    leaves the older one open (its close is deferred): both can be paid.
    """
    order, wechat = start(shop, {"NOTE-A5": 1}, "wechatpay:qr")
    alipay = start_attempt(shop, order, "alipay:qr")
    assert Payment.objects.get(pk=wechat.pk).status == PaymentStatus.PENDING
    return order, wechat, alipay


def test_duplicate_wechatpay_payment_is_refunded_automatically_without_review(shop, sandbox, live_server):
    sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    order, wechat, alipay = two_open_attempts(shop)
    pay_at_sandbox(sandbox, alipay)
    assert order_status(order) == OrderStatus.PAID

    wechat = pay_at_sandbox(sandbox, wechat)  # the task chain starts the refund

    assert (wechat.status, wechat.refund_required) == (PaymentStatus.SUCCEEDED, RefundRequired.DUPLICATE)
    refund = wait_for(lambda: Refund.objects.filter(payment=wechat, status=RefundStatus.SUCCEEDED).first(),
                      what="the automatic refund")
    assert refund.automatic and refund.reason == RefundReason.DUPLICATE_PAYMENT
    assert refund.amount_minor == wechat.amount_minor == 1999
    assert refund.reviewed_by is None and not RefundApproval.objects.filter(refund=refund).exists()
    assert Refund.objects.filter(order=order).count() == 1
    assert trade(sandbox, wechat)["refund_count"] == 1
    assert trade(sandbox, wechat)["refunded_minor"] == 1999
    assert trade(sandbox, alipay)["refund_count"] == 0
    assert trade(sandbox, alipay)["refunded_minor"] == 0
    assert order_status(order) == OrderStatus.PAID  # the order keeps its accepted payment
    assert refunds_create_automatic_pending() == 0  # nothing was missed

    # Visible, with its reason, to the shopper and to staff.
    page = lxml.html.fromstring(shop.get(f"/orders/{order.order_no}/").text)
    (row,) = page.xpath(f"//*[@data-testid='refund-{refund.out_refund_no}']")
    assert "Duplicate payment" in row.text_content()
    assert row.xpath(".//*[@data-testid='refund-status']")[0].text_content() == "Refunded"
    staff = staff_client(live_server.url)
    assert refund.out_refund_no in staff.get("/admin/refunds/refund/?automatic__exact=1").text
    review = lxml.html.fromstring(staff.get(f"/admin/refunds/refund/{refund.pk}/change/").text)
    (section,) = review.xpath("//*[@data-testid='refund-review']")
    assert "Automatic refund: the shop gives back a payment the order could not take." in section.text_content()
    (reason,) = section.xpath(".//*[@data-testid='review-reason']")
    assert reason.xpath("string(.//strong)") == "Duplicate payment"
    assert reason.text_content().endswith("automatic: Duplicate payment")


def test_duplicate_alipay_payment_whose_task_was_lost_is_refunded_by_the_sweep(shop, sandbox, monkeypatch):
    # The outbox task that announces payment_needs_refund is lost at the broker.
    monkeypatch.setattr(payment_announce_refund_needed_task, "apply_async", lambda *args, **kwargs: None)
    order, wechat, alipay = two_open_attempts(shop)
    pay_at_sandbox(sandbox, wechat)
    alipay = pay_at_sandbox(sandbox, alipay)
    assert alipay.refund_required == RefundRequired.DUPLICATE
    assert not Refund.objects.exists()

    assert refunds_create_automatic_pending() == 1

    refund = Refund.objects.get()
    assert (refund.payment_id, refund.status, refund.automatic) == (alipay.pk, RefundStatus.SUCCEEDED, True)
    assert trade(sandbox, alipay)["refund_count"] == 1
    assert trade(sandbox, alipay)["refunded_minor"] == 1999
    assert trade(sandbox, wechat)["refund_count"] == 0
    assert order_status(order) == OrderStatus.PAID
    assert refunds_create_automatic_pending() == 0


# -- Concurrency over real HTTP ------------------------------------------------------------


def test_the_same_refund_approved_twice_in_parallel_over_http_refunds_once(shop, sandbox, live_server):
    order, payment = paid_order(shop, sandbox, {"TEA-LJ-250": 1})
    refund = apply(order, 8800)
    reviewers = [staff_client(live_server.url, "service"), staff_client(live_server.url, "service2")]

    answers = run_in_parallel(
        lambda i: reviewers[i].post(f"/admin/refunds/refund/{refund.pk}/decide/",
                                    {"decision": "approve", "note": f"ok {i}", "confirm": "yes"}), 2)

    assert [kind for kind, _ in answers] == ["ok", "ok"], answers
    assert [answer.status_code for _, answer in answers] == [200, 200]
    assert refund_status(refund) == RefundStatus.SUCCEEDED
    assert RefundApproval.objects.filter(refund=refund).count() == 1
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 8800)
    assert at_sandbox["refunds"][0]["requests"] == 1
    assert succeeded_events(refund) == 1
    assert balance(payment) == (8800, 8800, 8800)
