"""Reconciliation end to end: the sandbox's bills in each provider's real format, over real HTTP.

Every discrepancy kind is put into a bill through the sandbox's /_control/
and found by the real adapter and matching; a clean day finds nothing; a
lost notification and a payment on a closed order are healed through the
payment services; bills that go wrong end `failed` with their reason and
nothing stored.
"""
import logging
from datetime import datetime, time, timedelta

import pytest

from orders.models import OrderStatus
from payments.gateways.base import BEIJING
from payments.models import Payment, PaymentStatus, RefundRequired
from reconciliation.models import Discrepancy, StatementLine, StatementStatus
from refunds.models import Refund, RefundStatus
from tests.polling import wait_for
from tests.reconciliation.sandbox_support import (
    GATEWAYS,
    closed_here,
    found,
    on_the_sandbox_day,
    paid,
    paid_without_notification,
    reconcile,
    refunded,
    yesterday,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_clean_day_finds_nothing(shop_sandbox, gateway, caplog):
    caplog.set_level(logging.INFO, logger="reconciliation.services.loading")
    with on_the_sandbox_day(shop_sandbox, yesterday()):
        first = paid(shop_sandbox, gateway, 8800)
        paid(shop_sandbox, gateway, 1999)
        refunded(shop_sandbox, first, 800)

    run, statement = reconcile(gateway)

    assert (run.outcome, statement.status) == ("matched", StatementStatus.MATCHED)
    assert found(statement) == set()
    assert (statement.line_count, statement.matched_count) == (3, 3)
    assert (statement.bill_payment_count, statement.bill_payment_minor) == (2, 10799)
    assert (statement.bill_refund_count, statement.bill_refund_minor) == (1, 800)
    assert statement.local_payment_minor == 10799
    assert statement.bill_fee_minor == (65 - 5 if gateway == "wechatpay" else 0)  # 0.6% at WeChat Pay
    # Both providers' bills are read by their bulk readers, not line by line.
    assert "line by line" not in caplog.text


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_every_discrepancy_kind_is_found_from_the_sandbox_bill(shop_sandbox, gateway):
    sandbox = shop_sandbox
    day = yesterday()
    with on_the_sandbox_day(sandbox, day):
        clean = paid(sandbox, gateway, 1000)
        omitted = paid(sandbox, gateway, 1100)
        altered = paid(sandbox, gateway, 1200)
        doubled = paid(sandbox, gateway, 1300)
        other_currency = paid(sandbox, gateway, 1400)
        late = paid_without_notification(sandbox, gateway, 1500)
    content = f"{gateway}.bill_content"
    for rule in ({"mode": "omit", "out_trade_no": omitted.out_trade_no},
                 {"mode": "alter_amount", "out_trade_no": altered.out_trade_no, "delta_minor": 7},
                 {"mode": "duplicate", "out_trade_no": doubled.out_trade_no},
                 {"mode": "extra_line", "amount_minor": 4200, "bill_date": day.isoformat(),
                  "out_trade_no": "STRANGER1"}):
        sandbox.control("POST", "faults", {"target": content, **rule})
    if gateway == "wechatpay":
        sandbox.control("POST", "faults", {"target": content, "mode": "alter_currency",
                                           "out_trade_no": other_currency.out_trade_no, "currency": "USD"})
    else:
        # Alipay's bill has no currency column (A11): the bill is CNY, so a
        # currency mismatch is one of ours in another currency.
        Payment.objects.filter(pk=other_currency.pk).update(currency="HKD")
    closed_here(late)

    run, statement = reconcile(gateway)

    assert run.outcome == "matched"
    assert found(statement) == {
        ("missing_here", "STRANGER1", "open"),
        ("missing_at_gateway", omitted.out_trade_no, "open"),
        ("amount_mismatch", altered.out_trade_no, "open"),
        ("duplicate", doubled.out_trade_no, "open"),
        ("currency_mismatch", other_currency.out_trade_no, "open"),
        # Healed at once: the query says paid, the late-payment refund follows.
        ("status_mismatch", late.out_trade_no, "healed"),
    }
    assert clean.out_trade_no not in {reference for _kind, reference, _status in found(statement)}
    altered_row = Discrepancy.objects.get(kind="amount_mismatch")
    assert (altered_row.bill_amount_minor, altered_row.local_amount_minor) == (1207, 1200)
    assert Discrepancy.objects.get(kind="duplicate").occurrences == 2
    late.refresh_from_db()
    assert (late.status, late.refund_required) == (PaymentStatus.SUCCEEDED, RefundRequired.LATE)


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_payment_whose_notification_was_lost_is_healed(shop_sandbox, gateway):
    sandbox = shop_sandbox
    with on_the_sandbox_day(sandbox, yesterday()):
        payment = paid_without_notification(sandbox, gateway, 2300)
    # No notification came, and the janitor has not asked yet.
    assert Payment.objects.get(pk=payment.pk).status == PaymentStatus.PENDING

    run, statement = reconcile(gateway)

    assert found(statement) == {("missing_here", payment.out_trade_no, "healed")}
    payment.refresh_from_db()
    assert (payment.status, payment.order.status) == (PaymentStatus.SUCCEEDED, OrderStatus.PAID)
    evidence = Discrepancy.objects.get().evidence
    assert (evidence["asked"], evidence["gateway_status"], evidence["gateway_trade_no"]) == (
        "payment query", "succeeded", payment.gateway_trade_no)


def test_a_paid_line_for_a_closed_order_refunds_once_at_the_gateway(shop_sandbox):
    sandbox = shop_sandbox
    with on_the_sandbox_day(sandbox, yesterday()):
        payment = paid_without_notification(sandbox, "alipay", 3300)
    closed_here(payment)

    reconcile("alipay")
    refund = wait_for(lambda: Refund.objects.filter(payment=payment, status=RefundStatus.SUCCEEDED).first(),
                      what="the late-payment refund")
    reconcile("alipay", force=True)

    assert (refund.automatic, refund.amount_minor) == (True, 3300)
    assert Refund.objects.filter(payment=payment).count() == 1
    at_sandbox = sandbox.control("GET", f"alipay/trades/{payment.out_trade_no}")
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, 3300)


# -- bills that go wrong -----------------------------------------------------------------


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_bill_not_ready_waits_and_an_expired_link_is_replaced(shop_sandbox, gateway):
    sandbox = shop_sandbox
    with on_the_sandbox_day(sandbox, yesterday()):
        paid(sandbox, gateway, 1000)
    not_ready = ({"code": "40004", "sub_code": "isp.bill_not_exist"} if gateway == "alipay"
                 else {"code": "STATEMENT_CREATING", "status": 400})
    sandbox.control("POST", "faults", {"target": f"{gateway}.bill", "mode": "error", **not_ready})

    # The morning after, well before RECONCILIATION_NO_BILL_AFTER: at the real time of
    # day a run after 18:00 Beijing would give the bill up as no_bill.
    morning_after = datetime.combine(yesterday() + timedelta(days=1), time(10, 5), tzinfo=BEIJING)
    run, statement = reconcile(gateway, now=morning_after)
    assert (run.outcome, statement.status) == ("not_ready", StatementStatus.PENDING)
    assert "no bill yet" in statement.failure_reason and statement.next_attempt_at is not None

    sandbox.control("POST", "faults", {"target": f"{gateway}.bill", "mode": "expired_link"})
    run, statement = reconcile(gateway, now=morning_after)
    assert (run.outcome, statement.status, statement.line_count) == ("matched", StatementStatus.MATCHED, 1)


BAD_BILLS = [
    ("wechatpay", {"target": "wechatpay.bill", "mode": "bad_hash"}, "is not the announced"),
    ("alipay", {"target": "alipay.bill", "mode": "truncate"}, "cut short"),
    ("wechatpay", {"target": "wechatpay.bill", "mode": "truncate"}, "does not gunzip"),
    ("alipay", {"target": "alipay.bill", "mode": "wrong_encoding"}, "not GBK"),
    ("wechatpay", {"target": "wechatpay.bill", "mode": "wrong_encoding"}, "not UTF-8"),
    ("alipay", {"target": "alipay.bill_content", "mode": "foreign_merchant", "day": True}, "not ours"),
    ("wechatpay", {"target": "wechatpay.bill_content", "mode": "foreign_merchant", "trade": True}, "not ours"),
    ("alipay", {"target": "alipay.bill_content", "mode": "bad_totals", "delta_minor": 100, "day": True},
     "交易合计"),
    ("wechatpay", {"target": "wechatpay.bill_content", "mode": "bad_totals", "delta_minor": 100, "day": True},
     "应结订单总金额"),
]


@pytest.mark.parametrize(("gateway", "fault", "reason"), BAD_BILLS,
                         ids=[f"{gateway}-{fault['mode']}" for gateway, fault, _reason in BAD_BILLS])
def test_a_bad_bill_fails_with_its_reason_and_nothing_half_stored(shop_sandbox, gateway, fault, reason):
    sandbox = shop_sandbox
    day = yesterday()
    with on_the_sandbox_day(sandbox, day):
        payment = paid(sandbox, gateway, 1000)
        paid(sandbox, gateway, 2000)
    rule = {key: value for key, value in fault.items() if key not in ("day", "trade")}
    if fault.get("day"):
        rule["bill_date"] = day.isoformat()
    if fault.get("trade"):
        rule["out_trade_no"] = payment.out_trade_no
    sandbox.control("POST", "faults", rule)

    run, statement = reconcile(gateway)

    assert (run.outcome, statement.status) == ("failed", StatementStatus.FAILED)
    assert reason in statement.failure_reason
    assert StatementLine.objects.filter(statement=statement).count() == 0
    assert Discrepancy.objects.filter(statement=statement).count() == 0
    assert statement.next_attempt_at is not None
