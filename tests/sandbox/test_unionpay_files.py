"""The sandbox's UnionPay settlement files (B11), fetched and parsed by the shop's adapter."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.exceptions import GatewayUnavailable, NoStatement, NoStatementReason
from payments.gateways.base import RefundReference, StatementLineKind
from payments.gateways.unionpay.formats import BEIJING
from tests.sandbox.unionpay_client import new_order_id, pay, refund_request

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-unionpay")]
A_DAY = 24 * 3600


@pytest.fixture(autouse=True)
def noon(sandbox):
    """The sandbox clock at noon today (Beijing), far from the 23:00 cut-off; returns the offset."""
    now = timezone.now().astimezone(BEIJING)
    offset = (now.replace(hour=12, minute=0, second=0, microsecond=0) - now).total_seconds()
    sandbox.control("POST", "settings", {"clock_offset_seconds": offset})
    return offset


def settlement_day(moment) -> object:
    """Today on the sandbox clock (pinned at noon): before the cut-off, today's settlement day."""
    return moment.astimezone(BEIJING).date()


def paid_and_refunded(sandbox, unionpay, merchant):
    order_id = new_order_id()
    # Payable for two days: the sandbox clock is pinned up to half a day away.
    paid = pay(sandbox, unionpay, merchant, order_id, expires_in=timedelta(days=2))
    request = refund_request(merchant, order_id, order_id.replace("P01", "R01"), 3000, query_id=paid.query_id)
    unionpay.refund(request)
    sandbox.control("POST", f"unionpay/refunds/{request.out_refund_no}/settle")
    return order_id, paid, request


def test_no_file_until_the_settlement_day_is_over(sandbox, unionpay, up_merchant):
    paid_and_refunded(sandbox, unionpay, up_merchant)
    with pytest.raises(NoStatement) as refused:
        unionpay.fetch_statement(settlement_day(timezone.now()))
    assert refused.value.reason == NoStatementReason.EITHER


def test_the_file_holds_the_days_consumes_and_refunds_with_fees_and_totals(sandbox, unionpay, up_merchant, noon):
    order_id, paid, refund = paid_and_refunded(sandbox, unionpay, up_merchant)
    day = settlement_day(timezone.now())
    sandbox.control("POST", "settings", {"clock_offset_seconds": noon + A_DAY})

    statement = unionpay.fetch_statement(day)
    lines = list(unionpay.parse_statement(statement))

    assert statement.filename == f"898110000000001_{day:%Y%m%d}.zip"
    payment, refunded = sorted(lines, key=lambda line: line.kind != StatementLineKind.PAYMENT)
    assert (payment.out_trade_no, payment.gateway_trade_no, payment.amount_minor, payment.fee_minor) == (
        order_id, paid.query_id, 8800, 53)
    assert (refunded.out_refund_no, refunded.gateway_trade_no, refunded.amount_minor, refunded.fee_minor) == (
        refund.out_refund_no, paid.query_id, 3000, -18)
    assert refunded.raw["merCharge"].startswith("C") and refunded.raw["settleAmt"].startswith("D")
    assert payment.raw["merCharge"] == "D000000000053" and payment.raw["settleAmt"] == "C000000008747"
    with pytest.raises(NoStatement):
        unionpay.fetch_statement(day - timedelta(days=3))


def test_chosen_discrepancies_reach_the_file_and_its_totals_follow(sandbox, unionpay, up_merchant, noon):
    order_id, paid, _refund = paid_and_refunded(sandbox, unionpay, up_merchant)
    day = settlement_day(timezone.now())
    for rule in ({"mode": "alter_amount", "out_trade_no": order_id, "delta_minor": 100},
                 {"mode": "extra_line", "amount_minor": 555, "bill_date": day.isoformat()},
                 {"mode": "omit", "out_trade_no": order_id, "kind": "refund"}):
        sandbox.control("POST", "faults", {"target": "unionpay.file_content", **rule})
    sandbox.control("POST", "settings", {"clock_offset_seconds": noon + A_DAY})

    lines = list(unionpay.parse_statement(unionpay.fetch_statement(day)))

    assert sorted((line.kind, line.amount_minor) for line in lines) == [
        (StatementLineKind.PAYMENT, 555), (StatementLineKind.PAYMENT, 8900)]
    assert {line.out_trade_no for line in lines} >= {order_id}


def test_file_transfer_faults(sandbox, unionpay, up_merchant, noon):
    paid_and_refunded(sandbox, unionpay, up_merchant)
    day = settlement_day(timezone.now())
    sandbox.control("POST", "settings", {"clock_offset_seconds": noon + A_DAY})
    sandbox.control("POST", "faults", {"target": "unionpay.file", "mode": "error", "code": "06"})
    with pytest.raises(GatewayUnavailable):
        unionpay.fetch_statement(day)
    assert len(list(unionpay.parse_statement(unionpay.fetch_statement(day)))) == 2


def test_a_refund_query_of_the_refund_in_the_file_says_it_succeeded(sandbox, unionpay, up_merchant):
    _order_id, paid, refund = paid_and_refunded(sandbox, unionpay, up_merchant)
    state = unionpay.query_refund(RefundReference(refund.out_refund_no, refund.requested_at, paid.reference))
    assert (state.status.value, state.amount_minor) == ("succeeded", 3000)
