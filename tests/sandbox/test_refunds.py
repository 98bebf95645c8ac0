"""alipay.trade.refund and fastpay.refund.query (A7, A10) and the refund notifications (A8)."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.sandbox.alipay_client import sdk_verifies
from tests.sandbox.flows import paid_trade, precreate, refund

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def test_a_partial_refund_moves_money_once_and_notifies(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")

    answer = sdk.api_alipay_trade_refund(refund_amount="30.00", out_trade_no=out_trade_no, out_request_no="R1")

    assert (answer["code"], answer["fund_change"], answer["refund_fee"]) == ("10000", "Y", "30.00")
    payment, refund_notification = merchant.wait_for_notifications(out_trade_no, 2)
    fields = refund_notification.fields
    assert sdk_verifies(sdk, fields)
    assert fields["trade_status"] == "TRADE_SUCCESS"
    assert (fields["refund_fee"], fields["out_biz_no"]) == ("30.00", "R1")
    assert "gmt_refund" in fields and "gmt_close" not in fields
    assert fields["notify_id"] != payment.fields["notify_id"]
    trade = sandbox.control("GET", f"alipay/trades/{out_trade_no}")
    assert (trade["refund_count"], trade["refunded_minor"], trade["refunded"]) == (1, 3000, "30.00")


def test_the_same_request_number_and_amount_never_refunds_twice(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")

    first = sdk.api_alipay_trade_refund(refund_amount="30.00", out_trade_no=out_trade_no, out_request_no="R1")
    replay = sdk.api_alipay_trade_refund(refund_amount="30.00", out_trade_no=out_trade_no, out_request_no="R1")

    assert (first["fund_change"], replay["fund_change"]) == ("Y", "N")
    assert (replay["code"], replay["refund_fee"]) == ("10000", "30.00")
    trade = sandbox.control("GET", f"alipay/trades/{out_trade_no}")
    assert trade["refund_count"] == 1
    assert trade["refunds"][0]["requests"] == 2
    merchant.wait_for_notifications(out_trade_no, 2)
    assert len(sandbox.control("GET", f"notifications?out_trade_no={out_trade_no}&kind=refund")["notifications"]) == 1


def test_concurrent_identical_refunds_move_money_once(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: refund(alipay, out_trade_no, "10.00", "R-RACE"), range(6)))

    assert sorted(answer.node["fund_change"] for answer in answers) == ["N"] * 5 + ["Y"]
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1


def test_the_same_request_number_with_another_amount_is_discordant(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")
    refund(alipay, out_trade_no, "30.00", "R1")

    answer = refund(alipay, out_trade_no, "31.00", "R1")

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.DISCORDANT_REPEAT_REQUEST")
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refunded_minor"] == 3000


def test_refunding_more_than_is_left_is_refused(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")
    refund(alipay, out_trade_no, "60.00", "R1")

    answer = refund(alipay, out_trade_no, "40.01", "R2")

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL")
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["refund_count"] == 1


def test_refund_fee_is_cumulative_and_a_full_refund_closes_the_trade(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")

    first = refund(alipay, out_trade_no, "60.00", "R1")
    last = refund(alipay, out_trade_no, "40.00", "R2")

    assert (first.node["refund_fee"], last.node["refund_fee"]) == ("60.00", "100.00")
    closing = merchant.wait_for_notifications(out_trade_no, 3)[2].fields
    assert sdk_verifies(sdk, closing)
    assert (closing["trade_status"], closing["refund_fee"], closing["out_biz_no"]) == ("TRADE_CLOSED", "100.00", "R2")
    assert "gmt_close" in closing and "gmt_refund" in closing
    queried = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no})
    assert queried.node["trade_status"] == "TRADE_CLOSED"
    more = refund(alipay, out_trade_no, "0.01", "R3")
    assert more.sub_code == "ACQ.TRADE_STATUS_ERROR"
    assert refund(alipay, out_trade_no, "40.00", "R2").node["fund_change"] == "N"


def test_an_unpaid_trade_cannot_be_refunded(sandbox, alipay, merchant, out_trade_no):
    precreate(alipay, merchant, out_trade_no)
    never_opened = refund(alipay, out_trade_no, "1.00", "R1")
    sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")

    waiting = refund(alipay, out_trade_no, "1.00", "R1")

    assert never_opened.sub_code == "ACQ.TRADE_NOT_EXIST"
    assert (waiting.code, waiting.sub_code) == ("40004", "ACQ.TRADE_STATUS_ERROR")


def test_without_a_request_number_only_a_full_refund_is_allowed(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="10.00")
    partial = alipay.call("alipay.trade.refund", {"out_trade_no": out_trade_no, "refund_amount": "1.00"})

    full = alipay.call("alipay.trade.refund", {"out_trade_no": out_trade_no, "refund_amount": "10.00"})

    assert partial.sub_code == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    assert full.node["fund_change"] == "Y"
    refund_query = alipay.call(
        "alipay.trade.fastpay.refund.query", {"out_trade_no": out_trade_no, "out_request_no": out_trade_no}
    )
    assert refund_query.node["refund_status"] == "REFUND_SUCCESS"


def test_refund_query_reports_success_or_nothing(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="100.00")
    refund(alipay, out_trade_no, "12.34", "R1", refund_reason="破损 broken cup")

    done = sdk.api_alipay_trade_fastpay_refund_query("R1", out_trade_no=out_trade_no)
    unknown = sdk.api_alipay_trade_fastpay_refund_query("R-NEVER", out_trade_no=out_trade_no)
    detailed = alipay.call(
        "alipay.trade.fastpay.refund.query",
        {"out_trade_no": out_trade_no, "out_request_no": "R1", "query_options": ["gmt_refund_pay"]},
    )

    assert (done["refund_status"], done["refund_amount"], done["total_amount"]) == ("REFUND_SUCCESS", "12.34", "100.00")
    assert done["refund_reason"] == "破损 broken cup"
    assert unknown["code"] == "10000"
    assert "refund_status" not in unknown and "refund_amount" not in unknown
    assert "gmt_refund_pay" in detailed.node and "gmt_refund_pay" not in done


def test_a_processing_refund_settles_by_time_when_asked_and_notifies(sandbox, sdk, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="50.00")
    sandbox.control("POST", "faults", {"target": "alipay.refund", "mode": "processing", "queries": 100})
    # Null by default for Alipay; 5 ms at the tests' time scale.
    sandbox.control("POST", "settings", {"refund_settle_after_seconds": {"alipay": 5}})

    accepted = refund(alipay, out_trade_no, "20.00", "R1")
    # No query: the sandbox settles it by itself, as a settling query would.
    notification = merchant.wait_for_notifications(out_trade_no, 2)[1]

    assert (accepted.code, accepted.node["fund_change"]) == ("10000", "N")
    fields = notification.fields
    assert sdk_verifies(sdk, fields)
    assert (fields["trade_status"], fields["refund_fee"], fields["out_biz_no"]) == ("TRADE_SUCCESS", "20.00", "R1")
    trade = sandbox.control("GET", f"alipay/trades/{out_trade_no}")
    assert (trade["refund_count"], trade["refunded_minor"]) == (1, 2000)
    queried = alipay.call("alipay.trade.fastpay.refund.query", {"out_trade_no": out_trade_no, "out_request_no": "R1"})
    assert queried.node["refund_status"] == "REFUND_SUCCESS"
    assert len(merchant.notifications(out_trade_no)) == 2
