"""WeChat Pay fault rules: notifications (payment and refund) dropped, delayed, duplicated,
reordered, forged or preceded by a sign probe; calls answering errors, timing out,
refunding without answering, or keeping a refund processing."""
import json

import pytest
import requests

from payments.exceptions import GatewayUnavailable, InvalidNotification
from payments.gateways.base import GatewayRefundStatus, TradeStatus
from tests.gateway_references import refund_ref, trade_ref
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.wechatpay_client import (
    MCHID,
    make_gateway,
    notification_resource,
    raw_notification,
    refund_request,
    wechatpay_receiver,
)
from tests.sandbox.wechatpay_flows import (
    delivered,
    notification_log,
    paid_trade,
    pay,
    prepay,
    wait_for_refund_notifications,
    wechat_trade,
)
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]


def add_fault(sandbox, **rule) -> dict:
    return sandbox.control("POST", "faults", rule)


@pytest.fixture
def checking_merchant(wechatpay):
    """Acknowledges (200) what the shop's adapter accepts, refuses (400) the rest."""

    def answer(request, earlier):
        parse = (
            wechatpay.parse_refund_notification if request.path.startswith("/refunds/") else wechatpay.parse_notification
        )
        try:
            parse(raw_notification(request))
        except InvalidNotification:
            return 400, b'{"code":"FAIL","message":"bad"}'
        return 200, b'{"code":"SUCCESS","message":"ok"}'

    receiver = wechatpay_receiver(answer).start()
    yield receiver
    receiver.stop()


# -- payment notifications ------------------------------------------------------


def test_a_dropped_notification_is_never_sent(sandbox, wechatpay, wx_merchant):
    dropped, sent = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="wechatpay.notify", mode="drop")

    pay(sandbox, wechatpay, wx_merchant, dropped)
    pay(sandbox, wechatpay, wx_merchant, sent)
    wx_merchant.wait_for_notifications(sent, 1)

    (logged,) = notification_log(sandbox, dropped)
    assert logged["status"] == "dropped"
    assert wx_merchant.notifications(dropped) == []


def test_a_delayed_notification_waits_until_released(sandbox, wechatpay, wx_merchant):
    delayed, prompt = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="wechatpay.notify", mode="delay", seconds=3600, out_trade_no=delayed)

    pay(sandbox, wechatpay, wx_merchant, delayed)
    pay(sandbox, wechatpay, wx_merchant, prompt)
    wx_merchant.wait_for_notifications(prompt, 1)

    (logged,) = notification_log(sandbox, delayed)
    assert (logged["status"], logged["attempts"]) == ("scheduled", 0)
    sandbox.control("POST", "notifications/send-now")
    wx_merchant.wait_for_notifications(delayed, 1)


def test_duplicates_come_at_once_with_one_id(sandbox, wechatpay, wx_merchant, out_trade_no):
    """The same event "from different servers within seconds": parallel copies."""
    add_fault(sandbox, target="wechatpay.notify", mode="duplicate", copies=3)

    pay(sandbox, wechatpay, wx_merchant, out_trade_no)

    copies = wx_merchant.wait_for_notifications(out_trade_no, 3)
    parsed = [wechatpay.parse_notification(raw_notification(copy)) for copy in copies]
    assert len({notification.dedupe_key for notification in parsed}) == 1
    (logged,) = delivered(sandbox, out_trade_no)
    assert sorted(d["variant"] for d in logged["deliveries"]) == ["duplicate", "duplicate", "real"]
    assert {d["attempt"] for d in logged["deliveries"]} == {1}


def test_reorder_sends_held_notifications_newest_first(sandbox, wechatpay, wx_merchant):
    first, second = new_out_trade_no(), new_out_trade_no()
    add_fault(sandbox, target="wechatpay.notify", mode="reorder", count=2)

    pay(sandbox, wechatpay, wx_merchant, first)
    held = notification_log(sandbox, first)[0]
    pay(sandbox, wechatpay, wx_merchant, second)
    wx_merchant.wait_for_notifications(first, 1)
    wx_merchant.wait_for_notifications(second, 1)

    assert held["status"] == "held"
    assert [request.reference for request in wx_merchant.notifications()] == [second, first]


REFUSED_FORGERIES = ["bad_signature", "unknown_serial", "stale_timestamp", "undecryptable", "sign_probe", "wrong_mchid"]


@pytest.mark.parametrize("variant", REFUSED_FORGERIES)
def test_a_forged_notification_is_refused_by_the_adapter_then_the_real_one_accepted(
    sandbox, wechatpay, checking_merchant, out_trade_no, variant
):
    add_fault(sandbox, target="wechatpay.notify", mode="forge", variants=[variant])

    pay(sandbox, wechatpay, checking_merchant, out_trade_no)
    forged, real = checking_merchant.wait_for_posts(2)
    (logged,) = delivered(sandbox, out_trade_no)

    with pytest.raises(InvalidNotification):
        wechatpay.parse_notification(raw_notification(forged))
    assert wechatpay.parse_notification(raw_notification(real)).amount_minor == 8888
    assert [(d["variant"], d["status_code"]) for d in logged["deliveries"]] == [(variant, 400), ("real", 200)]
    forged_envelope, real_envelope = json.loads(forged.body), json.loads(real.body)
    if variant == "wrong_mchid":
        # A validly signed lie is another event, under its own id.
        assert forged_envelope["id"] != real_envelope["id"]
        assert notification_resource(forged)["mchid"] != MCHID
    else:
        assert forged_envelope["id"] == real_envelope["id"]


def test_each_forgery_breaks_what_it_says(sandbox, wechatpay, wx_merchant, out_trade_no):
    variants = ["bad_signature", "unknown_serial", "stale_timestamp", "undecryptable", "sign_probe"]
    add_fault(sandbox, target="wechatpay.notify", mode="forge", variants=variants)

    pay(sandbox, wechatpay, wx_merchant, out_trade_no)
    *forged, real = wx_merchant.wait_for_posts(len(variants) + 1)

    reasons = {}
    for variant, request in zip(variants, forged, strict=True):
        with pytest.raises(InvalidNotification) as refused:
            wechatpay.parse_notification(raw_notification(request))
        reasons[variant] = refused.value.reason
    assert "signature" in reasons["bad_signature"]
    assert "Wechatpay-Serial" in reasons["unknown_serial"]
    assert "300 s" in reasons["stale_timestamp"]
    assert "decrypt" in reasons["undecryptable"]
    assert forged[variants.index("sign_probe")].headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert notification_resource(forged[variants.index("undecryptable")]) is None
    wechatpay.parse_notification(raw_notification(real))


def test_a_tampered_amount_is_validly_signed_and_left_to_the_business_checks(
    sandbox, wechatpay, wx_merchant, out_trade_no
):
    add_fault(sandbox, target="wechatpay.notify", mode="forge", variants=["tampered_amount"])

    pay(sandbox, wechatpay, wx_merchant, out_trade_no)
    tampered, real = wx_merchant.wait_for_notifications(out_trade_no, 2)

    lie = wechatpay.parse_notification(raw_notification(tampered))
    truth = wechatpay.parse_notification(raw_notification(real))
    assert (lie.amount_minor, truth.amount_minor) == (1, 8888)
    assert lie.dedupe_key != truth.dedupe_key


def test_forge_without_variants_sends_a_bad_signature_and_an_undecryptable_copy(
    sandbox, wechatpay, checking_merchant, out_trade_no
):
    add_fault(sandbox, target="wechatpay.notify", mode="forge")

    pay(sandbox, wechatpay, checking_merchant, out_trade_no)
    checking_merchant.wait_for_posts(3)

    (logged,) = delivered(sandbox, out_trade_no)
    assert [d["variant"] for d in logged["deliveries"]] == ["bad_signature", "undecryptable", "real"]


def test_sign_probe_sends_a_signtest_probe_before_the_real_notification(
    sandbox, wechatpay, checking_merchant, out_trade_no
):
    add_fault(sandbox, target="wechatpay.notify", mode="sign_probe")

    pay(sandbox, wechatpay, checking_merchant, out_trade_no)
    probe, real = checking_merchant.wait_for_posts(2)
    (logged,) = delivered(sandbox, out_trade_no)

    assert probe.headers["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert json.loads(probe.body)["id"] == json.loads(real.body)["id"]
    assert [(d["variant"], d["status_code"]) for d in logged["deliveries"]] == [("sign_probe", 400), ("real", 200)]


# -- refund notifications -------------------------------------------------------


def test_refund_notification_rules_leave_payment_notifications_alone(sandbox, wechatpay, wx_merchant, out_trade_no):
    add_fault(sandbox, target="wechatpay.refund_notify", mode="drop")

    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 100))
    sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"})

    (refund_logged,) = notification_log(sandbox, out_trade_no, "refund")
    assert refund_logged["status"] == "dropped"
    assert notification_log(sandbox, out_trade_no, "payment")[0]["status"] == "delivered"


def test_a_payment_notification_rule_leaves_refund_notifications_alone(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.notify", mode="drop")

    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 100))
    sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "SUCCESS"})

    wait_for_refund_notifications(sandbox, wx_merchant, out_trade_no, 1)
    assert sandbox.control("GET", "faults")["faults"][0]["remaining"] == 1


@pytest.mark.parametrize(
    ("mode", "params"),
    [("forge", {"variants": ["tampered_amount", "wrong_mchid", "bad_signature"]}), ("duplicate", {"copies": 2}),
     ("sign_probe", {})],
)  # fmt: skip
def test_refund_notifications_take_the_same_faults(sandbox, wechatpay, wx_merchant, out_trade_no, mode, params):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund_notify", mode=mode, **params)
    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 300))

    sandbox.control("POST", "wechatpay/refunds/R-1/settle", {"status": "ABNORMAL"})
    (logged,) = delivered(sandbox, out_trade_no, "refund")

    # Every send was received before the sandbox logged the delivery.
    refunds = [request for request in wx_merchant.notifications() if request.path.startswith("/refunds/")]
    assert len(refunds) == len(logged["deliveries"])
    outcomes = []
    for request in refunds:
        try:
            outcomes.append(wechatpay.parse_refund_notification(raw_notification(request)).amount_minor)
        except InvalidNotification:
            outcomes.append("refused")
    if mode == "forge":
        assert outcomes == [1, "refused", "refused", 300]
    elif mode == "duplicate":
        assert outcomes == [300, 300]
    else:
        assert outcomes == ["refused", 300]
    assert logged["kind"] == "refund"


# -- calls ----------------------------------------------------------------------


def _call(wx, target: str, out_trade_no: str):
    """The raw call a target covers, for a paid trade (refund R-1 of 100 fen)."""
    if target == "wechatpay.native":
        return wx.call("POST", "/v3/pay/transactions/native", payload={
            "appid": "wx8888888888888888", "mchid": MCHID, "description": "t", "out_trade_no": new_out_trade_no(),
            "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 1},
        })  # fmt: skip
    if target == "wechatpay.h5":
        return wx.call("POST", "/v3/pay/transactions/h5", payload={
            "appid": "wx8888888888888888", "mchid": MCHID, "description": "t", "out_trade_no": new_out_trade_no(),
            "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 1},
            "scene_info": {"payer_client_ip": "203.0.113.7", "h5_info": {"type": "Wap"}},
        })  # fmt: skip
    if target == "wechatpay.query":
        return wx.call("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}", query=f"mchid={MCHID}")
    if target == "wechatpay.close":
        return wx.call("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close", payload={"mchid": MCHID})
    if target == "wechatpay.refund":
        return wx.call("POST", "/v3/refund/domestic/refunds", payload={
            "out_trade_no": out_trade_no, "out_refund_no": "R-1", "amount": {"refund": 100, "total": 8888,
                                                                             "currency": "CNY"},
        })  # fmt: skip
    if target == "wechatpay.refund_query":
        return wx.call("GET", "/v3/refund/domestic/refunds/R-1")
    return wx.call("GET", "/v3/bill/tradebill", query="bill_date=2020-01-01&bill_type=ALL&tar_type=GZIP")


CALL_TARGETS = ["wechatpay.native", "wechatpay.h5", "wechatpay.query", "wechatpay.close", "wechatpay.refund",
                "wechatpay.refund_query", "wechatpay.bill"]  # fmt: skip


@pytest.mark.parametrize("target", CALL_TARGETS)
def test_an_error_rule_answers_the_chosen_error_once(sandbox, wechatpay, wx, wx_merchant, out_trade_no, target):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 100))
    add_fault(sandbox, target=target, mode="error")
    add_fault(sandbox, target=target, mode="error", code="FREQUENCY_LIMITED", message="慢一点")

    system_error = _call(wx, target, out_trade_no)
    limited = _call(wx, target, out_trade_no)
    normal = _call(wx, target, out_trade_no)

    assert (system_error.status_code, system_error.json()["code"]) == (500, "SYSTEM_ERROR")
    assert limited.status_code == 429 and limited.json() == {"code": "FREQUENCY_LIMITED", "message": "慢一点"}
    assert normal.status_code < 500 and normal.status_code != 429


def test_an_error_rule_may_set_the_status_and_aim_at_one_trade(sandbox, wechatpay, wx_merchant):
    aimed, spared = new_out_trade_no(), new_out_trade_no()
    prepay(wechatpay, wx_merchant, aimed)
    prepay(wechatpay, wx_merchant, spared)
    add_fault(sandbox, target="wechatpay.query", mode="error", code="BANK_ERROR", status=503, out_trade_no=aimed)

    assert wechatpay.query_payment(trade_ref(spared)).status == TradeStatus.PENDING
    with pytest.raises(GatewayUnavailable) as unavailable:
        wechatpay.query_payment(trade_ref(aimed))
    assert "503 BANK_ERROR" in str(unavailable.value)


def test_not_enough_refuses_the_refund_until_retried(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="error", code="NOT_ENOUGH")
    request = refund_request(wx_merchant, out_trade_no, "R-1", 100)

    with pytest.raises(GatewayUnavailable):
        wechatpay.refund(request)
    assert wechat_trade(sandbox, out_trade_no)["refund_count"] == 0
    assert wechatpay.refund(request).status == GatewayRefundStatus.PROCESSING


def test_a_timeout_rule_answers_too_late_and_does_not_refund(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="timeout", seconds=2)
    request = refund_request(wx_merchant, out_trade_no, "R-1", 100)

    with pytest.raises(GatewayUnavailable, match="timed out"):
        make_gateway(sandbox, read_timeout=0.5).refund(request)

    assert wechat_trade(sandbox, out_trade_no)["refund_count"] == 0
    assert wechatpay.refund(request).amount_minor == 100


def test_a_slow_answer_within_the_client_timeout_is_a_system_error(sandbox, wx, out_trade_no):
    add_fault(sandbox, target="wechatpay.query", mode="timeout", seconds=0.05)

    response = _call(wx, "wechatpay.query", out_trade_no)

    assert (response.status_code, response.json()["code"]) == (500, "SYSTEM_ERROR")


def test_a_slow_rule_does_the_native_prepay_and_answers_normally(sandbox, wechatpay, wx_merchant, out_trade_no):
    """Slow but successful: the code_url comes, signed as usual, and the trade exists."""
    add_fault(sandbox, target="wechatpay.native", mode="slow", seconds=0.05)

    action = prepay(wechatpay, wx_merchant, out_trade_no)

    assert "/wechatpay/scan/" in action.qr_content
    assert wechat_trade(sandbox, out_trade_no)["out_trade_no"] == out_trade_no
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == 1


def test_a_slow_answer_comes_too_late_for_a_short_client_timeout_but_the_prepay_is_done(
    sandbox, wx_merchant, out_trade_no
):
    add_fault(sandbox, target="wechatpay.native", mode="slow", seconds=2)

    with pytest.raises(GatewayUnavailable, match="timed out"):
        prepay(make_gateway(sandbox, read_timeout=0.5), wx_merchant, out_trade_no)

    assert sandbox.wait_for(lambda: _known_trade(sandbox, out_trade_no))


def _known_trade(sandbox, out_trade_no: str) -> bool:
    try:
        return wechat_trade(sandbox, out_trade_no)["out_trade_no"] == out_trade_no
    except SandboxControlError:
        return False


def test_crash_after_refunds_but_drops_the_connection(sandbox, wechatpay, wx_merchant, out_trade_no):
    """WeChat did it but the shop never heard back; the retry is a replay."""
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="crash_after")
    request = refund_request(wx_merchant, out_trade_no, "R-1", 2000)

    with pytest.raises(GatewayUnavailable):
        wechatpay.refund(request)
    crashed = wechat_trade(sandbox, out_trade_no)
    replay = wechatpay.refund(request)

    assert crashed["refund_count"] == 1
    assert replay.gateway_refund_id == crashed["refunds"][0]["refund_id"]
    after = wechat_trade(sandbox, out_trade_no)
    assert (after["refund_count"], after["refunds"][0]["requests"]) == (1, 2)


def test_crash_after_with_seconds_answers_too_late(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="crash_after", seconds=2)

    with pytest.raises(GatewayUnavailable, match="timed out"):
        make_gateway(sandbox, read_timeout=0.5).refund(refund_request(wx_merchant, out_trade_no, "R-1", 100))

    assert sandbox.wait_for(lambda: wechat_trade(sandbox, out_trade_no)["refund_count"] == 1)


def test_a_processing_rule_keeps_the_refund_processing_for_n_queries(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="processing", queries=3)

    accepted = wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 100))
    states = [wechatpay.query_refund(refund_ref(out_trade_no, "R-1")).status for _ in range(4)]

    assert accepted.status == GatewayRefundStatus.PROCESSING
    assert states == [GatewayRefundStatus.PROCESSING] * 3 + [GatewayRefundStatus.SUCCEEDED]
    wait_for_refund_notifications(sandbox, wx_merchant, out_trade_no, 1)


def test_a_processing_rule_of_zero_settles_at_once(sandbox, wechatpay, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="processing", queries=0)

    assert wechatpay.refund(refund_request(wx_merchant, out_trade_no, "R-1", 100)).status == GatewayRefundStatus.SUCCEEDED


def test_a_connection_drop_is_seen_by_a_raw_client_too(sandbox, wechatpay, wx, wx_merchant, out_trade_no):
    paid_trade(sandbox, wechatpay, wx_merchant, out_trade_no)
    add_fault(sandbox, target="wechatpay.refund", mode="crash_after")

    with pytest.raises(requests.ConnectionError):
        _call(wx, "wechatpay.refund", out_trade_no)


# -- the rules themselves -------------------------------------------------------


@pytest.mark.parametrize(
    "rule",
    [
        {"target": "wechatpay.refund_notify", "mode": "error"},
        {"target": "wechatpay.query", "mode": "crash_after"},
        {"target": "wechatpay.query", "mode": "processing"},
        {"target": "wechatpay.query", "mode": "bad_hash"},
        {"target": "wechatpay.refund", "mode": "error", "status": 200},
        {"target": "wechatpay.notify", "mode": "forge", "variants": ["made_up"]},
        {"target": "wechatpay.notify", "mode": "forge", "variants": ["wrong_app_id"]},
        {"target": "wechatpay.bill_content", "mode": "omit"},
        {"target": "wechatpay.bill_content", "mode": "extra_line", "amount_minor": 100},
    ],
)
def test_an_invalid_rule_is_refused(sandbox, rule):
    with pytest.raises(SandboxControlError) as refused:
        add_fault(sandbox, **rule)

    assert refused.value.status == 400


def test_the_config_lists_every_wechatpay_target(sandbox):
    targets = sandbox.control("GET", "config")["fault_targets"]

    assert {"drop", "delay", "duplicate", "reorder", "forge", "sign_probe"} <= set(targets["wechatpay.notify"])
    assert targets["wechatpay.refund_notify"] == targets["wechatpay.notify"]
    for target in CALL_TARGETS:
        assert {"error", "timeout"} <= set(targets[target])
    assert {"crash_after", "processing"} <= set(targets["wechatpay.refund"])
    assert {"bad_hash", "expired_link", "truncate", "wrong_encoding"} <= set(targets["wechatpay.bill"])
    assert set(targets["wechatpay.bill_content"]) == {"omit", "duplicate", "alter_amount", "extra_line",
                                                      "alter_currency", "foreign_merchant", "bad_totals"}
    assert "sign_probe" not in targets["alipay.notify"]
