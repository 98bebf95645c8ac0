"""WeChat Pay refunds that end by themselves, as the real ones do: the runtime setting
`refund_settle_after_seconds` (start-up `--refund-settle-after`; the tests' sandbox starts
with `none`). A refund still PROCESSING that long after its creation ends SUCCESS without
any query and REFUND.SUCCESS goes to its notify_url; never twice, never with null."""
import json

import pytest

from payments.gateways.base import GatewayRefundStatus
from tests.gateway_references import refund_ref
from tests.sandbox.wechatpay_client import notification_resource, raw_notification, refund_request
from tests.sandbox.wechatpay_flows import (
    control_status,
    delivered,
    notification_log,
    paid_trade,
    refund_notifications,
    wait_for_refund_notifications,
    wechat_trade,
)
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

# Sandbox-clock seconds: 5 ms at the tests' time scale of 0.001.
SOON = 5
A_DAY = 86400


@pytest.fixture
def paid(sandbox, wechatpay, wx_merchant, out_trade_no) -> str:
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no, amount_minor=8888)
    return out_trade_no


def settle_after(sandbox, **seconds) -> dict:
    return sandbox.control("POST", "settings", {"refund_settle_after_seconds": seconds})["refund_settle_after_seconds"]


def refund_state(sandbox, out_refund_no: str) -> dict:
    return sandbox.control("GET", f"wechatpay/refunds/{out_refund_no}")


def logged_refund_numbers(sandbox, out_trade_no: str) -> list[str]:
    return sorted(notification["out_refund_no"] for notification in notification_log(sandbox, out_trade_no, "refund"))


@pytest.mark.parametrize("held_by", ["refund_processing_queries", "processing_fault"])
def test_a_processing_refund_ends_successfully_by_itself_and_is_notified(
    sandbox, wechatpay, wx_merchant, paid, held_by
):
    if held_by == "refund_processing_queries":
        sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 1000}})
    else:
        sandbox.control("POST", "faults", {"target": "wechatpay.refund", "mode": "processing", "queries": 1000})
    assert settle_after(sandbox, wechatpay=SOON) == {"alipay": None, "wechatpay": SOON, "unionpay": None}

    accepted = wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))
    # No query: the sandbox ends it by itself.
    (notification,) = wait_for_refund_notifications(sandbox, wx_merchant, paid, 1)

    assert accepted.status == GatewayRefundStatus.PROCESSING
    assert notification.path == "/refunds/wechatpay/notify/"
    assert json.loads(notification.body)["event_type"] == "REFUND.SUCCESS"
    parsed = wechatpay.parse_refund_notification(raw_notification(notification))
    assert (parsed.out_trade_no, parsed.out_refund_no, parsed.status) == (paid, "R-1", GatewayRefundStatus.SUCCEEDED)
    assert (parsed.amount_minor, parsed.gateway_refund_id) == (3000, accepted.gateway_refund_id)
    assert parsed.refunded_at is not None
    refund = refund_state(sandbox, "R-1")
    assert (refund["wire_status"], refund["requests"]) == ("SUCCESS", 1)
    assert refund["ended_at"] is not None
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 3000
    assert [logged["status"] for logged in delivered(sandbox, paid, "refund")] == ["delivered"]
    assert wechatpay.query_refund(refund_ref(paid, "R-1")).status == GatewayRefundStatus.SUCCEEDED


def test_with_null_a_refund_stays_processing_until_the_setting_is_turned_on(sandbox, wechatpay, wx_merchant, paid):
    assert settle_after(sandbox, wechatpay=None) == {"alipay": None, "wechatpay": None, "unionpay": None}
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))
    # A day passes on the sandbox clock: any settle time would be long past.
    sandbox.control("POST", "settings", {"clock_offset_seconds": A_DAY})

    # Two refunds ended through the control API, notified one after the other:
    # the dispatcher round that sends the second began after the first was
    # sent, so after the clock moved on, and it left R-1 alone.
    for count, witness in enumerate(("R-2", "R-3"), start=1):
        wechatpay.refund(refund_request(wx_merchant, paid, witness, 1000))
        sandbox.control("POST", f"wechatpay/refunds/{witness}/settle", {"status": "SUCCESS"})
        wait_for_refund_notifications(sandbox, wx_merchant, paid, count)

    assert refund_state(sandbox, "R-1")["wire_status"] == "PROCESSING"
    assert logged_refund_numbers(sandbox, paid) == ["R-2", "R-3"]
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 2000

    settle_after(sandbox, wechatpay=SOON)
    wait_for_refund_notifications(sandbox, wx_merchant, paid, 3)

    assert refund_state(sandbox, "R-1")["wire_status"] == "SUCCESS"
    assert logged_refund_numbers(sandbox, paid) == ["R-1", "R-2", "R-3"]
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 5000


def test_a_refund_ended_through_the_control_api_is_not_settled_again(sandbox, wechatpay, wx_merchant, paid):
    # An hour on the sandbox clock: 3.6 s of real time, ample to end R-1 first.
    settle_after(sandbox, wechatpay=3600)
    wechatpay.refund(refund_request(wx_merchant, paid, "R-1", 3000))
    wechatpay.refund(refund_request(wx_merchant, paid, "R-2", 1000))
    ended = sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"})

    # A day later both are past due: R-2 ends by itself, R-1 was already ended.
    sandbox.control("POST", "settings", {"clock_offset_seconds": A_DAY})
    notifications = wait_for_refund_notifications(sandbox, wx_merchant, paid, 2)

    assert ended["wire_status"] == "SUCCESS"
    assert refund_state(sandbox, "R-2")["wire_status"] == "SUCCESS"
    assert sorted(notification_resource(n)["out_refund_no"] for n in notifications) == ["R-1", "R-2"]
    assert logged_refund_numbers(sandbox, paid) == ["R-1", "R-2"]
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 4000
    assert control_status(sandbox, "POST", "wechatpay/refunds/R-2/settle", {"status": "SUCCESS"}) == 409


def test_a_refund_ended_through_the_control_api_as_it_falls_due_ends_once(sandbox, wechatpay, wx_merchant, paid):
    settle_after(sandbox, wechatpay=SOON)
    numbers = [f"R-{index}" for index in range(4)]
    answers = {}

    # Each refund is due within milliseconds while the control API ends it
    # ABNORMAL: whichever comes first ends it, the other finds it ended.
    for number in numbers:
        wechatpay.refund(refund_request(wx_merchant, paid, number, 1000))
        answers[number] = control_status(sandbox, "POST", f"wechatpay/refunds/{number}/settle", {"status": "ABNORMAL"})
    wait_for_refund_notifications(sandbox, wx_merchant, paid, len(numbers))
    delivered(sandbox, paid, "refund")

    assert set(answers.values()) <= {200, 409}
    ends = {number: "ABNORMAL" if answers[number] == 200 else "SUCCESS" for number in numbers}
    assert {number: refund_state(sandbox, number)["wire_status"] for number in numbers} == ends
    assert logged_refund_numbers(sandbox, paid) == numbers
    notified = [notification_resource(request) for request in refund_notifications(wx_merchant, paid)]
    assert sorted((resource["out_refund_no"], resource["refund_status"]) for resource in notified) == sorted(
        ends.items()
    )
    succeeded = sum(1 for end in ends.values() if end == "SUCCESS")
    assert wechat_trade(sandbox, paid)["refunded_minor"] == 1000 * succeeded


def test_the_setting_is_validated_shown_and_restored_by_reset(sandbox):
    # The tests' sandbox starts with `--refund-settle-after none`.
    start = sandbox.control("GET", "settings")["refund_settle_after_seconds"]
    assert start == {"alipay": None, "wechatpay": None, "unionpay": None}

    assert settle_after(sandbox, wechatpay=2.5) == {"alipay": None, "wechatpay": 2.5, "unionpay": None}
    assert settle_after(sandbox, alipay=0) == {"alipay": 0, "wechatpay": 2.5, "unionpay": None}
    for bad, message in (
        ({"refund_settle_after_seconds": {"paypal": 5}}, "unknown provider"),
        ({"refund_settle_after_seconds": {"wechatpay": -1}}, "must be a number >= 0 or null"),
        ({"refund_settle_after_seconds": {"wechatpay": "5"}}, "must be a number >= 0 or null"),
        ({"refund_settle_after_seconds": {"wechatpay": True}}, "must be a number >= 0 or null"),
        ({"refund_settle_after_seconds": {"wechatpay": [5]}}, "must be a number >= 0 or null"),
        ({"refund_settle_after_seconds": 5}, "must be an object"),
        ({"refund_settle_after_seconds": None}, "must be an object"),
        # All or nothing: the valid part is not applied either.
        ({"refund_settle_after_seconds": {"wechatpay": 1}, "time_scale": 0}, "time_scale"),
    ):
        with pytest.raises(SandboxControlError) as refused:
            sandbox.control("POST", "settings", bad)
        assert refused.value.status == 400 and message in refused.value.body

    assert sandbox.control("GET", "settings")["refund_settle_after_seconds"] == {"alipay": 0, "wechatpay": 2.5, "unionpay": None}
    assert sandbox.control("GET", "config")["settings"]["refund_settle_after_seconds"] == {
        "alipay": 0, "wechatpay": 2.5, "unionpay": None,
    }  # fmt: skip
    kept = sandbox.control("POST", "reset")["settings"]["refund_settle_after_seconds"]
    restored = sandbox.control("POST", "reset", {"settings": True})["settings"]["refund_settle_after_seconds"]
    assert kept == {"alipay": 0, "wechatpay": 2.5, "unionpay": None}
    assert restored == start
