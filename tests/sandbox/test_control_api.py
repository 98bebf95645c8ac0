"""The control API: health, reset, settings and the trade view."""
import pytest
import requests

from tests.sandbox.flows import paid_trade, precreate, refund
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def test_health_answers_ok(sandbox):
    response = requests.get(sandbox.url("/_control/health"), timeout=5)

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_config_names_the_identities_and_fault_targets(sandbox):
    config = sandbox.control("GET", "config")

    assert config["alipay"]["app_id"] == "2021000149600001"
    assert config["alipay"]["seller_id"] == "2088721000000001"
    assert config["alipay"]["gateway_url"] == sandbox.alipay_gateway_url
    assert config["keys_dir"] == str(sandbox.keys_dir.resolve())
    assert "crash_after" in config["fault_targets"]["alipay.refund"]
    assert config["providers"] == ["alipay", "unionpay", "wechatpay"]
    assert config["wechatpay"] == {
        "mchid": "1900000001",
        "appid": "wx8888888888888888",
        "cert_serial_no": "3775B6A45ACD588826D15E583A95F5DD00000001",
        "public_key_id": "PUB_KEY_ID_0119000000002025112200000000000001",
        "api_v3_key": "SandboxApiV3KeyNotASecret0000001",
        "api_base": sandbox.url("/wechatpay"),
    }


def test_the_trade_view_shows_amounts_and_refunds(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="12.50")
    refund(alipay, out_trade_no, "2.50", "R1", refund_reason="缺货")

    trade = sandbox.control("GET", f"alipay/trades/{out_trade_no}")

    assert (trade["amount_minor"], trade["amount"]) == (1250, "12.50")
    assert (trade["refunded_minor"], trade["refunded"], trade["refund_count"]) == (250, "2.50", 1)
    assert trade["refunds"][0] == {
        **trade["refunds"][0],
        "out_refund_no": "R1",
        "amount_minor": 250,
        "amount": "2.50",
        "status": "succeeded",
        "reason": "缺货",
    }
    assert (trade["status"], trade["trade_status"]) == ("paid", "TRADE_SUCCESS")
    assert trade["notify_url"] == merchant.notify_url
    assert len(trade["trade_no"]) == 28
    listed = sandbox.control("GET", "alipay/trades")["trades"]
    assert [item["out_trade_no"] for item in listed] == [out_trade_no]


def test_reset_forgets_trades_and_faults(sandbox, alipay, merchant, out_trade_no):
    precreate(alipay, merchant, out_trade_no)
    sandbox.control("POST", "faults", {"target": "alipay.query", "mode": "error"})

    sandbox.control("POST", "reset")

    assert sandbox.control("GET", "faults")["faults"] == []
    with pytest.raises(SandboxControlError) as missing:
        sandbox.control("GET", f"alipay/trades/{out_trade_no}")
    assert missing.value.status == 404


def test_settings_change_at_runtime_and_bad_values_are_refused(sandbox):
    changed = sandbox.control("POST", "settings", {"time_scale": 0.5, "notify_schedules": {"alipay": [1, 2]}})

    assert changed["time_scale"] == 0.5
    assert changed["notify_schedules"]["alipay"] == [1.0, 2.0]
    for bad in (
        {"time_scale": 0},
        {"time_scale": "fast"},
        {"notify_schedules": {"paypal": []}},
        {"color": 1},
        {"refund_processing_queries": {"wechatpay": -1}},
        {"refund_processing_queries": {"paypal": 1}},
    ):
        with pytest.raises(SandboxControlError) as refused:
            sandbox.control("POST", "settings", bad)
        assert refused.value.status == 400
    assert sandbox.control("GET", "settings")["time_scale"] == 0.5
    restored = sandbox.control("POST", "reset", {"settings": True})["settings"]
    assert restored["time_scale"] == 0.001
    assert restored["notify_schedules"]["alipay"] == [240, 600, 600, 3600, 7200, 21600, 54000]
    assert restored["refund_processing_queries"] == {"alipay": 0, "wechatpay": 1, "unionpay": 1}


def test_shopper_actions_on_unknown_or_paid_trades_are_refused(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no)

    for path, status in ((f"alipay/trades/{out_trade_no}/pay", 409), ("alipay/trades/NOPE/pay", 404)):
        with pytest.raises(SandboxControlError) as refused:
            sandbox.control("POST", path)
        assert refused.value.status == status


def test_unknown_pages_are_not_found(sandbox):
    assert requests.get(sandbox.url("/alipay/cashier/nope/"), timeout=5).status_code == 404
    assert requests.get(sandbox.url("/alipay/bills/nope/x.zip"), timeout=5).status_code == 404
