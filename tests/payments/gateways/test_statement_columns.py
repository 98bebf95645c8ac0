"""The bulk bill readers (`statement_columns`) against the line parsers (`parse_statement`).

A bulk reader must give exactly the parser's lines, or refuse the bill (the
loader then reads it line by line): it may never accept a bill the parser
refuses, nor read one differently. Every bill below is read both ways.
"""
from __future__ import annotations

from datetime import UTC

import pytest

from payments.exceptions import StatementFormatError
from payments.gateways.base import StatementFile
from tests.payments.gateways import test_alipay_statements as alipay_bills
from tests.payments.gateways import test_wechatpay_statements as wechat_bills
from tests.payments.gateways.alipay_support import HEADER_25, HEADER_29, bill_row, bill_text, bill_zip
from tests.payments.gateways.fixtures.wechatpay import stub

FIELDS = ("kind", "out_trade_no", "out_refund_no", "gateway_trade_no", "gateway_refund_id", "amount_minor",
          "fee_minor", "currency", "occurred_at", "status")


def by_line(gateway, statement: StatementFile) -> list[tuple] | StatementFormatError:
    try:
        return [(str(line.kind), *(getattr(line, name) for name in FIELDS[1:-2]),
                 line.occurred_at.astimezone(UTC) if line.occurred_at else None, line.status)
                for line in gateway.parse_statement(statement)]
    except StatementFormatError as exc:
        return exc


def in_bulk(gateway, statement: StatementFile) -> list[tuple] | StatementFormatError:
    try:
        return [(*(row[name] for name in FIELDS[:-1]), row["bill_status"])
                for batch in gateway.statement_columns(statement) for row in batch.to_pylist()]
    except StatementFormatError as exc:
        return exc


def read_both(gateway, statement: StatementFile) -> tuple[list[tuple] | Exception, list[tuple] | Exception]:
    lines, columns = by_line(gateway, statement), in_bulk(gateway, statement)
    if isinstance(lines, Exception):
        assert isinstance(columns, Exception), f"the bulk reader accepted a bill the parser refuses ({lines})"
    elif not isinstance(columns, Exception):
        assert columns == lines
    return lines, columns


# -- Alipay ---------------------------------------------------------------------------


def alipay_plain(header=HEADER_25, rows=None, **options) -> StatementFile:
    rows = rows if rows is not None else [
        bill_row(header, trade_no="2024043022001400001234567890", out_trade_no="SO1_1", kind="交易", subject="龙井茶",
                 finished="2024-04-30 10:00:30", amount="88.88", received="88.88", fee="-0.53"),
        bill_row(header, trade_no="2024043022001400001234567890", out_trade_no="SO1_1", kind="退款", subject="龙井茶",
                 finished="2024-04-30 18:20:01", amount="-20.00", received="-20.00", refund_no="RF1", fee="0.12"),
        bill_row(header, trade_no="2024043022001400001234567891", out_trade_no="SO2_1", kind="交易", finished="",
                 amount="0.5", received="", fee=""),
    ]
    options.setdefault("payment_total", "#交易合计：2笔，商家实收共88.88元，商家优惠共0.00元")
    options.setdefault("refund_total", "#退款合计：1笔，商家实收退款共-20.00元，商家优惠退款共0.00元")
    newline = options.pop("newline", "\r\n")
    return StatementFile(day=alipay_bills.DAY, filename="b.zip",
                         content=bill_zip(bill_text(header, rows, **options), newline=newline))


@pytest.mark.parametrize(("header", "newline"), [(HEADER_25, "\r\n"), (HEADER_29, "\n")])
def test_a_plain_alipay_bill_is_read_in_bulk_to_the_same_lines(alipay_gateway, header, newline):
    lines, columns = read_both(alipay_gateway, alipay_plain(header, newline=newline))
    assert not isinstance(columns, Exception), columns
    assert [(line[0], line[5], line[6]) for line in columns] == [
        ("payment", 8888, 53), ("refund", 2000, -12), ("payment", 50, 0)]
    assert columns[2][8] is None


def test_an_alipay_bill_with_a_quoted_cell_is_left_to_the_parser(alipay_gateway):
    lines, columns = read_both(alipay_gateway, alipay_bills.bill())
    assert len(lines) == 2
    # Refused for its quoted cell: "龙井茶, 礼盒".
    assert isinstance(columns, StatementFormatError)


def test_an_empty_alipay_list_is_read_in_bulk_too(alipay_gateway):
    lines, columns = read_both(alipay_gateway, alipay_plain(rows=[], payment_total="#交易合计：0笔，商家实收共0.00元",
                                                            refund_total=None))
    assert lines == [] and columns == []


def alipay_refused() -> list[StatementFile]:
    plain = alipay_plain().content
    header = [*HEADER_25, "商户识别号"]
    ours = bill_row(header, trade_no="1", out_trade_no="SO1", kind="交易", amount="1.00", received="1.00",
                    finished="2024-04-30 10:00:30")
    rows = {
        "foreign pid": [ours.rsplit(",", 1)[0] + ",2088999000000099\t"],
        "odd kind": [bill_row(HEADER_25, kind="冻结", amount="1.00", received="1.00")],
        "three decimals": [bill_row(HEADER_25, kind="交易", amount="88.888", received="88.88")],
        "leading zero": [bill_row(HEADER_25, kind="交易", amount="088.88", received="88.88")],
        "exponent": [bill_row(HEADER_25, kind="交易", amount="1e3", received="1e3")],
        "bad time": [bill_row(HEADER_25, kind="交易", amount="1.00", received="1.00", finished="2024-04-31 10:00:00")],
        "short row": [",".join(bill_row(HEADER_25, kind="交易").split(",")[:20])],
        "long row": [bill_row(HEADER_25, kind="交易", amount="1.00", received="1.00") + ",x"],
        "no such day": [bill_row(HEADER_25, kind="交易", amount="1.00", received="1.00", finished="2023-02-29 10:00:00")],
        "second 60": [bill_row(HEADER_25, kind="交易", amount="1.00", received="1.00", finished="2024-04-30 23:59:60")],
    }
    bills = [StatementFile(alipay_bills.DAY, "b.zip", bill_zip(bill_text(
        header if name == "foreign pid" else HEADER_25, lines, payment_total="#交易合计：1笔，商家实收共1.00元",
        refund_total=None))) for name, lines in rows.items()]
    complete = bill_text(HEADER_25, [rows["odd kind"][0]], payment_total=None, refund_total=None)
    return [
        *bills,
        alipay_plain(payment_total="#交易合计：3笔，商家实收共88.88元，商家优惠共0.00元"),
        alipay_plain(refund_total=None),
        alipay_plain(end_marker=False),
        StatementFile(alipay_bills.DAY, "b.zip", bill_zip(complete[:6])),
        StatementFile(alipay_bills.DAY, "b.zip", b"<html>expired</html>"),
        StatementFile(alipay_bills.DAY, "b.zip", plain[: len(plain) // 2]),
    ]


@pytest.mark.parametrize("statement", alipay_refused())
def test_every_alipay_bill_the_parser_refuses_is_refused_in_bulk(alipay_gateway, statement):
    lines, columns = read_both(alipay_gateway, statement)
    assert isinstance(lines, StatementFormatError), lines
    assert isinstance(columns, StatementFormatError)


def test_a_non_ascii_number_the_parser_takes_is_left_to_it(alipay_gateway):
    row = bill_row(HEADER_25, trade_no="1", out_trade_no="订单1", kind="交易", amount="1.00", received="1.00",
                   finished="2024-04-30 10:00:30")
    statement = StatementFile(alipay_bills.DAY, "b.zip", bill_zip(bill_text(
        HEADER_25, [row], payment_total="#交易合计：1笔，商家实收共1.00元", refund_total=None)))
    lines, columns = read_both(alipay_gateway, statement)
    assert lines[0][1] == "订单1" and isinstance(columns, StatementFormatError)


# -- WeChat Pay -----------------------------------------------------------------------


def wechat_statement(content: bytes) -> StatementFile:
    return wechat_bills.statement(content)


@pytest.mark.parametrize("options", [{}, {"bom": False, "newline": "\n"}])
def test_a_wechat_bill_is_read_in_bulk_to_the_same_lines(options):
    lines, columns = read_both(stub.make_gateway(), wechat_statement(wechat_bills.bill(**options)))
    assert not isinstance(columns, Exception), columns
    assert [(line[0], line[5], line[6]) for line in columns] == [
        ("payment", 8800, 53), ("payment", 1, 1), ("payment", 1000, 5), ("refund", 3000, -18)]


def test_a_wechat_bill_of_29_columns_and_one_of_20_are_read_in_bulk():
    at = wechat_bills.ALL_COLUMNS.index("代金券金额") + 1
    columns = [*wechat_bills.ALL_COLUMNS[:at], "退款申请时间", "退款成功时间", *wechat_bills.ALL_COLUMNS[at:]]
    refund = {**wechat_bills.REFUND_1, "退款申请时间": "2025-11-21 12:00:00", "退款成功时间": "2025-11-21 12:00:05"}
    wide = wechat_bills.bill((refund,), {"总交易单数": "1", "应结订单总金额": "0.00", "退款总金额": "30.00",
                                         "充值券退款总金额": "0.00", "手续费总金额": "-0.18", "订单总金额": "0.00",
                                         "申请退款总金额": "30.00"}, columns=columns)
    narrow_columns = [name for name in wechat_bills.ALL_COLUMNS if name not in {
        "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额"}]
    narrow = wechat_bills.bill((wechat_bills.PAYMENT_1, wechat_bills.PAYMENT_2), {
        "总交易单数": "2.0", "应结订单总金额": "88.01", "手续费总金额": "0.534", "订单总金额": "88.01"},
        columns=narrow_columns, summary_columns=["总交易单数", "应结订单总金额", "手续费总金额", "订单总金额"])
    for content, count in ((wide, 1), (narrow, 2)):
        lines, bulk = read_both(stub.make_gateway(), wechat_statement(content))
        assert not isinstance(bulk, Exception) and len(bulk) == count


def wechat_refused() -> list[bytes]:
    bill, row, payment, summary = (wechat_bills.bill, wechat_bills.row, wechat_bills.PAYMENT_1,
                                   wechat_bills.SUMMARY)
    return [
        bill(rows=(row(**{**payment, "商户号": "1900000002"}),), summary={**summary, "总交易单数": "1"}),
        bill(rows=(row(**{**payment, "商品名称": "Tea,`Cup"}),)),
        # A stray backtick and one cell fewer: the same count of pieces.
        bill(rows=(row(**{**payment, "商品名称": "Tea`Cup"}),), columns=wechat_bills.ALL_COLUMNS[:-1]),
        bill(rows=(row(**{**payment, "交易状态": "REVOKED"}),)),
        bill(rows=(row(**{**payment, "订单金额": "88.001"}),)),
        bill(rows=(row(**{**payment, "应结订单金额": "88,00"}),)),
        bill(rows=(row(**{**payment, "手续费": "0.123456"}),)),
        bill(rows=(row(**{**payment, "交易时间": "2025/11/21 09:58:30"}),)),
        bill(rows=(row(**{**payment, "交易时间": ""}),)),
        bill(rows=(row(**{**payment, "交易时间": "2025-11-31 09:58:30"}),)),
        bill(rows=(row(**{**payment, "交易时间": "2025-11-21T09:58:30"}),)),
        bill().rsplit(b"\r\n", 3)[0],
        bill().replace("交易状态".encode(), b"state"),
        bill().replace(b"`4,", b"`four,"),
        bill(summary={**summary, "手续费总金额": "0.41"}),
        bill(summary={**summary, "申请退款总金额": "0.00"}),
        "交易时间\r\n".encode("utf-16"),
        b"",
    ]


@pytest.mark.parametrize("content", wechat_refused())
def test_every_wechat_bill_the_parser_refuses_is_refused_in_bulk(content):
    lines, columns = read_both(stub.make_gateway(), wechat_statement(content))
    assert isinstance(lines, StatementFormatError), lines
    assert isinstance(columns, StatementFormatError)


def test_a_blank_line_among_the_wechat_rows_is_skipped_as_the_parser_does():
    content = wechat_bills.bill().replace(b"\r\n`2025-11-21 10:01:02", b"\r\n\r\n`2025-11-21 10:01:02")
    lines, columns = read_both(stub.make_gateway(), wechat_statement(content))
    assert len(lines) == 4 and columns == lines


def test_adapters_without_a_bulk_reader_say_so(make_alipay_gateway):
    from payments.gateways.unionpay import UnionPayGateway

    assert UnionPayGateway.statement_columns is not type(make_alipay_gateway()).statement_columns
    assert UnionPayGateway.statement_columns(None, None) is None  # type: ignore[arg-type]
