"""The statement side of the gateway interface: bill-day windows, and the fake gateway's bills."""
from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest

from payments.exceptions import NoStatement, NoStatementReason, StatementFormatError
from payments.gateways import get_gateway
from payments.gateways.base import (
    BEIJING,
    RefundBillDay,
    StatementFile,
    StatementLine,
    StatementLineKind,
    StatementWindow,
)
from payments.gateways.fake import FakeGateway

DAY = date(2026, 11, 30)


def test_a_calendar_day_in_beijing():
    window = StatementWindow()
    assert window.bounds(DAY) == (datetime(2026, 11, 29, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert window.day_of(datetime(2026, 11, 30, 23, 59, 58, tzinfo=BEIJING)) == DAY
    assert window.day_of(datetime(2026, 12, 1, 0, 0, 1, tzinfo=BEIJING)) == date(2026, 12, 1)


def test_a_settlement_day_from_23_00_to_23_00():
    """UnionPay's clearing day D runs from 23:00 on D-1 to 23:00 on D."""
    window = StatementWindow(starts_at=timedelta(hours=-1))
    start, end = window.bounds(DAY)
    assert (start, end) == (datetime(2026, 11, 29, 23, tzinfo=BEIJING), datetime(2026, 11, 30, 23, tzinfo=BEIJING))
    assert window.day_of(datetime(2026, 11, 29, 23, 0, 0, tzinfo=BEIJING)) == DAY
    assert window.day_of(datetime(2026, 11, 30, 22, 59, 59, tzinfo=BEIJING)) == DAY
    assert window.day_of(datetime(2026, 11, 30, 23, 0, 0, tzinfo=BEIJING)) == date(2026, 12, 1)


def test_each_adapter_declares_whether_it_has_statements():
    assert FakeGateway.statement_window == StatementWindow()
    assert get_gateway("fake").has_statements
    from payments.gateways.alipay import AlipayGateway
    from payments.gateways.wechatpay import WechatPayGateway

    assert AlipayGateway.statement_window.refunds == RefundBillDay.COMPLETED
    assert WechatPayGateway.statement_window.refunds == RefundBillDay.REQUESTED


def test_a_statement_file_opens_its_content_or_its_opener():
    assert StatementFile(DAY, "a", content=b"abc").open().read() == b"abc"
    assert StatementFile(DAY, "a", opener=lambda: io.BytesIO(b"xyz")).open().read() == b"xyz"


@pytest.fixture
def fake():
    return FakeGateway({})


def line(out_trade_no: str, amount_minor: int = 100, **fields) -> StatementLine:
    return StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no=out_trade_no, gateway_trade_no=f"G{out_trade_no}",
                         amount_minor=amount_minor, occurred_at=datetime(2026, 11, 30, 12, tzinfo=BEIJING), **fields)


def test_the_fake_bills_what_a_test_sets_and_parses_it_back(fake):
    refund = StatementLine(kind=StatementLineKind.REFUND, out_trade_no="A1", gateway_trade_no="GA1",
                           amount_minor=40, out_refund_no="A1R01", fee_minor=-1)
    lines = [line("A1"), line("A2", 250, fee_minor=2), refund]
    fake.bills[DAY] = lines
    statement = fake.fetch_statement(DAY)
    assert list(fake.parse_statement(statement)) == lines
    assert fake.calls[-1] == ("fetch_statement", DAY.isoformat())


def test_the_fake_says_when_it_has_no_bill(fake):
    with pytest.raises(NoStatement) as none:
        fake.fetch_statement(DAY)
    assert none.value.reason == NoStatementReason.NONE
    fake.no_bill[DAY] = NoStatementReason.NOT_YET
    with pytest.raises(NoStatement) as not_yet:
        fake.fetch_statement(DAY)
    assert not_yet.value.reason == NoStatementReason.NOT_YET
    fake.bills[DAY] = []
    del fake.no_bill[DAY]
    assert list(fake.parse_statement(fake.fetch_statement(DAY))) == []


def test_a_cut_fake_bill_is_a_format_error(fake):
    fake.bills[DAY] = [line("A1"), line("A2")]
    content = fake.fetch_statement(DAY).content
    with pytest.raises(StatementFormatError, match="cut short"):
        list(fake.parse_statement(StatementFile(DAY, "f", content=content.rsplit(b"\n", 1)[0])))
