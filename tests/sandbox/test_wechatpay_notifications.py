"""WeChat Pay notification delivery (§5.5, §5.6): any 2xx acknowledges; anything else is
sent again, under the same id and freshly signed, on the 15-step schedule."""
import json

import pytest

from payments.gateways.base import TradeStatus
from tests.sandbox.wechatpay_client import raw_notification, wechatpay_receiver
from tests.sandbox.wechatpay_flows import delivered, notification_log, paid_trade, pay

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

SCHEDULE = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600]


@pytest.fixture
def scripted_merchant():
    """Answers each notification of a trade with the next of `answers` (then 200)."""
    receivers = []

    def start(*answers: tuple[int, bytes]):
        def answer(request, earlier):
            return answers[earlier] if earlier < len(answers) else (200, b"")

        receiver = wechatpay_receiver(answer).start()
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.stop()


def test_the_default_schedule_is_the_fifteen_step_one(sandbox):
    assert sandbox.control("GET", "settings")["notify_schedules"]["wechatpay"] == SCHEDULE


def test_an_unacknowledged_notification_is_sent_again_until_a_2xx(sandbox, wechatpay, scripted_merchant, out_trade_no):
    merchant = scripted_merchant((500, b"oops"), (400, '{"code":"FAIL","message":"失败"}'.encode()), (204, b""))
    paid_trade(sandbox, wechatpay, merchant, out_trade_no)

    received = merchant.wait_for_notifications(out_trade_no, 3)
    (logged,) = delivered(sandbox, out_trade_no)

    envelopes = [json.loads(request.body) for request in received]
    assert len({envelope["id"] for envelope in envelopes}) == 1
    assert len({envelope["resource"]["nonce"] for envelope in envelopes}) == 3
    assert len({request.headers["Wechatpay-Nonce"] for request in received}) == 3
    # Each send is signed afresh (the adapter checks the timestamp is within
    # 300 s of receipt); the timestamps never go back.
    timestamps = [int(request.headers["Wechatpay-Timestamp"]) for request in received]
    assert timestamps == sorted(timestamps)
    for request in received:
        parsed = wechatpay.parse_notification(raw_notification(request))
        assert (parsed.status, parsed.dedupe_key) == (TradeStatus.SUCCEEDED, envelopes[0]["id"])
    assert logged["notification_id"] == envelopes[0]["id"]
    assert [(d["attempt"], d["status_code"], d["acknowledged"]) for d in logged["deliveries"]] == [
        (1, 500, False), (2, 400, False), (3, 204, True),
    ]  # fmt: skip


@pytest.mark.parametrize("answer", [(200, '{"code":"FAIL","message":"失败"}'.encode()), (202, b""), (299, b"no")])
def test_any_2xx_acknowledges_whatever_the_body(sandbox, wechatpay, scripted_merchant, out_trade_no, answer):
    merchant = scripted_merchant(answer)
    paid_trade(sandbox, wechatpay, merchant, out_trade_no)

    (logged,) = delivered(sandbox, out_trade_no)

    assert logged["attempts"] == 1


def test_a_notification_is_given_up_after_the_schedule(sandbox, wechatpay, scripted_merchant, out_trade_no):
    sandbox.control("POST", "settings", {"notify_schedules": {"wechatpay": [1, 1]}})
    merchant = scripted_merchant(*[(503, b"")] * 10)
    pay(sandbox, wechatpay, merchant, out_trade_no)

    (logged,) = sandbox.wait_for(
        lambda: [n for n in notification_log(sandbox, out_trade_no) if n["status"] == "gave_up"]
    )

    assert logged["attempts"] == 3
    assert len(merchant.notifications(out_trade_no)) == 3


def test_an_unreachable_merchant_is_retried(sandbox, wechatpay, out_trade_no):
    receiver = wechatpay_receiver().start()
    receiver.stop()  # nothing listens on that port any more
    sandbox.control("POST", "settings", {"notify_schedules": {"wechatpay": [1]}})

    pay(sandbox, wechatpay, receiver, out_trade_no)
    (logged,) = sandbox.wait_for(
        lambda: [n for n in notification_log(sandbox, out_trade_no) if n["status"] == "gave_up"]
    )

    assert [d["status_code"] for d in logged["deliveries"]] == [None, None]
    assert all(d["error"] for d in logged["deliveries"])
