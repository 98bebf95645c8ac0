"""alipay.trade.query and alipay.trade.close (A7)."""
import pytest

from tests.sandbox.flows import paid_trade, precreate
from tests.sandbox_process import SandboxControlError

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]


def test_query_by_trade_no_wins_over_out_trade_no(sandbox, alipay, merchant, out_trade_no):
    trade = paid_trade(sandbox, alipay, merchant, out_trade_no)

    answer = alipay.call("alipay.trade.query", {"trade_no": trade["trade_no"], "out_trade_no": "SOMETHING_ELSE"})

    assert answer.node["out_trade_no"] == out_trade_no
    assert answer.node["buyer_logon_id"].count("*") >= 3


def test_query_lists_fund_bills_when_asked(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no, amount="20.00")

    plain = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no})
    detailed = alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no, "query_options": ["fund_bill_list"]})

    assert "fund_bill_list" not in plain.node
    assert detailed.node["fund_bill_list"] == [{"amount": "20.00", "fund_channel": "ALIPAYACCOUNT"}]


def test_close_an_unpaid_trade(sandbox, alipay, merchant, out_trade_no):
    precreate(alipay, merchant, out_trade_no)
    trade = sandbox.control("POST", f"alipay/trades/{out_trade_no}/scan")

    closed = alipay.call("alipay.trade.close", {"out_trade_no": out_trade_no})
    again = alipay.call("alipay.trade.close", {"out_trade_no": out_trade_no})

    assert (closed.code, closed.node["trade_no"]) == ("10000", trade["trade_no"])
    assert again.code == "10000"
    assert alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no}).node["trade_status"] == "TRADE_CLOSED"
    with pytest.raises(SandboxControlError) as refused:
        sandbox.control("POST", f"alipay/trades/{out_trade_no}/pay")
    assert refused.value.status == 409


def test_closing_a_paid_trade_is_a_status_error(sandbox, alipay, merchant, out_trade_no):
    paid_trade(sandbox, alipay, merchant, out_trade_no)

    answer = alipay.call("alipay.trade.close", {"out_trade_no": out_trade_no})

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.TRADE_STATUS_ERROR")
    assert sandbox.control("GET", f"alipay/trades/{out_trade_no}")["status"] == "paid"


def test_closing_a_never_created_trade_answers_not_exist_and_blocks_its_number(
    sandbox, alipay, merchant, out_trade_no, shopper
):
    answer = alipay.call("alipay.trade.close", {"out_trade_no": out_trade_no})

    assert (answer.code, answer.sub_code) == ("40004", "ACQ.TRADE_NOT_EXIST")
    assert alipay.call("alipay.trade.query", {"out_trade_no": out_trade_no}).sub_code == "ACQ.TRADE_NOT_EXIST"
    later = alipay.call(
        "alipay.trade.precreate", {"out_trade_no": out_trade_no, "total_amount": "1.00", "subject": "t"}
    )
    assert later.sub_code == "ACQ.TRADE_HAS_CLOSE"


def test_closing_a_shown_but_unopened_trade_blocks_its_page(sandbox, alipay, merchant, out_trade_no, shopper):
    qr_code = precreate(alipay, merchant, out_trade_no)["qr_code"]

    answer = alipay.call("alipay.trade.close", {"out_trade_no": out_trade_no})
    page = shopper.open(qr_code)

    assert answer.sub_code == "ACQ.TRADE_NOT_EXIST"
    assert page.state == "voided" and not page.has("sandbox-pay")
    assert shopper.submit_stale(page, "pay").status_code == 409
