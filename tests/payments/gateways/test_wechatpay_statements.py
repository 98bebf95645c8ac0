"""The WeChat Pay trade bill: tradebill + download, gunzip, SHA-1 (§6.8), and parsing (§6.9).

The bill below is built here in the documented layout: a BOM, CRLF, a
plain header, backticked rows (a product name with a comma, a coupon, a
five-decimal fee, a refund row) and a summary that totals them.
"""
from __future__ import annotations

import gzip
import hashlib
import io
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import requests
import responses

from payments.exceptions import GatewayUnavailable, NoStatement, NoStatementReason, ResponseNotVerified
from payments.gateways.base import StatementFile, StatementLine, StatementLineKind
from payments.gateways.wechatpay import StatementFormatError, StatementIntegrityError, StatementTotalsMismatch
from payments.gateways.wechatpay.formats import (
    check_fen,
    count_of,
    fee_yuan_to_fen,
    format_rfc3339,
    parse_rfc3339,
    yuan_to_fen,
)
from payments.gateways.wechatpay.statements import check_bill
from tests.payments.gateways.fixtures.wechatpay import stub

BEIJING = timezone(timedelta(hours=8))
TRADEBILL = "/v3/bill/tradebill"
DOWNLOAD_URL = "https://download.wechatpay.test/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA%2B&tartype=gzip"
DAY = date(2025, 11, 21)

ALL_COLUMNS = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,"
    "商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
).split(",")
SUMMARY_COLUMNS = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额".split(",")


def row(**cells: str) -> dict[str, str]:
    base = {name: "" for name in ALL_COLUMNS}
    base.update({"公众账号ID": stub.APPID, "商户号": stub.MCHID, "特约商户号": "0", "交易类型": "NATIVE",
                 "付款银行": "OTHERS", "货币种类": "CNY", "代金券金额": "0.00", "微信退款单号": "0",
                 "商户退款单号": "0", "退款金额": "0.00", "充值券退款金额": "0.00", "费率": "0.60%",
                 "申请退款金额": "0.00", "用户标识": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"})
    base.update(cells)
    return base


PAYMENT_1 = row(**{"交易时间": "2025-11-21 09:58:30", "微信订单号": "4200002903202511211234567890",
                   "商户订单号": "SO20251121000123P01", "交易状态": "SUCCESS", "应结订单金额": "88.00",
                   "商品名称": "茶叶, 2 × 50g", "手续费": "0.52800", "订单金额": "88.00"})
PAYMENT_2 = row(**{"交易时间": "2025-11-21 10:01:02", "微信订单号": "4200002903202511211234567891",
                   "商户订单号": "SO20251121000124P02", "交易状态": "SUCCESS", "应结订单金额": "0.01",
                   "商品名称": "Order SO20251121000124", "手续费": "0.00600", "订单金额": "0.01"})
# A non-recharge coupon of 2.00: the merchant settles 8.00 of a 10.00 order.
PAYMENT_3 = row(**{"交易时间": "2025-11-21 23:59:59", "微信订单号": "4200002903202511211234567892",
                   "商户订单号": "SO20251121000125P01", "交易状态": "SUCCESS", "应结订单金额": "8.00",
                   "代金券金额": "2.00", "商品名称": "Cup", "手续费": "0.04800", "订单金额": "10.00"})
REFUND_1 = row(**{"交易时间": "2025-11-21 12:00:00", "微信订单号": "4200002903202511201234567000",
                  "商户订单号": "SO20251120000077P01", "交易状态": "REFUND", "应结订单金额": "0.00",
                  "微信退款单号": "50300905362025112112345678901", "商户退款单号": "SO20251120000077R01",
                  "退款金额": "30.00", "退款类型": "ORIGINAL", "退款状态": "SUCCESS", "商品名称": "Tea",
                  "手续费": "-0.18000", "订单金额": "0.00", "申请退款金额": "30.00"})
SUMMARY = {"总交易单数": "4", "应结订单总金额": "96.01", "退款总金额": "30.0", "充值券退款总金额": "0.0",
           "手续费总金额": "0.402", "订单总金额": "98.01", "申请退款总金额": "30.0"}


def bill(rows=(PAYMENT_1, PAYMENT_2, PAYMENT_3, REFUND_1), summary=SUMMARY, *, columns=ALL_COLUMNS,
         summary_columns=SUMMARY_COLUMNS, bom=True, newline="\r\n") -> bytes:
    lines = [",".join(columns)]
    lines += ["`" + ",`".join(r[name] for name in columns) for r in rows]
    lines.append(",".join(summary_columns))
    lines.append("`" + ",`".join(summary[name] for name in summary_columns))
    text = newline.join(lines) + newline
    return ("\ufeff" if bom else "").encode() + text.encode("utf-8")


EXPECTED = [
    StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no="SO20251121000123P01",
                  gateway_trade_no="4200002903202511211234567890", amount_minor=8800, fee_minor=53,
                  occurred_at=datetime(2025, 11, 21, 9, 58, 30, tzinfo=BEIJING), status="SUCCESS", raw=PAYMENT_1),
    StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no="SO20251121000124P02",
                  gateway_trade_no="4200002903202511211234567891", amount_minor=1, fee_minor=1,
                  occurred_at=datetime(2025, 11, 21, 10, 1, 2, tzinfo=BEIJING), status="SUCCESS", raw=PAYMENT_2),
    StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no="SO20251121000125P01",
                  gateway_trade_no="4200002903202511211234567892", amount_minor=1000, fee_minor=5,
                  occurred_at=datetime(2025, 11, 21, 23, 59, 59, tzinfo=BEIJING), status="SUCCESS", raw=PAYMENT_3),
    StatementLine(kind=StatementLineKind.REFUND, out_trade_no="SO20251120000077P01",
                  gateway_trade_no="4200002903202511201234567000", amount_minor=3000, fee_minor=-18,
                  out_refund_no="SO20251120000077R01", gateway_refund_id="50300905362025112112345678901",
                  occurred_at=datetime(2025, 11, 21, 12, 0, tzinfo=BEIJING), status="SUCCESS", raw=REFUND_1),
]


@pytest.fixture
def wechat():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield stub.WechatStub(mock)


@pytest.fixture
def gateway():
    return stub.make_gateway()


def statement(content: bytes) -> StatementFile:
    return StatementFile(day=DAY, filename="wechatpay_tradebill_20251121_ALL.csv", content=content)


# -- fetch_statement (§6.8) -------------------------------------------------------


def serve_bill(wechat, content: bytes, *, hash_value: str | None = None, hash_type: str = "SHA1",
               compressed: bytes | None = None) -> None:
    wechat.reply("GET", TRADEBILL, {
        "hash_type": hash_type,
        "hash_value": hash_value if hash_value is not None else hashlib.sha1(content).hexdigest().upper(),
        "download_url": DOWNLOAD_URL,
    })
    # The download carries no WeChat signature at all (§6.8 step 3).
    wechat.mock.add("GET", DOWNLOAD_URL.split("?")[0], body=compressed if compressed is not None
                    else gzip.compress(content), content_type="application/octet-stream")


def test_the_bill_is_hash_checked_after_gunzip_and_kept_as_downloaded(wechat, gateway):
    content = bill()
    compressed = gzip.compress(content)
    serve_bill(wechat, content, compressed=compressed)
    fetched = gateway.fetch_statement(DAY)
    assert fetched == StatementFile(day=DAY, filename="wechatpay_tradebill_20251121_ALL.csv.gz", content=compressed)
    assert list(gateway.parse_statement(fetched)) == EXPECTED
    tradebill, download = wechat.requests
    assert tradebill.path_url == "/wechatpay/v3/bill/tradebill?bill_date=2025-11-21&bill_type=ALL&tar_type=GZIP"
    assert stub.merchant_signature_verifies(tradebill)
    # Signed like any request over the download URL's own path and query,
    # even on another host.
    assert download.url == DOWNLOAD_URL
    assert download.path_url == "/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA%2B&tartype=gzip"
    assert stub.signed_message_of(download).startswith(b"GET\n/v3/billdownload/file?token=6XIv5TUPto7pByrTQ")
    assert stub.signed_message_of(download).endswith(b"\n\n")
    assert stub.merchant_signature_verifies(download)
    assert download.body is None


def test_a_bill_whose_hash_differs_is_never_returned(wechat, gateway):
    content = bill()
    serve_bill(wechat, content, hash_value=hashlib.sha1(content + b"x").hexdigest())
    with pytest.raises(StatementIntegrityError, match="discard it and download again"):
        gateway.fetch_statement(DAY)


def test_the_hash_is_taken_after_gunzip(wechat, gateway):
    content = bill()
    compressed = gzip.compress(content)
    serve_bill(wechat, content, hash_value=hashlib.sha1(compressed).hexdigest(), compressed=compressed)
    with pytest.raises(StatementIntegrityError):
        gateway.fetch_statement(DAY)


def test_a_damaged_archive_is_an_integrity_error(wechat, gateway):
    content = bill()
    serve_bill(wechat, content, compressed=gzip.compress(content)[:-12])
    with pytest.raises(StatementIntegrityError, match="gunzip"):
        gateway.fetch_statement(DAY)


def test_integrity_errors_are_retryable():
    assert issubclass(StatementIntegrityError, GatewayUnavailable)


def test_an_unknown_hash_type_is_refused(wechat, gateway):
    content = bill()
    wechat.reply("GET", TRADEBILL, {"hash_type": "MD5", "hash_value": hashlib.md5(content).hexdigest(),
                                    "download_url": DOWNLOAD_URL})
    wechat.mock.add("GET", DOWNLOAD_URL.split("?")[0], body=gzip.compress(content))
    with pytest.raises(StatementIntegrityError, match="hash_type"):
        gateway.fetch_statement(DAY)


@pytest.mark.parametrize("status", [400, 404])
def test_no_bill_for_the_day_is_the_normalised_no_statement(wechat, gateway, status):
    wechat.error("GET", TRADEBILL, status, "NO_STATEMENT_EXIST", "账单不存在")
    with pytest.raises(NoStatement) as caught:
        gateway.fetch_statement(DAY)
    assert caught.value.reason == NoStatementReason.NONE


def test_a_bill_being_generated_is_not_there_yet(wechat, gateway):
    wechat.error("GET", TRADEBILL, 400, "STATEMENT_CREATING", "账单生成中")
    with pytest.raises(NoStatement, match="STATEMENT_CREATING") as caught:
        gateway.fetch_statement(DAY)
    assert caught.value.reason == NoStatementReason.NOT_YET


def test_an_unverified_tradebill_answer_is_not_downloaded(wechat, gateway):
    wechat.reply("GET", TRADEBILL, {"hash_type": "SHA1", "hash_value": "0" * 40, "download_url": DOWNLOAD_URL},
                 key=stub.stranger_key())
    with pytest.raises(ResponseNotVerified):
        gateway.fetch_statement(DAY)
    assert len(wechat.requests) == 1


@pytest.mark.parametrize(
    "arrange",
    [
        pytest.param(lambda w: w.fail("GET", TRADEBILL, requests.exceptions.ConnectTimeout()), id="timeout"),
        pytest.param(lambda w: w.error("GET", TRADEBILL, 500, "SYSTEM_ERROR"), id="500"),
    ],
)
def test_tradebill_outcome_unknown(wechat, gateway, arrange):
    arrange(wechat)
    with pytest.raises(GatewayUnavailable):
        gateway.fetch_statement(DAY)


def test_a_download_that_times_out_is_unavailable(wechat, gateway):
    content = bill()
    wechat.reply("GET", TRADEBILL, {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                                    "download_url": DOWNLOAD_URL})
    wechat.mock.add("GET", DOWNLOAD_URL.split("?")[0], body=requests.exceptions.ReadTimeout())
    with pytest.raises(GatewayUnavailable, match="timed out"):
        gateway.fetch_statement(DAY)


def test_an_expired_link_is_replaced_by_a_new_tradebill_call(wechat, gateway):
    content = bill()
    wechat.reply("GET", TRADEBILL, {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                                    "download_url": DOWNLOAD_URL})
    wechat.mock.add("GET", DOWNLOAD_URL.split("?")[0], status=400,
                    body=b'{"code":"INVALID_REQUEST","message":"token expired"}')
    serve_bill(wechat, content)
    assert list(gateway.parse_statement(gateway.fetch_statement(DAY))) == EXPECTED
    assert [request.path_url.split("?")[0] for request in wechat.requests] == [
        "/wechatpay/v3/bill/tradebill", "/v3/billdownload/file", "/wechatpay/v3/bill/tradebill",
        "/v3/billdownload/file"]


def test_links_that_keep_expiring_leave_the_outcome_unknown(wechat, gateway):
    content = bill()
    for _ in range(2):
        wechat.reply("GET", TRADEBILL, {"hash_type": "SHA1", "hash_value": hashlib.sha1(content).hexdigest(),
                                        "download_url": DOWNLOAD_URL})
        wechat.mock.add("GET", DOWNLOAD_URL.split("?")[0], status=400,
                        body=b'{"code":"INVALID_REQUEST","message":"token expired"}')
    with pytest.raises(GatewayUnavailable, match="token expired"):
        gateway.fetch_statement(DAY)


def test_a_tradebill_answer_without_download_url(wechat, gateway):
    wechat.reply("GET", TRADEBILL, {"hash_type": "SHA1", "hash_value": "0" * 40})
    with pytest.raises(GatewayUnavailable, match="download_url"):
        gateway.fetch_statement(DAY)


def test_an_uncompressed_body_is_judged_by_its_hash():
    """requests inflates `Content-Encoding: gzip` itself; the hash decides either way."""
    content = bill()
    check_bill(io.BytesIO(content), hash_type="SHA1", hash_value=hashlib.sha1(content).hexdigest())
    check_bill(io.BytesIO(gzip.compress(content)), hash_type="SHA1", hash_value=hashlib.sha1(content).hexdigest())
    with pytest.raises(StatementIntegrityError):
        check_bill(io.BytesIO(content), hash_type="SHA1", hash_value="f" * 40)
    with pytest.raises(StatementIntegrityError, match="40 hex"):
        check_bill(io.BytesIO(content), hash_type="SHA1", hash_value="")


# -- parse_statement (§6.9) ---------------------------------------------------------


def test_a_realistic_bill_parses_to_typed_lines(gateway):
    assert list(gateway.parse_statement(statement(bill()))) == EXPECTED


def test_a_gzipped_bill_parses_the_same(gateway):
    assert list(gateway.parse_statement(statement(gzip.compress(bill())))) == EXPECTED


def test_a_summary_that_disagrees_is_raised_after_the_last_line(gateway):
    lines = gateway.parse_statement(statement(bill(summary={**SUMMARY, "订单总金额": "96.01"})))
    assert [next(lines) for _ in EXPECTED] == EXPECTED
    with pytest.raises(StatementTotalsMismatch, match="订单总金额"):
        next(lines)


def test_a_truncated_gzip_does_not_parse(gateway):
    with pytest.raises(StatementFormatError, match="gunzip"):
        list(gateway.parse_statement(statement(gzip.compress(bill())[:-40])))


def test_the_statement_window_lists_refunds_on_the_day_applied_for(gateway):
    window = gateway.statement_window
    assert window.refunds == "requested"
    assert window.bounds(DAY) == (datetime(2025, 11, 20, 16, tzinfo=UTC), datetime(2025, 11, 21, 16, tzinfo=UTC))


def test_commas_inside_a_product_name_survive():
    assert EXPECTED[0].raw["商品名称"] == "茶叶, 2 × 50g"


def test_lf_without_bom_parses_the_same(gateway):
    assert list(gateway.parse_statement(statement(bill(bom=False, newline="\n")))) == EXPECTED


def test_the_exact_fee_stays_in_raw(gateway):
    lines = gateway.parse_statement(statement(bill()))
    assert [(line.fee_minor, line.raw["手续费"]) for line in lines] == [
        (53, "0.52800"), (1, "0.00600"), (5, "0.04800"), (-18, "-0.18000")]


def test_payment_amounts_are_the_order_amount_and_settlement_stays_in_raw(gateway):
    coupon = list(gateway.parse_statement(statement(bill())))[2]
    assert (coupon.amount_minor, coupon.raw["应结订单金额"], coupon.raw["代金券金额"]) == (1000, "8.00", "2.00")


def test_a_success_only_bill_of_20_columns():
    columns = [name for name in ALL_COLUMNS if name not in {
        "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额"}]
    assert len(columns) == 20
    content = bill((PAYMENT_1, PAYMENT_2), {"总交易单数": "2.0", "应结订单总金额": "88.01", "手续费总金额": "0.534",
                                           "订单总金额": "88.01"},
                   columns=columns, summary_columns=["总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"])
    lines = stub.make_gateway().parse_statement(statement(content))
    assert [(line.kind, line.amount_minor) for line in lines] == [
        (StatementLineKind.PAYMENT, 8800), (StatementLineKind.PAYMENT, 1)]


def test_a_refund_bill_of_29_columns():
    at = ALL_COLUMNS.index("代金券金额") + 1
    columns = [*ALL_COLUMNS[:at], "退款申请时间", "退款成功时间", *ALL_COLUMNS[at:]]
    assert len(columns) == 29
    refund = {**REFUND_1, "退款申请时间": "2025-11-21 12:00:00", "退款成功时间": "2025-11-21 12:00:05"}
    content = bill((refund,), {"总交易单数": "1", "应结订单总金额": "0.00", "退款总金额": "30.00",
                               "充值券退款总金额": "0.00", "手续费总金额": "-0.18", "订单总金额": "0.00",
                               "申请退款总金额": "30.00"}, columns=columns)
    (line,) = stub.make_gateway().parse_statement(statement(content))
    assert (line.kind, line.out_refund_no, line.amount_minor, line.raw["退款成功时间"]) == (
        StatementLineKind.REFUND, "SO20251120000077R01", 3000, "2025-11-21 12:00:05")


def test_an_empty_day_parses_to_no_lines(gateway):
    content = bill((), {name: "0" for name in SUMMARY_COLUMNS})
    assert list(gateway.parse_statement(statement(content))) == []


@pytest.mark.parametrize(
    "summary",
    [
        {**SUMMARY, "总交易单数": "5"},
        {**SUMMARY, "应结订单总金额": "96.02"},
        {**SUMMARY, "退款总金额": "29.99"},
        {**SUMMARY, "订单总金额": "96.01"},
        {**SUMMARY, "手续费总金额": "0.41"},
        {**SUMMARY, "申请退款总金额": "0.00"},
    ],
)
def test_a_summary_that_disagrees_with_the_rows_is_an_error(gateway, summary):
    with pytest.raises(StatementTotalsMismatch):
        list(gateway.parse_statement(statement(bill(summary=summary))))


def test_a_fee_total_written_to_the_fen_is_accepted(gateway):
    """[unconfirmed] 0.40200 in five-decimal fees may be written 0.40 in the summary."""
    assert list(gateway.parse_statement(statement(bill(summary={**SUMMARY, "手续费总金额": "0.40"})))) == EXPECTED


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (bill(rows=(row(**{**PAYMENT_1, "商户号": "1900000002"}),),
              summary={**SUMMARY, "总交易单数": "1"}), "not ours"),
        (bill(rows=(row(**{**PAYMENT_1, "商品名称": "Tea,`Cup"}),)), "fields for 27 columns"),
        (bill(rows=(row(**{**PAYMENT_1, "交易状态": "REVOKED"}),)), "unknown 交易状态"),
        (bill(rows=(row(**{**PAYMENT_1, "订单金额": "88.001"}),)), "whole number of fen"),
        (bill(rows=(row(**{**PAYMENT_1, "应结订单金额": "88,00"}),)), "not an amount"),
        (bill(rows=(row(**{**PAYMENT_1, "交易时间": "2025/11/21 09:58:30"}),)), "not a time"),
        (bill().rsplit(b"\r\n", 3)[0], "summary"),
        (bill().replace("交易状态".encode(), b"state"), "missing columns"),
        (bill().replace(b"`4,", b"`four,"), "not a count"),
        ("交易时间\r\n".encode("utf-16"), "not UTF-8"),
        (b"", "header row"),
        (b"`2025-11-21,`x\r\n", "header row"),
    ],
)
def test_malformed_bills_are_format_errors(gateway, content, match):
    with pytest.raises(StatementFormatError, match=match):
        list(gateway.parse_statement(statement(content)))


def test_format_errors_are_value_errors():
    assert issubclass(StatementFormatError, ValueError)
    assert issubclass(StatementTotalsMismatch, StatementFormatError)


# -- money and time helpers ---------------------------------------------------------


@pytest.mark.parametrize(("text", "fen"), [("0.01", 1), ("88.00", 8800), ("88.8", 8880), ("0", 0), ("-0.01", -1),
                                           ("100000000.00", 10_000_000_000)])
def test_yuan_converts_to_fen_exactly(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["0.001", "", "1e3", "+1", "1,000.00", " 1.00", "１.00", ".5", "NaN"])
def test_yuan_that_is_not_whole_fen_is_refused(text):
    with pytest.raises(ValueError):
        yuan_to_fen(text)


@pytest.mark.parametrize(("text", "fen"), [("0.01000", 1), ("0.00600", 1), ("0.00500", 1), ("0.00499", 0),
                                           ("0.00400", 0), ("-0.18000", -18), ("0.52800", 53), ("0.00000", 0)])
def test_fees_round_half_up_to_whole_fen(text, fen):
    assert fee_yuan_to_fen(text) == fen


def test_fee_conversion_is_exact_decimal():
    assert Decimal("0.00600").scaleb(2) == Decimal("0.6")


@pytest.mark.parametrize(("text", "count"), [("45", 45), ("45.0", 45), ("1.2E7", 12_000_000)])
def test_summary_counts(text, count):
    assert count_of(text) == count


@pytest.mark.parametrize("value", [0, -1, True, 1.0, "1", None, 10**13])
def test_fen_amounts_are_positive_ints(value):
    with pytest.raises(ValueError):
        check_fen(value, "amount")


def test_rfc3339_round_trip_in_beijing_time():
    moment = datetime(2025, 11, 22, 2, 30, 0, 999, tzinfo=UTC)
    assert format_rfc3339(moment) == "2025-11-22T10:30:00+08:00"
    assert parse_rfc3339("2025-11-22T10:30:00+08:00") == moment.replace(microsecond=0)
    assert parse_rfc3339("2025-11-22T02:30:00Z") == moment.replace(microsecond=0)
    assert parse_rfc3339("2025-11-22T10:30:00.120+08:00").utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize("text", ["2025-11-22", "2025-11-22T10:30:00", "2025-11-22 10:30:00+08:00",
                                  "20251122T103000+0800", None, 1763778600])
def test_rfc3339_refuses_other_forms(text):
    with pytest.raises(ValueError):
        parse_rfc3339(text)


def test_naive_times_are_refused():
    with pytest.raises(ValueError):
        format_rfc3339(datetime(2025, 11, 22, 10, 30))
