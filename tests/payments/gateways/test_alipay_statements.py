"""Alipay trade bills: the download URL, the download, and the GBK ZIP/CSV (A7, A11)."""
from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime

import pytest
import requests
import responses

from payments.exceptions import (
    GatewayUnavailable,
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
    StatementIntegrityError,
    StatementTotalsMismatch,
)
from payments.gateways.alipay import StatementFormatError
from payments.gateways.base import StatementFile, StatementLineKind
from tests.payments.gateways.alipay_support import (
    HEADER_25,
    HEADER_29,
    bill_row,
    bill_text,
    bill_zip,
    ok,
    refused,
)

DAY = date(2024, 4, 30)
BILL_URL = (
    "http://dwbillcenter.alipay.test/downloadBillFile.resource?bizType=trade&userId=20887210000000010156"
    "&fileType=csv.zip&bizDates=20240430&downloadFileName=20887210000000010156_20240430.csv.zip&fileId=abc"
)
TRADE_NO = "2024043022001400001234567890"


def rows(header: list[str]) -> list[str]:
    return [
        bill_row(header, trade_no=TRADE_NO, out_trade_no="SO2024043000001_1", kind="交易",
                 subject="龙井茶, 礼盒", created="2024-04-30 10:00:00", finished="2024-04-30 10:00:30",
                 buyer="abc***@example.com", amount="88.88", received="88.88", fee="-0.53"),
        bill_row(header, trade_no=TRADE_NO, out_trade_no="SO2024043000001_1", kind="退款", subject="龙井茶, 礼盒",
                 created="2024-04-30 10:00:00", finished="2024-04-30 18:20:01", amount="-20.00",
                 received="-20.00", refund_no="RF2024043000001", fee="0.12"),
    ]


PAYMENT_TOTAL = "#交易合计：1笔，商家实收共88.88元，商家优惠共0.00元"
REFUND_TOTAL = "#退款合计：1笔，商家实收退款共-20.00元，商家优惠退款共0.00元"


def bill(header: list[str] = HEADER_25, *, newline: str = "\r\n", **options) -> StatementFile:
    options.setdefault("payment_total", PAYMENT_TOTAL)
    options.setdefault("refund_total", REFUND_TOTAL)
    lines = bill_text(header, options.pop("rows", None) or rows(header), **options)
    return StatementFile(day=DAY, filename="b.csv.zip", content=bill_zip(lines, newline=newline))


# -- parsing ------------------------------------------------------------------------


def test_the_bill_fixture_is_what_alipay_sends():
    archive = zipfile.ZipFile(io.BytesIO(bill().content))
    assert all(not info.flag_bits & 0x800 for info in archive.infolist())  # GBK names, no UTF-8 flag
    assert "业务明细" not in " ".join(archive.namelist())  # read naively (cp437) they are garbled
    assert b"\t," in archive.read(archive.infolist()[0]) and b"\r\n" in archive.read(archive.infolist()[0])
    assert len(HEADER_25) == 25 and len(HEADER_29) == 29


@pytest.mark.parametrize(("header", "newline"), [(HEADER_25, "\r\n"), (HEADER_29, "\n")])
def test_payment_and_partial_refund_lines(alipay_gateway, header, newline):
    payment, refund = alipay_gateway.parse_statement(bill(header, newline=newline))
    assert payment.kind == StatementLineKind.PAYMENT
    assert (payment.out_trade_no, payment.gateway_trade_no) == ("SO2024043000001_1", TRADE_NO)  # TABs stripped
    assert (payment.amount_minor, payment.fee_minor, payment.out_refund_no) == (8888, 53, "")
    assert payment.occurred_at == datetime(2024, 4, 30, 2, 0, 30, tzinfo=UTC)
    assert payment.currency == "CNY"
    assert payment.raw["商品名称"] == "龙井茶, 礼盒"
    assert payment.raw["对方账户"] == "abc***@example.com"
    assert refund.kind == StatementLineKind.REFUND
    # The fee is given back on a refund line, whatever sign the cell carries (A11: unconfirmed).
    assert (refund.amount_minor, refund.fee_minor, refund.out_refund_no) == (2000, -12, "RF2024043000001")
    assert refund.gateway_trade_no == TRADE_NO
    assert refund.occurred_at == datetime(2024, 4, 30, 10, 20, 1, tzinfo=UTC)


def test_a_day_without_transactions(alipay_gateway):
    statement = bill(rows=[bill_row(HEADER_25, kind="交易", amount="0.01", received="0.01")],
                     payment_total="#交易合计：1笔，商家实收共0.01元，商家优惠共0.00元", refund_total=None)
    assert len(list(alipay_gateway.parse_statement(statement))) == 1
    empty = bill_text(HEADER_25, [], payment_total="#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元",
                      refund_total="#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元")
    assert list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", bill_zip(empty)))) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"payment_total": "#交易合计：2笔，商家实收共88.88元，商家优惠共0.00元"}, "交易合计"),
        ({"payment_total": "#交易合计：1笔，商家实收共88.80元，商家优惠共0.00元"}, "交易合计"),
        ({"refund_total": "#退款合计：1笔，商家实收退款共-2.00元，商家优惠退款共0.00元"}, "退款合计"),
        ({"refund_total": None}, "退款合计"),
        ({"payment_total": None}, "交易合计"),
        ({"end_marker": False}, "cut short"),
    ],
)
def test_a_bill_off_its_footer_is_refused(alipay_gateway, options, message):
    with pytest.raises(StatementFormatError, match=message):
        list(alipay_gateway.parse_statement(bill(**options)))


def test_a_footer_that_disagrees_with_the_rows_is_a_totals_mismatch_raised_after_the_last_line(alipay_gateway):
    lines = alipay_gateway.parse_statement(bill(payment_total="#交易合计：2笔，商家实收共88.88元，商家优惠共0.00元"))
    assert next(lines).out_trade_no == "SO2024043000001_1"
    assert next(lines).kind == StatementLineKind.REFUND
    with pytest.raises(StatementTotalsMismatch, match="交易合计"):
        next(lines)


def test_the_bill_is_read_as_a_stream_from_its_opener(alipay_gateway):
    content = bill().content
    opened = []

    def opener():
        opened.append(io.BytesIO(content))
        return opened[-1]

    lines = list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", opener=opener)))
    assert [line.kind for line in lines] == [StatementLineKind.PAYMENT, StatementLineKind.REFUND]
    assert len(opened) == 1 and opened[0].closed


def test_a_bill_of_another_account_is_refused(alipay_gateway, make_alipay_gateway):
    lines = bill_text(HEADER_25, rows(HEADER_25), payment_total=PAYMENT_TOTAL, refund_total=REFUND_TOTAL)
    foreign = [line.replace("#账号：[20887210000000010156]", "#账号：[20889990000000990156]") for line in lines]
    with pytest.raises(StatementFormatError, match="not ours"):
        list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", bill_zip(foreign))))
    # Without a seller id configured there is nothing to compare with.
    assert len(list(make_alipay_gateway(seller_id="").parse_statement(StatementFile(DAY, "b.zip",
                                                                                     bill_zip(foreign))))) == 2


def test_a_row_naming_another_merchant_pid_is_refused(alipay_gateway):
    header = [*HEADER_25, "商户识别号"]
    ours = bill_row(header, trade_no=TRADE_NO, out_trade_no="SO1", kind="交易", amount="88.88", received="88.88",
                    finished="2024-04-30 10:00:30")
    foreign = ours.rsplit(",", 1)[0] + ",2088999000000099\t"
    assert len(list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", bill_zip(bill_text(
        header, [ours.rsplit(",", 1)[0] + ",2088721000000001\t"], payment_total=PAYMENT_TOTAL,
        refund_total=None)))))) == 1
    with pytest.raises(StatementFormatError, match="商户识别号"):
        list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", bill_zip(bill_text(
            header, [foreign], payment_total=PAYMENT_TOTAL, refund_total=None)))))


def test_a_bill_in_another_encoding_is_refused(alipay_gateway):
    lines = bill_text(HEADER_25, rows(HEADER_25), payment_total=PAYMENT_TOTAL, refund_total=REFUND_TOTAL)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("20887210000000010156_20240430_业务明细.csv", "\r\n".join(lines).encode("utf-16"))
    with pytest.raises(StatementFormatError):
        list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", buffer.getvalue())))


def test_malformed_bills_are_refused(alipay_gateway):
    def refused_with(content: bytes, message: str) -> None:
        with pytest.raises(StatementFormatError, match=message):
            list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", content)))

    refused_with(b"<html>expired</html>", "not a ZIP")
    lines = bill_text(HEADER_25, rows(HEADER_25), payment_total=PAYMENT_TOTAL, refund_total=REFUND_TOTAL)
    refused_with(bill_zip(lines[:6]), "cut short")
    refused_with(bill_zip(lines[:3]), "marker")
    refused_with(bill_zip(lines, detail=False), "expected one")
    odd_kind = [bill_row(HEADER_25, kind="冻结", amount="1.00", received="1.00")]
    refused_with(bill_zip(bill_text(HEADER_25, odd_kind, payment_total=PAYMENT_TOTAL, refund_total=None)), "冻结")
    bad_amount = [bill_row(HEADER_25, kind="交易", amount="88.888", received="88.88")]
    refused_with(bill_zip(bill_text(HEADER_25, bad_amount, payment_total=PAYMENT_TOTAL, refund_total=None)), "订单金额")
    short = [",".join(bill_row(HEADER_25, kind="交易").split(",")[:20])]
    refused_with(bill_zip(bill_text(HEADER_25, short, payment_total=PAYMENT_TOTAL, refund_total=None)), "cells")
    no_amount = [name for name in HEADER_25 if name != "订单金额（元）"]
    refused_with(bill_zip(bill_text(no_amount, [], payment_total=PAYMENT_TOTAL, refund_total=None)), "missing columns")


# -- download -----------------------------------------------------------------------


def test_fetch_statement_downloads_the_bill_at_once(alipay_gateway, alipay_api, http):
    content = bill().content
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    http.add(responses.GET, BILL_URL, body=content, content_type="application/oct-stream")
    statement = alipay_gateway.fetch_statement(DAY)
    assert statement == StatementFile(day=DAY, filename="20887210000000010156_20240430.csv.zip", content=content)
    assert alipay_api.biz() == {"bill_type": "trade", "bill_date": "2024-04-30"}
    download = http.calls[-1]
    assert download.request.method == "GET" and download.request.req_kwargs["timeout"] == (3.0, 7.0)
    assert len(list(alipay_gateway.parse_statement(statement))) == 2


def test_no_bill_for_the_day_is_the_normalised_no_statement(alipay_gateway, alipay_api):
    """isp.bill_not_exist means "not generated yet, or no transactions": Alipay does not say which."""
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", refused("isp.bill_not_exist", "账单不存在"))
    with pytest.raises(NoStatement) as caught:
        alipay_gateway.fetch_statement(DAY)
    assert caught.value.reason == NoStatementReason.EITHER
    assert "isp.bill_not_exist" in str(caught.value)


def test_bill_url_timeout(alipay_gateway, alipay_api):
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", error=requests.exceptions.ReadTimeout("x"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.fetch_statement(DAY)


def test_bill_url_bad_signature(alipay_gateway, alipay_api, stranger_key):
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL),
                      key=stranger_key)
    with pytest.raises(ResponseNotVerified):
        alipay_gateway.fetch_statement(DAY)


def test_a_download_that_times_out_is_unavailable(alipay_gateway, alipay_api, http):
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    http.add(responses.GET, BILL_URL, body=requests.exceptions.ConnectTimeout("x"))
    with pytest.raises(GatewayUnavailable):
        alipay_gateway.fetch_statement(DAY)


@pytest.mark.parametrize(
    "reply",
    [
        {"body": b"<error>expired</error>", "status": 200},
        {"body": b"", "status": 404},
        {"body": "账单下载链接已过期".encode(), "status": 410},
    ],
)
def test_an_expired_link_is_replaced_by_a_new_one(alipay_gateway, alipay_api, http, reply):
    content = bill().content
    fresh = BILL_URL.replace("fileId=abc", "fileId=def")
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=fresh))
    http.add(responses.GET, BILL_URL, **reply)
    http.add(responses.GET, fresh, body=content)
    assert alipay_gateway.fetch_statement(DAY).content == content
    assert alipay_api.methods() == ["alipay.data.dataservice.bill.downloadurl.query"] * 2


def test_links_that_keep_expiring_leave_the_outcome_unknown(alipay_gateway, alipay_api, http):
    for _ in range(2):
        alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    http.add(responses.GET, BILL_URL, body=b"", status=410)
    with pytest.raises(GatewayUnavailable, match="expired"):
        alipay_gateway.fetch_statement(DAY)
    assert alipay_api.unanswered() == {}


@pytest.mark.parametrize("offset", [0, 1, 10, 40])
def test_a_damaged_zip_is_an_integrity_error_and_does_not_parse(alipay_gateway, alipay_api, http, offset):
    content = bytearray(bill().content)
    data_at = content.index(b"PK\x03\x04") + 30 + len("20887210000000010156_20240430_业务明细.csv".encode("gbk"))
    content[data_at + offset] ^= 0xFF
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    http.add(responses.GET, BILL_URL, body=bytes(content))
    with pytest.raises(StatementIntegrityError, match="damaged"):
        alipay_gateway.fetch_statement(DAY)
    with pytest.raises(StatementFormatError):
        list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", bytes(content))))


def test_a_zip_cut_short_is_an_integrity_error(alipay_gateway, alipay_api, http):
    content = bill().content
    alipay_api.answer("alipay.data.dataservice.bill.downloadurl.query", ok(bill_download_url=BILL_URL))
    http.add(responses.GET, BILL_URL, body=content[: len(content) // 2])
    with pytest.raises(StatementIntegrityError, match="cut short"):
        alipay_gateway.fetch_statement(DAY)
    with pytest.raises(StatementFormatError, match="not a ZIP"):
        list(alipay_gateway.parse_statement(StatementFile(DAY, "b.zip", content[: len(content) // 2])))


def test_the_statement_window_is_the_beijing_calendar_day(alipay_gateway):
    window = alipay_gateway.statement_window
    start, end = window.bounds(DAY)
    assert (start, end) == (datetime(2024, 4, 29, 16, tzinfo=UTC), datetime(2024, 4, 30, 16, tzinfo=UTC))
    assert window.day_of(datetime(2024, 4, 30, 15, 59, 58, tzinfo=UTC)) == DAY
    assert window.day_of(datetime(2024, 4, 30, 16, tzinfo=UTC)) == date(2024, 5, 1)
    assert window.refunds == "completed"


def test_today_has_no_bill_yet(alipay_gateway):
    # The frozen clock says 2024-05-01 10:03 in Beijing.
    with pytest.raises(ValueError, match="T\\+1"):
        alipay_gateway.fetch_statement(date(2024, 5, 1))
