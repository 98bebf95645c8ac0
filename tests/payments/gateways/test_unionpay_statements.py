"""UnionPay's settlement file: fetched by file transfer (txnType 76) and parsed
(docs/gateways-alipay-unionpay.md B11). Lines are built here byte by byte from
the B11 table, apart from the adapter's and the sandbox's own layouts."""
from __future__ import annotations

import base64
import io
import zipfile
import zlib
from datetime import date, datetime

import pytest

from payments.exceptions import (
    NoStatement,
    NoStatementReason,
    ResponseNotVerified,
    StatementFormatError,
    StatementTotalsMismatch,
)
from payments.gateways.base import StatementFile, StatementLineKind
from payments.gateways.unionpay.formats import BEIJING
from payments.gateways.unionpay.statements import settlement_window
from tests.payments.gateways.unionpay_support import FILE_TRANSFER_URL, MER_ID

DAY = date(2024, 4, 30)
# B11: the widths of the 42 fields, in order.
WIDTHS = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4, 32, 1, 21, 15, 1, 15,
          32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98]
# Field numbers (1-based) this test fills in.
TXN_TIME, TXN_AMT, QUERY_ID, ORDER_ID, FEE, SETTLE, TXN_TYPE, ORIG_QRY_ID, MER, SUB_MER_ABBR = (
    5, 7, 10, 12, 16, 17, 20, 27, 28, 31)


def zm_line(*, order_id: str, query_id: str, amount: int, fee: str, settle: str, txn_type: str = "01",
            txn_time: str = "0430100005", orig_query_id: str = "", mer_id: str = MER_ID, abbr: str = "") -> bytes:
    values = {1: "S56", 2: "00010000", 3: "00010000", 4: "067402", TXN_TIME: txn_time, 6: "6216***********0018",
              TXN_AMT: f"{amount:012d}", QUERY_ID: query_id, ORDER_ID: order_id, FEE: fee, SETTLE: settle,
              TXN_TYPE: txn_type, ORIG_QRY_ID: orig_query_id, MER: mer_id, SUB_MER_ABBR: abbr}
    cells = []
    for number, width in enumerate(WIDTHS, start=1):
        data = values.get(number, "").encode("gbk")
        cells.append(data + b" " * (width - len(data)))
    return b" ".join(cells)


PAYMENT = zm_line(order_id="2024043012345678P01", query_id="782404301000050674028", amount=476800,
                  fee="D000000002861", settle="C000000473939")
REFUND = zm_line(order_id="2024043012345678R01", query_id="782404301500000000001", amount=100000, fee="C000000000600",
                 settle="D000000099400", txn_type="04", orig_query_id="782404301000050674028", txn_time="0430150000")


def report(count: int, amount: str, fee: str, net: str) -> bytes:
    rows = ["中国银联全渠道商户交易汇总表", f"商户代码：{MER_ID}", "交易类型  笔数  交易金额  手续费  清算净额",
            f"合计   {count}   {amount}   {fee}   {net}"]
    return "\r\n".join(rows).encode("gbk")


def settlement_zip(lines: list[bytes], rd: bytes | None, *, zme: bytes = b"", mer_id: str = MER_ID) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"INN24043001ZM_{mer_id}", b"".join(line + b"\r\n" for line in lines))
        archive.writestr(f"INN24043001ZME_{mer_id}", zme)
        if rd is not None:
            archive.writestr(f"RD2024043001_{mer_id}", rd)
    return buffer.getvalue()


def statement(content: bytes) -> StatementFile:
    return StatementFile(day=DAY, filename=f"{MER_ID}_20240430.zip", content=content)


GOOD = settlement_zip([PAYMENT, REFUND], report(2, "3768.00", "22.61", "3745.39"))


def test_the_zm_lines_become_statement_lines_with_fees(unionpay_gateway):
    payment, refund = list(unionpay_gateway.parse_statement(statement(GOOD)))

    assert (payment.kind, payment.out_trade_no, payment.gateway_trade_no) == (
        StatementLineKind.PAYMENT, "2024043012345678P01", "782404301000050674028")
    assert (payment.amount_minor, payment.fee_minor) == (476800, 2861)
    assert payment.occurred_at == datetime(2024, 4, 30, 10, 0, 5, tzinfo=BEIJING)
    assert (refund.kind, refund.out_refund_no, refund.gateway_refund_id) == (
        StatementLineKind.REFUND, "2024043012345678R01", "782404301500000000001")
    # The file names the refunded payment only by its queryId.
    assert (refund.out_trade_no, refund.gateway_trade_no) == ("", "782404301000050674028")
    assert (refund.amount_minor, refund.fee_minor) == (100000, -600)
    assert payment.raw["merCharge"] == "D000000002861"


def test_lines_off_the_reports_totals_are_refused(unionpay_gateway):
    for totals in [(3, "3768.00", "22.61", "3745.39"), (2, "3768.01", "22.61", "3745.39"),
                   (2, "3768.00", "22.62", "3745.39"), (2, "3768.00", "22.61", "3745.40")]:
        with pytest.raises(StatementTotalsMismatch):
            list(unionpay_gateway.parse_statement(statement(settlement_zip([PAYMENT, REFUND], report(*totals)))))


def test_a_field_cut_by_bytes_survives_chinese_text_before_it(unionpay_gateway):
    """Cut by GBK bytes: a sub-merchant name in Chinese does not shift what follows it."""
    line = zm_line(order_id="2024043012345678P02", query_id="782404301000050674029", amount=100, fee="D000000000001",
                   settle="C000000000099", abbr="杭州茶叶店")
    (parsed,) = list(unionpay_gateway.parse_statement(statement(settlement_zip([line], report(1, "1.00", "0.01", "0.99")))))
    assert parsed.raw["subMerAbbr"] == "杭州茶叶店"
    assert parsed.amount_minor == 100


def test_a_transaction_just_after_23_00_of_the_day_before_belongs_to_the_day(unionpay_gateway):
    start, end = settlement_window(date(2024, 1, 1))
    assert (start, end) == (datetime(2023, 12, 31, 23, tzinfo=BEIJING), datetime(2024, 1, 1, 23, tzinfo=BEIJING))
    line = zm_line(order_id="2023123112345678P01", query_id="782312312330000000001", amount=100, fee="D000000000001",
                   settle="C000000000099", txn_time="1231233000")
    content = settlement_zip([line], report(1, "1.00", "0.01", "0.99"))
    (parsed,) = list(unionpay_gateway.parse_statement(StatementFile(day=date(2024, 1, 1), filename="x.zip",
                                                               content=content)))
    assert parsed.occurred_at == datetime(2023, 12, 31, 23, 30, tzinfo=BEIJING)


@pytest.mark.parametrize("content, message", [
    (b"not a zip", "not a ZIP"),
    (settlement_zip([PAYMENT], None), "0 RD files"),
    (settlement_zip([PAYMENT], report(1, "4768.00", "28.61", "4739.39"), zme=b"S56 adjusted"), "ZME"),
    (settlement_zip([PAYMENT], b"\xff\xfe"), "GBK"),
    (settlement_zip([PAYMENT], "汇总\r\n无合计".encode("gbk")), "0 total lines"),
    (settlement_zip([PAYMENT[:200]], report(1, "4768.00", "28.61", "4739.39")), "shorter than a ZM line"),
    (settlement_zip([PAYMENT.replace(b"D000000002861", b"X000000002861")], report(1, "4768.00", "28.61", "4739.39")),
     "merCharge"),
    (settlement_zip([zm_line(order_id="X1234567", query_id="1", amount=1, fee="D000000000000",
                             settle="C000000000001", txn_type="99")], report(1, "0.01", "0.00", "0.01")), "txnType"),
    (settlement_zip([zm_line(order_id="X1234567", query_id="1", amount=1, fee="D000000000000",
                             settle="C000000000001", mer_id="898110000009999")], report(1, "0.01", "0.00", "0.01")),
     "merchant"),
])
def test_files_that_are_not_as_b11_says_are_refused(unionpay_gateway, content, message):
    with pytest.raises(StatementFormatError, match=message):
        list(unionpay_gateway.parse_statement(statement(content)))


# -- the file transfer -------------------------------------------------------------


def file_answer(fields, *, code="00", content: bytes = GOOD):
    answer = {"accessType": "0", "bizType": "000000", "encoding": "UTF-8", "fileType": "00", "merId": MER_ID,
              "respCode": code, "respMsg": "成功[0000000]", "settleDate": fields["settleDate"], "signMethod": "01",
              "txnSubType": "01", "txnTime": fields["txnTime"], "txnType": "76", "version": "5.1.0"}
    if code == "00":
        answer.update(fileName=f"{MER_ID}_20240430.zip",
                      fileContent=base64.b64encode(zlib.compress(content)).decode("ascii"))
    return answer


def test_the_file_is_fetched_for_its_settle_date_and_unpacked(unionpay_gateway, unionpay_api):
    unionpay_api.answer(FILE_TRANSFER_URL, lambda fields: unionpay_api.signer.sign(file_answer(fields)))

    fetched = unionpay_gateway.fetch_statement(DAY)

    (sent,) = unionpay_api.sent(FILE_TRANSFER_URL)
    assert {name: sent[name] for name in ("txnType", "txnSubType", "bizType", "fileType", "settleDate",
                                          "channelType")} == {
        "txnType": "76", "txnSubType": "01", "bizType": "000000", "fileType": "00", "settleDate": "0430",
        "channelType": "07"}
    assert (fetched.day, fetched.filename, fetched.content) == (DAY, f"{MER_ID}_20240430.zip", GOOD)
    assert len(list(unionpay_gateway.parse_statement(fetched))) == 2


def test_no_file_for_the_day_is_a_clear_refusal(unionpay_gateway, unionpay_api):
    unionpay_api.answer(FILE_TRANSFER_URL, lambda fields: unionpay_api.signer.sign(file_answer(fields, code="98")))
    with pytest.raises(NoStatement) as refused:
        unionpay_gateway.fetch_statement(DAY)
    assert refused.value.reason == NoStatementReason.EITHER and "respCode 98" in str(refused.value)


def test_file_content_that_does_not_unpack_is_refused(unionpay_gateway, unionpay_api):
    def broken(fields):
        answer = file_answer(fields)
        answer["fileContent"] = base64.b64encode(b"plain zip, not zlib").decode()
        return unionpay_api.signer.sign(answer)

    unionpay_api.answer(FILE_TRANSFER_URL, broken)
    with pytest.raises(StatementFormatError, match="zlib"):
        unionpay_gateway.fetch_statement(DAY)


def test_a_file_for_another_day_is_refused(unionpay_gateway, unionpay_api):
    unionpay_api.answer(FILE_TRANSFER_URL, lambda fields: unionpay_api.signer.sign(
        {**file_answer(fields), "settleDate": "0429"}))
    with pytest.raises(ResponseNotVerified, match="settleDate"):
        unionpay_gateway.fetch_statement(DAY)
