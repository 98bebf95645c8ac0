"""The sandbox's UnionPay back notifications (re-sends, faults, forgeries the
shop's adapter must refuse) and refunds (asynchronous, duplicate numbers,
failures, crashes), checked with the shop's adapter and our own signer."""
from __future__ import annotations

from dataclasses import replace

import pytest

from payments.exceptions import GatewayRejected, GatewayUnavailable, InvalidNotification
from payments.gateways.base import GatewayRefundStatus, RefundReference, TradeStatus
from tests.sandbox.unionpay_client import (
    make_gateway,
    new_order_id,
    pay,
    raw_notification,
    refund_request,
    unionpay_receiver,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-unionpay")]


def refund_no(order_id: str, n: int = 1) -> str:
    return order_id.replace("P01", f"R{n:02d}")


def deliveries(sandbox, order_id: str, kind: str = "payment") -> list[dict]:
    notifications = sandbox.control("GET", f"notifications?out_trade_no={order_id}&kind={kind}")["notifications"]
    return [delivery for notification in notifications for delivery in notification["deliveries"]]


# -- back notifications (B7) ---------------------------------------------------------


def test_an_unacknowledged_notification_is_sent_again_until_http_200(sandbox, unionpay):
    answers = iter([(500, b"busy"), (404, b"?"), (200, b"anything")])
    merchant = unionpay_receiver(answer=lambda request, earlier: next(answers)).start()
    try:
        order_id = new_order_id()
        pay(sandbox, unionpay, merchant, order_id)
        merchant.wait_for_notifications(order_id, 3)
        logged = sandbox.wait_for(lambda: len(deliveries(sandbox, order_id)) == 3 and deliveries(sandbox, order_id))
    finally:
        merchant.stop()
    assert [(d["status_code"], d["acknowledged"]) for d in logged] == [(500, False), (404, False), (200, True)]
    (notification,) = sandbox.control("GET", f"notifications?out_trade_no={order_id}")["notifications"]
    assert notification["status"] == "delivered"
    assert sandbox.control("GET", "settings")["notify_schedules"]["unionpay"] == [60, 120, 240, 480, 960, 1920]


def test_drop_and_duplicate(sandbox, unionpay, up_merchant):
    dropped = new_order_id()
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "drop", "out_trade_no": dropped})
    pay(sandbox, unionpay, up_merchant, dropped)
    assert sandbox.wait_for(lambda: sandbox.control("GET", f"notifications?out_trade_no={dropped}")
                            ["notifications"][0]["status"] == "dropped")

    doubled = new_order_id()
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "duplicate", "copies": 3})
    pay(sandbox, unionpay, up_merchant, doubled)
    copies = up_merchant.wait_for_notifications(doubled, 3)
    assert len({request.body for request in copies}) >= 1
    assert up_merchant.notifications(dropped) == []


REFUSED_BY_SIGNATURE = {
    "bad_signature": "does not verify", "impostor_chain": "does not chain", "wrong_cn": "not UnionPay",
    "expired_certificate": "valid from", "tampered_amount": "does not verify", "malformed": "not a form body",
    "wrong_merchant": "merId",
}
# Validly signed lies: they verify; the shop's own records must catch them.
SIGNED_LIES = ("signed_wrong_amount", "wrong_txn_time", "unknown_order")


def test_forgeries_go_first_and_the_adapter_refuses_each_for_its_reason(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    variants = [*REFUSED_BY_SIGNATURE, *SIGNED_LIES]
    sandbox.control("POST", "faults", {"target": "unionpay.notify", "mode": "forge", "variants": variants})
    paid = pay(sandbox, unionpay, up_merchant, order_id)

    posts = up_merchant.wait_for_posts(len(variants) + 1)
    *forged, real = sorted(posts, key=lambda request: request.sequence)
    for variant, request in zip(variants, forged, strict=True):
        if variant in REFUSED_BY_SIGNATURE:
            with pytest.raises(InvalidNotification, match=REFUSED_BY_SIGNATURE[variant]):
                unionpay.parse_notification(raw_notification(request))
        else:
            lie = unionpay.parse_notification(raw_notification(request))
            told = (lie.out_trade_no, lie.requested_at, lie.amount_minor)
            truth = (order_id, paid.reference.requested_at, 8800)
            differs = {"unknown_order": 0, "wrong_txn_time": 1, "signed_wrong_amount": 2}[variant]
            assert told[differs] != truth[differs]
            assert [told[i] for i in range(3) if i != differs] == [truth[i] for i in range(3) if i != differs]
    assert unionpay.parse_notification(raw_notification(real)).amount_minor == 8800


def test_the_default_forgeries(sandbox):
    config = sandbox.control("GET", "config")
    assert "forge" in config["fault_targets"]["unionpay.notify"]
    assert "fail" in config["fault_targets"]["unionpay.refund"]
    assert config["unionpay"]["mer_id"] == "898110000000001"
    assert "unionpay" in config["providers"]


# -- refunds (B9, B10, B15) ------------------------------------------------------------


def test_a_refund_is_accepted_in_flight_then_succeeds_and_notifies_its_own_back_url(sandbox, unionpay,
                                                                                    up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)
    reference = RefundReference(request.out_refund_no, request.requested_at, paid.reference)

    accepted = unionpay.refund(request)
    assert accepted.status is GatewayRefundStatus.PROCESSING
    assert unionpay.query_refund(reference).status is GatewayRefundStatus.PROCESSING
    settled = unionpay.query_refund(reference)

    assert (settled.status, settled.amount_minor) == (GatewayRefundStatus.SUCCEEDED, 3000)
    assert settled.gateway_refund_id == accepted.gateway_refund_id
    (notification,) = up_merchant.wait_for_notifications(request.out_refund_no, 1)
    assert notification.path == "/refunds/unionpay/notify/"
    parsed = unionpay.parse_refund_notification(raw_notification(notification))
    assert (parsed.out_refund_no, parsed.gateway_trade_no, parsed.amount_minor) == (
        request.out_refund_no, paid.query_id, 3000)
    trade = sandbox.control("GET", f"unionpay/trades/{order_id}")
    assert (trade["refunded_minor"], trade["refund_count"]) == (3000, 1)
    # The payment itself still reads paid.
    assert unionpay.query_payment(paid.reference).status is TradeStatus.SUCCEEDED


def test_the_same_refund_sent_again_is_a_duplicate_answered_by_its_query(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)
    unionpay.refund(request)

    again = unionpay.refund(request)

    assert again.status in (GatewayRefundStatus.PROCESSING, GatewayRefundStatus.SUCCEEDED)
    (refund,) = sandbox.control("GET", f"unionpay/trades/{order_id}")["refunds"]
    assert refund["requests"] == 1


def test_refunds_over_what_is_left_are_refused(sandbox, unionpay, up_merchant, up):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    unionpay.refund(refund_request(up_merchant, order_id, refund_no(order_id), 8000, query_id=paid.query_id))

    with pytest.raises(GatewayRejected) as refused:
        unionpay.refund(refund_request(up_merchant, order_id, refund_no(order_id, 2), 801, query_id=paid.query_id))

    assert refused.value.sub_code == "36"
    # More than the payment itself never leaves the adapter; the sandbox refuses it too.
    answer = up.post("/unionpay/gateway/api/backTransReq.do",
                     up.refund_fields(up_merchant, refund_no(order_id, 3), paid.query_id, "8801"))
    assert answer["respCode"] == "36"


def test_a_refund_of_an_unknown_consume_is_refused(sandbox, unionpay, up_merchant):
    with pytest.raises(GatewayRejected) as refused:
        unionpay.refund(refund_request(up_merchant, new_order_id(), refund_no(new_order_id()), 100,
                                       query_id="999999999999999999999"))
    assert refused.value.sub_code == "35"


def test_a_failing_refund_ends_closed_without_a_notification(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    up_merchant.wait_for_notifications(order_id, 1)
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "fail", "queries": 0})
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)
    reference = RefundReference(request.out_refund_no, request.requested_at, paid.reference)

    assert unionpay.refund(request).status is GatewayRefundStatus.PROCESSING
    failed = unionpay.query_refund(reference)

    assert failed.status is GatewayRefundStatus.CLOSED and "new number" in failed.message
    assert unionpay.query_refund(reference).status is GatewayRefundStatus.CLOSED
    # The amount is refundable again, under a new number.
    retry = replace(request, out_refund_no=refund_no(order_id, 2))
    assert unionpay.refund(retry).status is GatewayRefundStatus.PROCESSING
    assert sandbox.control("POST", f"unionpay/refunds/{retry.out_refund_no}/settle")["status"] == "succeeded"
    up_merchant.wait_for_notifications(retry.out_refund_no, 1)
    assert up_merchant.notifications(request.out_refund_no) == []
    trade = sandbox.control("GET", f"unionpay/trades/{order_id}")
    assert (trade["refunded_minor"], trade["refund_count"]) == (3000, 2)


def test_a_crash_after_the_refund_loses_the_answer_and_the_retry_finds_it(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "crash_after"})
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)

    with pytest.raises(GatewayUnavailable):
        unionpay.refund(request)
    retried = unionpay.refund(request)

    assert retried.status in (GatewayRefundStatus.PROCESSING, GatewayRefundStatus.SUCCEEDED)
    (refund,) = sandbox.control("GET", f"unionpay/trades/{order_id}")["refunds"]
    assert refund["out_refund_no"] == request.out_refund_no


def test_refund_call_faults(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "error", "code": "45"})
    with pytest.raises(GatewayRejected):
        unionpay.refund(refund_request(up_merchant, order_id, refund_no(order_id), 100, query_id=paid.query_id))
    sandbox.control("POST", "faults", {"target": "unionpay.refund", "mode": "timeout", "seconds": 1.0})
    with pytest.raises(GatewayUnavailable):
        make_gateway(sandbox, read_timeout=0.3).refund(
            refund_request(up_merchant, order_id, refund_no(order_id), 100, query_id=paid.query_id))
    assert sandbox.control("GET", f"unionpay/trades/{order_id}")["refunds"] == []


def test_refunds_settle_by_themselves_when_the_setting_says_so(sandbox, unionpay, up_merchant):
    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    sandbox.control("POST", "settings", {"refund_settle_after_seconds": {"unionpay": 0}})
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)

    unionpay.refund(request)

    up_merchant.wait_for_notifications(request.out_refund_no, 1)
    assert sandbox.control("GET", f"unionpay/refunds/{request.out_refund_no}")["status"] == "succeeded"
    assert sandbox.control("GET", f"unionpay/trades/{order_id}")["refunded_minor"] == 3000


def test_the_control_api_ends_a_refund_once(sandbox, unionpay, up_merchant):
    from tests.sandbox_process import SandboxControlError

    order_id = new_order_id()
    paid = pay(sandbox, unionpay, up_merchant, order_id)
    request = refund_request(up_merchant, order_id, refund_no(order_id), 3000, query_id=paid.query_id)
    unionpay.refund(request)

    ended = sandbox.control("POST", f"unionpay/refunds/{request.out_refund_no}/settle", {"status": "FAILED"})

    assert (ended["status"], ended["orig_resp_code"]) == ("closed", "01")
    with pytest.raises(SandboxControlError) as again:
        sandbox.control("POST", f"unionpay/refunds/{request.out_refund_no}/settle", {"status": "SUCCESS"})
    assert again.value.status == 409
