"""WeChat Pay trade bills (§6.8, §6.9): tradebill + billdownload/file, fetched and parsed
by the shop's adapter, and the discrepancies fault rules put into them."""
import gzip
import hashlib
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from payments.exceptions import NoStatement, NoStatementReason
from payments.gateways.base import StatementLineKind
from payments.gateways.wechatpay import StatementFormatError, StatementIntegrityError, StatementTotalsMismatch
from tests.sandbox.flows import new_out_trade_no
from tests.sandbox.wechatpay_client import MCHID, refund_request
from tests.sandbox.wechatpay_flows import paid_trade

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox-wechatpay")]

BEIJING = timezone(timedelta(hours=8))
DAYS_AGO = 3
BILL_PATH = "/v3/bill/tradebill"


@pytest.fixture
def billed_day(sandbox, wechatpay, wx_merchant) -> tuple[date, str, str]:
    """A past day with a payment of 88.88 and a refund of 30.00 of it (R-BILL-1), and a
    payment of 10.00; returns (day, first out_trade_no, second)."""
    noon = datetime.combine(datetime.now(BEIJING).date() - timedelta(days=DAYS_AGO), time(12), tzinfo=BEIJING)
    sandbox.control("POST", "settings", {"clock_offset_seconds": (noon - datetime.now(BEIJING)).total_seconds()})
    first, second = new_out_trade_no(), new_out_trade_no()
    paid_trade(sandbox, wechatpay, wx_merchant, first, amount_minor=8888)
    wechatpay.refund(refund_request(wx_merchant, first, "R-BILL-1", 3000))
    sandbox.control("POST", "wechatpay/refunds/R-BILL-1/settle", {"status": "SUCCESS"})
    paid_trade(sandbox, wechatpay, wx_merchant, second, amount_minor=1000)
    # Back to now; a real time scale so that the 5-minute link outlives the test.
    sandbox.control("POST", "settings", {"clock_offset_seconds": 0, "time_scale": 1.0})
    return noon.date(), first, second


def tradebill(wx, day: date, bill_type: str = "ALL", tar_type: str = "GZIP"):
    query = f"bill_date={day.isoformat()}&bill_type={bill_type}" + (f"&tar_type={tar_type}" if tar_type else "")
    return wx.call("GET", BILL_PATH, query=query)


def download(wx, answer) -> bytes:
    url = answer.json()["download_url"]
    response = wx.call("GET", "", url=url)
    assert response.status_code == 200, response.text
    return response.content


def test_the_adapter_fetches_and_parses_the_days_bill(sandbox, wechatpay, billed_day):
    day, first, second = billed_day

    statement = wechatpay.fetch_statement(day)
    lines = list(wechatpay.parse_statement(statement))

    trades = {no: sandbox.control("GET", f"wechatpay/trades/{no}") for no in (first, second)}
    summary = sorted((line.kind, line.out_trade_no, line.amount_minor, line.out_refund_no) for line in lines)
    assert summary == sorted([
        (StatementLineKind.PAYMENT, first, 8888, ""),
        (StatementLineKind.PAYMENT, second, 1000, ""),
        (StatementLineKind.REFUND, first, 3000, "R-BILL-1"),
    ])  # fmt: skip
    for line in lines:
        assert line.gateway_trade_no == trades[line.out_trade_no]["transaction_id"]
        assert line.occurred_at.astimezone(BEIJING).date() == day
        assert line.currency == "CNY" and line.raw["商户号"] == MCHID
    (refund_line,) = [line for line in lines if line.kind == StatementLineKind.REFUND]
    assert refund_line.gateway_refund_id == trades[first]["refunds"][0]["refund_id"]
    assert refund_line.status == "SUCCESS"
    # Kept as downloaded: the adapter asks for GZIP.
    assert gzip.decompress(statement.content).startswith("\ufeff".encode())


def test_the_file_layout_and_hash(sandbox, wx, billed_day):
    day, first, _ = billed_day

    answer = tradebill(wx, day)
    data = download(wx, answer)

    assert answer.status_code == 200 and wx.answer_verifies(answer)
    content = gzip.decompress(data)
    assert answer.json()["hash_type"] == "SHA1"
    assert answer.json()["hash_value"] == hashlib.sha1(content).hexdigest()
    assert urlsplit(answer.json()["download_url"]).path == "/wechatpay/v3/billdownload/file"
    text = content.decode("utf-8")
    assert text.startswith("\ufeff交易时间,公众账号ID,商户号,")
    lines = text.removeprefix("\ufeff").split("\r\n")
    assert lines[-1] == ""
    header, *rows, summary_header, summary_row, _ = lines
    assert len(header.split(",")) == 27 and len(rows) == 3
    assert all(row.startswith("`") and len(row[1:].split(",`")) == 27 for row in rows)
    assert summary_header == "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    cells = dict(zip(summary_header.split(","), summary_row[1:].split(",`"), strict=True))
    assert (cells["总交易单数"], cells["订单总金额"], cells["申请退款总金额"], cells["应结订单总金额"]) == (
        "3", "98.88", "30.00", "98.88",
    )  # fmt: skip
    assert Decimal(cells["手续费总金额"]) == Decimal("0.59328") - Decimal("0.18000")


def test_the_download_is_unsigned_and_needs_a_signed_request(sandbox, wx, billed_day):
    day, _, _ = billed_day
    answer = tradebill(wx, day)
    url = answer.json()["download_url"]

    unsigned = wx.call("GET", "", url=url, authorization="")
    signed = wx.call("GET", "", url=url)

    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "SIGN_ERROR")
    assert signed.status_code == 200
    assert signed.headers["Content-Type"] == "application/octet-stream"
    assert "Wechatpay-Signature" not in signed.headers
    assert "Content-Encoding" not in signed.headers


@pytest.mark.parametrize(("bill_type", "columns", "rows"), [("SUCCESS", 20, 2), ("REFUND", 29, 1)])
def test_success_and_refund_bills_have_their_own_columns(sandbox, wx, billed_day, bill_type, columns, rows):
    day, _, _ = billed_day

    answer = tradebill(wx, day, bill_type=bill_type, tar_type="")
    content = download(wx, answer)

    assert answer.json()["hash_value"] == hashlib.sha1(content).hexdigest()
    header, *detail, summary_header, summary_row, _ = content.decode().removeprefix("\ufeff").split("\r\n")
    assert len(header.split(",")) == columns
    assert len(detail) == rows and all(len(row[1:].split(",`")) == columns for row in detail)
    if bill_type == "REFUND":
        assert "退款申请时间,退款成功时间" in header


def test_a_day_without_trades_has_no_statement(sandbox, wechatpay):
    with pytest.raises(NoStatement) as refused:
        wechatpay.fetch_statement(date.today() - timedelta(days=40))

    assert refused.value.reason == NoStatementReason.NONE and "NO_STATEMENT_EXIST" in str(refused.value)


def test_todays_bill_is_still_being_created(sandbox, wechatpay, wx):
    today = datetime.now(BEIJING).date()

    with pytest.raises(NoStatement) as refused:
        wechatpay.fetch_statement(today)
    assert refused.value.reason == NoStatementReason.NOT_YET
    assert tradebill(wx, today).json()["code"] == "STATEMENT_CREATING"
    assert tradebill(wx, today + timedelta(days=1)).json()["code"] == "PARAM_ERROR"


@pytest.mark.parametrize(
    "query", ["bill_type=ALL", "bill_date=2020-13-01", "bill_date=2020-01-01&bill_type=ALL_SPECIAL",
              "bill_date=2020-01-01&tar_type=ZIP"],
)  # fmt: skip
def test_bad_bill_parameters_are_refused(sandbox, wx, query):
    response = wx.call("GET", BILL_PATH, query=query)

    assert (response.status_code, response.json()["code"]) == (400, "PARAM_ERROR")
    assert response.json()["detail"]["location"] == "query"


def test_the_download_link_expires(sandbox, wx, billed_day):
    day, _, _ = billed_day
    # Five minutes times 0.0001: the link lives 30 ms.
    sandbox.control("POST", "settings", {"time_scale": 0.0001})
    answer = tradebill(wx, day)

    def refused() -> tuple[int, str] | None:
        response = wx.call("GET", "", url=answer.json()["download_url"])
        return None if response.status_code == 200 else (response.status_code, response.json()["code"])

    assert sandbox.wait_for(refused, what="the link to expire") == (400, "INVALID_REQUEST")


def test_an_unknown_download_token_is_not_found(sandbox, wx):
    response = wx.call("GET", "/v3/billdownload/file", query="token=nope")

    assert (response.status_code, response.json()["code"]) == (404, "RESOURCE_NOT_EXISTS")


def test_a_bad_hash_makes_the_adapter_throw_the_file_away(sandbox, wechatpay, billed_day):
    day, _, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill", "mode": "bad_hash"})

    with pytest.raises(StatementIntegrityError):
        wechatpay.fetch_statement(day)
    assert len(list(wechatpay.parse_statement(wechatpay.fetch_statement(day)))) == 3


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        ({"mode": "omit", "kind": "payment"}, lambda lines, first: [
            line for line in lines if line.out_trade_no == first and line.kind == StatementLineKind.PAYMENT
        ] == []),
        ({"mode": "duplicate", "kind": "refund"}, lambda lines, first: [
            line.out_refund_no for line in lines if line.kind == StatementLineKind.REFUND
        ] == ["R-BILL-1", "R-BILL-1"]),
        ({"mode": "alter_amount", "kind": "payment", "delta_minor": -88}, lambda lines, first: [
            line.amount_minor for line in lines if line.out_trade_no == first and line.kind == StatementLineKind.PAYMENT
        ] == [8800]),
        ({"mode": "alter_amount", "kind": "refund", "delta_minor": 1}, lambda lines, first: [
            line.amount_minor for line in lines if line.kind == StatementLineKind.REFUND
        ] == [3001]),
    ],
    ids=["omit", "duplicate", "alter_payment", "alter_refund"],
)  # fmt: skip
def test_bill_content_rules_put_discrepancies_into_a_consistent_file(sandbox, wechatpay, billed_day, rule, check):
    day, first, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill_content", "out_trade_no": first, **rule})

    lines = list(wechatpay.parse_statement(wechatpay.fetch_statement(day)))

    # parse_statement also checked the summary row against the rows.
    assert check(lines, first)
    assert sandbox.control("GET", "faults")["faults"][0]["standing"] is True


def test_an_extra_line_names_a_trade_the_merchant_never_had(sandbox, wechatpay):
    day = datetime.now(BEIJING).date() - timedelta(days=DAYS_AGO)
    sandbox.control("POST", "faults", {
        "target": "wechatpay.bill_content", "mode": "extra_line", "amount_minor": 4200, "bill_date": day.isoformat(),
        "out_trade_no": "STRANGER-1",
    })  # fmt: skip
    sandbox.control("POST", "settings", {"time_scale": 1.0})

    (line,) = wechatpay.parse_statement(wechatpay.fetch_statement(day))

    assert (line.kind, line.out_trade_no, line.amount_minor) == (StatementLineKind.PAYMENT, "STRANGER-1", 4200)


# -- bills that go wrong on purpose (for reconciliation's robustness) -----------------


def test_an_expired_link_is_replaced_by_the_adapter(sandbox, wechatpay, billed_day):
    day, _, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill", "mode": "expired_link"})

    lines = list(wechatpay.parse_statement(wechatpay.fetch_statement(day)))

    assert len(lines) == 3
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == 1


def test_a_truncated_gzip_is_an_integrity_error(sandbox, wechatpay, billed_day):
    day, _, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill", "mode": "truncate"})

    with pytest.raises(StatementIntegrityError, match="gunzip"):
        wechatpay.fetch_statement(day)


def test_a_bill_in_gbk_passes_its_hash_and_fails_to_parse(sandbox, wechatpay, billed_day):
    day, _, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill", "mode": "wrong_encoding"})

    statement = wechatpay.fetch_statement(day)
    with pytest.raises(StatementFormatError, match="not UTF-8"):
        list(wechatpay.parse_statement(statement))


@pytest.mark.parametrize(
    ("rule", "error", "match"),
    [
        ({"mode": "foreign_merchant", "kind": "payment"}, StatementFormatError, "is not ours"),
        ({"mode": "bad_totals", "delta_minor": 1}, StatementTotalsMismatch, "应结订单总金额"),
    ],
    ids=["foreign_merchant", "bad_totals"],
)
def test_rows_of_another_merchant_and_totals_that_disagree_are_refused(sandbox, wechatpay, billed_day, rule, error,
                                                                      match):
    day, first, _ = billed_day
    target = {"out_trade_no": first} if rule["mode"] == "foreign_merchant" else {"bill_date": day.isoformat()}
    sandbox.control("POST", "faults", {"target": "wechatpay.bill_content", **target, **rule})

    with pytest.raises(error, match=match):
        list(wechatpay.parse_statement(wechatpay.fetch_statement(day)))


def test_a_currency_can_be_changed_in_the_bill(sandbox, wechatpay, billed_day):
    day, first, _ = billed_day
    sandbox.control("POST", "faults", {"target": "wechatpay.bill_content", "mode": "alter_currency",
                                       "out_trade_no": first, "currency": "USD"})

    lines = list(wechatpay.parse_statement(wechatpay.fetch_statement(day)))

    assert {(line.out_trade_no, line.kind, line.currency) for line in lines if line.currency != "CNY"} == {
        (first, StatementLineKind.PAYMENT, "USD")}
