"""Fault rules: notifications dropped, delayed, duplicated, reordered, forged;
calls answering errors, timing out, or doing the work without answering."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.sandbox.alipay_client import sdk_verifies
from tests.sandbox.flows import new_out_trade_no, paid_trade, precreate, refund
from tests.sandbox.receiver import MerchantReceiver
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def add_fault(sandbox, **rule) -> dict:
    return sandbox.control("POST", "faults", rule)


def log_for(sandbox, out_trade_no: str) -> list[dict]:
    return sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}")["notifications"]


def pay(sandbox, alipay, merchant, out_trade_no: str) -> None:
    """Pay without waiting for the notification (a fault may hold it back)."""
    precreate(alipay, merchant, out_trade_no)
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")


# -- notifications ------------------------------------------------------------


def test_a_dropped_notification_is_never_sent(sandbox, alipay, merchant):
    dropped, delivered = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="alipay.notify", mode="drop")

    pay(sandbox, alipay, merchant, dropped)
    pay(sandbox, alipay, merchant, delivered)
    merchant.wait_for_notifications(delivered, 1)

    (logged,) = log_for(sandbox, dropped)
    assert logged["status"] == "dropped"
    assert [d["variant"] for d in logged["deliveries"]] == ["dropped"]
    assert merchant.notifications(dropped) == []
    assert sandbox.control("GET", "faults")["faults"][0]["remaining"] == 0


def test_a_delayed_notification_waits_and_can_be_released(sandbox, alipay, merchant):
    delayed, prompt = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="alipay.notify", mode="delay", seconds=3600, out_trade_no=delayed)

    pay(sandbox, alipay, merchant, delayed)
    pay(sandbox, alipay, merchant, prompt)
    merchant.wait_for_notifications(prompt, 1)

    (logged,) = log_for(sandbox, delayed)
    assert (logged["status"], logged["attempts"]) == ("scheduled", 0)
    assert merchant.notifications(delayed) == []
    sandbox.control("POST", "notifications/send-now")
    merchant.wait_for_notifications(delayed, 1)


def test_duplicate_sends_copies_at_once_with_one_notify_id(sandbox, sdk, alipay, merchant, out_trade_no):
    add_fault(sandbox, target="alipay.notify", mode="duplicate", copies=3)

    pay(sandbox, alipay, merchant, out_trade_no)

    copies = merchant.wait_for_notifications(out_trade_no, 3)
    assert len({copy.fields["notify_id"] for copy in copies}) == 1
    assert all(sdk_verifies(sdk, copy.fields) for copy in copies)
    (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "delivered"])
    assert sorted(d["variant"] for d in logged["deliveries"]) == ["duplicate", "duplicate", "real"]


def test_reorder_holds_notifications_and_sends_them_newest_first(sandbox, alipay, merchant):
    first, second = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="alipay.notify", mode="reorder", count=2)

    pay(sandbox, alipay, merchant, first)
    held = log_for(sandbox, first)[0]
    pay(sandbox, alipay, merchant, second)
    merchant.wait_for_notifications(first, 1)
    merchant.wait_for_notifications(second, 1)

    assert held["status"] == "held"
    arrival = [request.fields["out_trade_no"] for request in merchant.notifications()]
    assert arrival == [second, first]


def test_clearing_faults_releases_held_notifications(sandbox, alipay, merchant, out_trade_no):
    add_fault(sandbox, target="alipay.notify", mode="reorder", count=3)
    pay(sandbox, alipay, merchant, out_trade_no)

    sandbox.control("POST", "faults/clear")

    merchant.wait_for_notifications(out_trade_no, 1)


def test_forge_sends_forged_copies_before_the_real_one(sandbox, sdk, alipay, out_trade_no):
    receiver = MerchantReceiver(
        lambda request, earlier: (200, b"success") if sdk_verifies(sdk, request.fields) else (200, b"failure")
    ).start()
    try:
        add_fault(sandbox, target="alipay.notify", mode="forge")
        pay(sandbox, alipay, receiver, out_trade_no)
        bad_signature, tampered, real = receiver.wait_for_notifications(out_trade_no, 3)
        (logged,) = sandbox.wait_for(lambda: [n for n in log_for(sandbox, out_trade_no) if n["status"] == "delivered"])
    finally:
        receiver.stop()

    assert not sdk_verifies(sdk, bad_signature.fields)
    assert not sdk_verifies(sdk, tampered.fields)
    assert tampered.fields["total_amount"] == "0.01"
    assert sdk_verifies(sdk, real.fields) and real.fields["total_amount"] == "88.88"
    assert [(d["variant"], d["body"]) for d in logged["deliveries"]] == [
        ("bad_signature", "failure"),
        ("tampered_amount", "failure"),
        ("real", "success"),
    ]


def test_forge_can_send_validly_signed_lies_for_the_merchant_checks(sandbox, sdk, alipay, merchant, out_trade_no):
    add_fault(
        sandbox, target="alipay.notify", mode="forge", variants=["signed_wrong_amount", "wrong_app_id", "wrong_seller"]
    )

    pay(sandbox, alipay, merchant, out_trade_no)

    wrong_amount, wrong_app, wrong_seller, real = merchant.wait_for_notifications(out_trade_no, 4)
    assert all(sdk_verifies(sdk, request.fields) for request in (wrong_amount, wrong_app, wrong_seller, real))
    assert wrong_amount.fields["total_amount"] == "0.01"
    assert wrong_app.fields["app_id"] != real.fields["app_id"]
    assert wrong_seller.fields["seller_id"] != real.fields["seller_id"]


def test_a_rule_applies_count_times_and_only_to_its_trade(sandbox, alipay, merchant):
    other, targeted_a, targeted_b = new_out_trade_no(), new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="alipay.notify", mode="drop", out_trade_no=targeted_a)
    add_fault(sandbox, target="alipay.notify", mode="drop", count=2)

    pay(sandbox, alipay, merchant, targeted_a)
    pay(sandbox, alipay, merchant, other)
    pay(sandbox, alipay, merchant, targeted_b)

    faults = sandbox.control("GET", "faults")["faults"]
    assert [(f["applied"], f["remaining"]) for f in faults] == [(1, 0), (2, 0)]
    assert [log_for(sandbox, no)[0]["status"] for no in (targeted_a, other, targeted_b)] == ["dropped"] * 3


# -- calls --------------------------------------------------------------------

CALLS = {
    "alipay.query": ("alipay.trade.query", lambda no: {"out_trade_no": no}),
    "alipay.close": ("alipay.trade.close", lambda no: {"out_trade_no": no}),
    "alipay.refund": (
        "alipay.trade.refund",
        lambda no: {"out_trade_no": no, "refund_amount": "1.00", "out_request_no": "R1"},
    ),
    "alipay.refund_query": ("alipay.trade.fastpay.refund.query", lambda no: {"out_trade_no": no, "out_request_no": "R1"}),
    "alipay.precreate": (
        "alipay.trade.precreate",
        lambda no: {"out_trade_no": no, "total_amount": "1.00", "subject": "t"},
    ),
    "alipay.bill": ("alipay.data.dataservice.bill.downloadurl.query", lambda no: {"bill_type": "trade", "bill_date": "2020-01-01"}),
}
ERRORS = [
    {"code": "20000", "sub_code": "isp.unknow-error"},
    {"code": "40004", "sub_code": "ACQ.SYSTEM_ERROR"},
]


@pytest.mark.parametrize("target", sorted(CALLS))
@pytest.mark.parametrize("error", ERRORS, ids=lambda error: error["sub_code"])
def test_an_error_rule_answers_the_chosen_code_once(sandbox, alipay, merchant, target, error, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no)
    method, biz = CALLS[target]
    add_fault(sandbox, target=target, mode="error", **error)

    faulty = alipay.call(method, biz(out_trade_no))
    normal = alipay.call(method, biz(out_trade_no))

    assert (faulty.code, faulty.sub_code) == (error["code"], error["sub_code"])
    assert (normal.code, normal.sub_code) != (error["code"], error["sub_code"])


def test_a_refund_error_rule_moves_no_money(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no)
    add_fault(sandbox, target="alipay.refund", mode="error", code="40004", sub_code="ACQ.SELLER_BALANCE_NOT_ENOUGH")

    refused = refund(alipay, out_trade_no, "1.00", "R1")
    retried = refund(alipay, out_trade_no, "1.00", "R1")

    assert refused.sub_code == "ACQ.SELLER_BALANCE_NOT_ENOUGH"
    assert retried.node["fund_change"] == "Y"
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1


def test_an_error_rule_can_aim_at_one_trade(sandbox, alipay, merchant):
    aimed, spared = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="alipay.query", mode="error", out_trade_no=aimed)

    spared_answer = alipay.call("alipay.trade.query", {"out_trade_no": spared})
    aimed_answer = alipay.call("alipay.trade.query", {"out_trade_no": aimed})

    assert spared_answer.sub_code == "ACQ.TRADE_NOT_EXIST"
    assert aimed_answer.sub_code == "isp.unknow-error"


def test_a_timeout_rule_answers_too_late_and_does_not_refund(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no)
    add_fault(sandbox, target="alipay.refund", mode="timeout", seconds=2)

    with pytest.raises(requests.Timeout):
        alipay.call(
            "alipay.trade.refund",
            {"out_trade_no": out_trade_no, "refund_amount": "1.00", "out_request_no": "R1"},
            timeout=0.5,
        )

    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 0
    assert refund(alipay, out_trade_no, "1.00", "R1").node["fund_change"] == "Y"


def test_a_slow_answer_within_the_client_timeout_is_an_unknown_error(sandbox, alipay, merchant, out_trade_no):
    add_fault(sandbox, target="alipay.query", mode="timeout", seconds=0.05)

    answer = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no})

    assert (answer.code, answer.sub_code) == ("20000", "isp.unknow-error")


def _known_trade(sandbox, provider: str, out_trade_no: str) -> bool:
    try:
        return sandbox.control("GET", f"{provider}/trades/{out_trade_no}")["out_trade_no"] == out_trade_no
    except SandboxControlError:
        return False


def test_a_slow_rule_does_the_work_and_answers_normally(sandbox, sdk, alipay, merchant, out_trade_no):
    """Slow but successful: the precreate is done and its signed answer is the usual one."""
    add_fault(sandbox, target="alipay.precreate", mode="slow", seconds=0.05)

    node = precreate(alipay, merchant, out_trade_no)

    assert node["out_trade_no"] == out_trade_no and node["qr_code"]
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["out_trade_no"] == out_trade_no
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == 1


def test_a_slow_answer_comes_too_late_for_a_short_client_timeout_but_the_work_is_done(
    sandbox, alipay, merchant, out_trade_no
):
    add_fault(sandbox, target="alipay.precreate", mode="slow", seconds=2)

    with pytest.raises(requests.Timeout):
        alipay.call("alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "1.00", "subject": "t"},
                    notify_url=merchant.notify_url, timeout=0.5)

    assert sandbox.wait_for(lambda: _known_trade(sandbox, "alipay", out_trade_no))


def test_many_slow_answers_are_served_at_once(sandbox, alipay, merchant):
    """25 answers each 1 s late all arrive within a 10 s client timeout: served one after
    another they would need 25 s, so the sandbox holds them concurrently."""
    references = [new_out_trade_no() for _ in range(25)]
    add_fault(sandbox, target="alipay.precreate", mode="slow", seconds=1, count=len(references))

    def start(reference: str) -> str:
        answer = alipay.call("alipay.trade.precreate", {"out_trade_no": reference, "total_amount": "1.00",
                                                        "subject": "t"}, notify_url=merchant.notify_url, timeout=10)
        return answer.code

    with ThreadPoolExecutor(max_workers=len(references)) as pool:
        codes = list(pool.map(start, references))

    assert codes == ["10000"] * len(references)
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == len(references)


def test_crash_after_refunds_but_drops_the_connection(sandbox, alipay, merchant, out_trade_no):
    """The gateway did it but the merchant never heard back; the retry is a replay."""
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="50.00")
    add_fault(sandbox, target="alipay.refund", mode="crash_after")

    with pytest.raises(requests.ConnectionError):
        refund(alipay, out_trade_no, "20.00", "R1")

    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1
    replay = refund(alipay, out_trade_no, "20.00", "R1")
    assert (replay.node["fund_change"], replay.node["refund_fee"]) == ("N", "20.00")
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1


def test_crash_after_with_seconds_refunds_and_answers_too_late(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="50.00")
    add_fault(sandbox, target="alipay.refund", mode="crash_after", seconds=2)

    with pytest.raises(requests.Timeout):
        alipay.call(
            "alipay.trade.refund",
            {"out_trade_no": out_trade_no, "refund_amount": "20.00", "out_request_no": "R1"},
            timeout=0.5,
        )

    assert sandbox.wait_for(lambda: sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1)


def test_a_processing_refund_settles_after_the_chosen_number_of_queries(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="50.00")
    add_fault(sandbox, target="alipay.refund", mode="processing", queries=2)
    query = {"out_trade_no": out_trade_no, "out_request_no": "R1"}

    accepted = refund(alipay, out_trade_no, "20.00", "R1")
    pending = [alipay.call("alipay.trade.fastpay.refund.query", query) for _ in range(2)]
    settled = alipay.call("alipay.trade.fastpay.refund.query", query)

    assert (accepted.code, accepted.node["fund_change"], accepted.node["refund_fee"]) == ("10000", "N", "0.00")
    assert all("refund_status" not in answer.node for answer in pending)
    assert settled.node["refund_status"] == "REFUND_SUCCESS"
    notification = merchant.wait_for_notifications(out_trade_no, 2)[1]
    assert sdk_verifies(sdk, notification.fields) and notification.fields["out_biz_no"] == "R1"
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1


# -- the rules themselves -----------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"target": "alipay.teleport", "mode": "error"},
        {"target": "alipay.query", "mode": "crash_after"},
        {"target": "alipay.notify", "mode": "delay"},
        {"target": "alipay.notify", "mode": "duplicate", "copies": 1},
        {"target": "alipay.notify", "mode": "forge", "variants": ["made_up"]},
        {"target": "alipay.notify", "mode": "drop", "count": 0},
        {"target": "alipay.bill_content", "mode": "omit"},
    ],
)
def test_an_invalid_rule_is_refused(sandbox, rule):
    with pytest.raises(SandboxControlError) as refused:
        add_fault(sandbox, **rule)

    assert refused.value.status == 400


def test_rules_are_listed_deleted_and_cleared(sandbox):
    first = add_fault(sandbox, target="alipay.query", mode="error")
    add_fault(sandbox, target="alipay.close", mode="timeout", seconds=1)

    sandbox.control("DELETE", f"faults/{first['id']}")
    listed = sandbox.control("GET", "faults")["faults"]
    cleared = sandbox.control("DELETE", "faults")
    add_fault(sandbox, target="alipay.query", mode="error")

    assert [rule["target"] for rule in listed] == ["alipay.close"]
    assert cleared == {"cleared": 1}
    assert sandbox.control("DELETE", "faults/clear") == {"cleared": 1}
    assert sandbox.control("GET", "faults")["faults"] == []


