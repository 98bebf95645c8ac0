"""Notification delivery: acknowledgement, re-sends on the schedule, giving up (A8)."""
import pytest

from tests.sandbox.alipay_client import sdk_verifies
from tests.sandbox.flows import paid_trade
from tests.sandbox.receiver import MerchantReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


@pytest.fixture
def reluctant_merchant():
    """Answers `fail` twice, then `success`, per trade."""
    receiver = MerchantReceiver(lambda request, earlier: (200, b"success" if earlier >= 2 else b"fail")).start()
    yield receiver
    receiver.stop()


def log_for(sandbox, out_trade_no: str) -> list[dict]:
    return sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}")["notifications"]


def test_an_unacknowledged_notification_is_sent_again_until_success(
    sandbox, sdk, alipay, reluctant_merchant, out_trade_no
):
    paid_trade(sandbox, alipay, reluctant_merchant, out_trade_no)

    received = reluctant_merchant.wait_for_notifications(out_trade_no, 3)
    (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "delivered"])

    assert len({request.fields["notify_id"] for request in received}) == 1
    assert all(sdk_verifies(sdk, request.fields) for request in received)
    assert logged["attempts"] == 3
    assert [(d["attempt"], d["status_code"], d["body"], d["acknowledged"]) for d in logged["deliveries"]] == [
        (1, 200, "fail", False),
        (2, 200, "fail", False),
        (3, 200, "success", True),
    ]


@pytest.mark.parametrize(
    "answers",
    [
        [(200, b"success\n"), (200, b"SUCCESS"), (500, b"success"), (200, b" success")],
        [(302, b""), (200, b"<html>success</html>"), (404, b"success"), (200, b"success ")],
    ],
)
def test_only_200_with_exactly_success_acknowledges(sandbox, alipay, out_trade_no, answers):
    def answer(request, earlier):
        return answers[earlier] if earlier < len(answers) else (200, b"success")

    sandbox.control("POST", "settings", {"notify_schedules": {"alipay": [1] * len(answers)}})
    receiver = MerchantReceiver(answer).start()
    try:
        paid_trade(sandbox, alipay, receiver, out_trade_no)
        receiver.wait_for_notifications(out_trade_no, len(answers) + 1)
        (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "delivered"])
    finally:
        receiver.stop()

    assert logged["attempts"] == len(answers) + 1
    assert [d["acknowledged"] for d in logged["deliveries"]] == [False] * len(answers) + [True]


def test_the_sandbox_gives_up_after_the_schedule(sandbox, alipay, out_trade_no):
    sandbox.control("POST", "settings", {"notify_schedules": {"alipay": [1, 2]}})
    receiver = MerchantReceiver(lambda request, earlier: (503, b"busy")).start()
    try:
        paid_trade(sandbox, alipay, receiver, out_trade_no)
        (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "gave_up"])
    finally:
        receiver.stop()

    assert logged["attempts"] == 3
    assert len(receiver.notifications(out_trade_no)) == 3


def test_an_unreachable_merchant_is_logged_and_retried(sandbox, alipay, merchant, out_trade_no):
    sandbox.control("POST", "settings", {"notify_schedules": {"alipay": [1]}})
    # A closed port on loopback: the connection is refused.
    alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "1.00", "subject": "t"},
        notify_url="http://127.0.0.1:9/notify/",
    )  # fmt: skip
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")

    (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "gave_up"])

    assert [d["status_code"] for d in logged["deliveries"]] == [None, None]
    assert all(d["error"] for d in logged["deliveries"])


def test_the_schedule_is_scaled_by_the_time_scale(sandbox, alipay, out_trade_no):
    """At time scale 1 the second try waits 4 minutes: after the first failure it is
    still scheduled, and send-now delivers it at once."""
    sandbox.control("POST", "settings", {"time_scale": 1.0})
    receiver = MerchantReceiver(lambda request, earlier: (200, b"success" if earlier else b"fail")).start()
    try:
        paid_trade(sandbox, alipay, receiver, out_trade_no)
        (waiting,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["attempts"] == 1])
        sandbox.control("POST", "notifications/send-now")
        receiver.wait_for_notifications(out_trade_no, 2)
    finally:
        receiver.stop()

    assert waiting["status"] == "scheduled"
    assert len(receiver.notifications(out_trade_no)) == 2


def test_a_trade_without_notify_url_sends_nothing(sandbox, alipay, out_trade_no):
    alipay.call("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "1.00", "subject": "t"})

    sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")

    assert log_for(sandbox, out_trade_no) == []
