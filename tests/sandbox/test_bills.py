"""Bill download URL and the bill ZIP built from the sandbox's own trades (A7, A11)."""
import csv
import io
import re
import zipfile
from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest
import requests

from tests.sandbox.alipay_client import BEIJING, SELLER_ID
from tests.sandbox.flows import new_out_trade_no, paid_trade, refund

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("sandbox")]

BILL_METHOD = "alipay.data.dataservice.bill.downloadurl.query"
DAYS_AGO = 3


def beijing_day(iso_moment: str) -> date:
    return datetime.fromisoformat(iso_moment).astimezone(BEIJING).date()


@pytest.fixture
def billed_day(sandbox, alipay, merchant) -> tuple[date, str, str]:
    """A past day with one payment (88.88) and one refund (30.00) of it, and
    another payment (10.00); returns (day, first out_trade_no, second)."""
    # Noon, a few days ago, on the sandbox clock: everything lands on one day.
    noon = datetime.combine(datetime.now(BEIJING).date() - timedelta(days=DAYS_AGO), time(12), tzinfo=BEIJING)
    sandbox.control("POST", "settings", {"clock_offset_seconds": (noon - datetime.now(BEIJING)).total_seconds()})
    first, second = new_out_trade_no(), new_out_trade_no()
    paid_trade(sandbox, alipay, merchant, first, amount="88.88")
    assert refund(alipay, first, "30.00", "R-BILL-1").node["fund_change"] == "Y"
    paid_trade(sandbox, alipay, merchant, second, amount="10.00")
    sandbox.control("POST", "settings", {"clock_offset_seconds": 0, "time_scale": 1.0})
    assert beijing_day(sandbox.control("GET", f"alipay/trades/{second}")["paid_at"]) == noon.date()
    return noon.date(), first, second


def download(alipay, day: date) -> tuple[str, bytes]:
    answer = alipay.call(BILL_METHOD, {"bill_type": "trade", "bill_date": day.isoformat()})
    assert answer.code == "10000", answer.node
    url = answer.node["bill_download_url"]
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    return url, response.content


def parse_bill(content: bytes) -> dict:
    """Read the ZIP the way a reconciliation parser must: GBK names and text,
    header located by name, cells stripped, footer totals as control sums."""
    archive = zipfile.ZipFile(io.BytesIO(content), metadata_encoding="gbk")
    assert all(not info.flag_bits & 0x800 for info in archive.infolist())
    (detail_name,) = [name for name in archive.namelist() if name.endswith("_业务明细.csv")]
    (summary_name,) = [name for name in archive.namelist() if name.endswith("_业务明细(汇总).csv")]
    text = archive.read(detail_name).decode("gbk")
    lines = text.split("\r\n")
    header_at = next(i for i, line in enumerate(lines) if line.startswith("#") and "业务明细列表" in line) + 1
    raw_rows = [line for line in lines[header_at + 1 :] if line and not line.startswith("#")]
    header = next(csv.reader([lines[header_at]]))
    rows = [dict(zip(header, cells, strict=True)) for cells in csv.reader(raw_rows)]
    footer = [line for line in lines if line.startswith("#交易合计") or line.startswith("#退款合计")]
    return {
        "names": (detail_name, summary_name),
        "summary": archive.read(summary_name).decode("gbk"),
        "text": text,
        "rows": rows,
        "footer": footer,
    }


def footer_totals(footer: list[str]) -> dict[str, tuple[int, Decimal]]:
    totals = {}
    for line in footer:
        match = re.match(r"#(交易|退款)合计：(\d+)笔，商家实收(?:退款)?共(-?\d+\.\d{2})元", line)
        assert match, line
        totals[match.group(1)] = (int(match.group(2)), Decimal(match.group(3)))
    return totals


def row_totals(rows: list[dict]) -> dict[str, tuple[int, Decimal]]:
    totals = {}
    for kind in ("交易", "退款"):
        chosen = [row for row in rows if row["业务类型"] == kind]
        totals[kind] = (len(chosen), sum((Decimal(row["商家实收（元）"]) for row in chosen), Decimal("0.00")))
    return totals


def test_the_bill_holds_the_days_payments_and_refunds(alipay, sdk, billed_day):
    day, first, second = billed_day

    answer = sdk.server_api(BILL_METHOD, {"bill_type": "trade", "bill_date": day.isoformat()})
    url, content = download(alipay, day)
    bill = parse_bill(content)

    assert answer["code"] == "10000" and answer["bill_download_url"].startswith("http://")
    assert url.endswith(f"/{SELLER_ID}0156_{day:%Y%m%d}.csv.zip")
    assert bill["names"][0] == f"{SELLER_ID}0156_{day:%Y%m%d}_业务明细.csv"
    assert bill["text"].startswith("#支付宝业务明细查询\r\n")
    assert f"#账号：[{SELLER_ID}0156]" in bill["text"]
    assert f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]" in bill["text"]
    by_kind = {(row["商户订单号"].strip(), row["业务类型"]): row for row in bill["rows"]}
    payment, refund_line = by_kind[(first, "交易")], by_kind[(first, "退款")]
    assert payment["商户订单号"] == first + "\t" and payment["支付宝交易号"].endswith("\t")
    assert (payment["订单金额（元）"], payment["商家实收（元）"]) == ("88.88", "88.88")
    assert (refund_line["订单金额（元）"], refund_line["商家实收（元）"]) == ("-30.00", "-30.00")
    assert refund_line["退款批次号/请求号"].strip() == "R-BILL-1"
    assert refund_line["支付宝交易号"] == payment["支付宝交易号"]
    assert by_kind[(second, "交易")]["商家实收（元）"] == "10.00"
    assert footer_totals(bill["footer"]) == row_totals(bill["rows"]) == {
        "交易": (2, Decimal("98.88")),
        "退款": (1, Decimal("-30.00")),
    }
    assert "合计" in bill["summary"]


def test_today_and_future_days_are_invalid_arguments(alipay):
    today = datetime.now(BEIJING).date()

    for day in (today, today + timedelta(days=1)):
        answer = alipay.call(BILL_METHOD, {"bill_type": "trade", "bill_date": day.isoformat()})
        assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-parameter")


@pytest.mark.parametrize("biz", [{"bill_type": "signcustomer"}, {"bill_date": "2020/01/01"}, {"bill_date": "2020-01"}])
def test_other_bill_types_and_malformed_dates_are_invalid_arguments(alipay, biz):
    answer = alipay.call(BILL_METHOD, {"bill_type": "trade", "bill_date": "2020-01-01", **biz})

    assert (answer.code, answer.sub_code) == ("40002", "isv.invalid-parameter")


def test_a_day_without_trades_has_no_bill(alipay):
    answer = alipay.call(BILL_METHOD, {"bill_type": "trade", "bill_date": "2020-01-01"})

    assert (answer.code, answer.sub_code) == ("40004", "isp.bill_not_exist")


def test_the_download_link_expires_after_thirty_scaled_seconds(sandbox, alipay, billed_day):
    day = billed_day[0]
    sandbox.control("POST", "settings", {"time_scale": 0.001})
    url = alipay.call(BILL_METHOD, {"bill_type": "trade", "bill_date": day.isoformat()}).node["bill_download_url"]

    sandbox.wait_for(lambda: requests.get(url, timeout=10).status_code == 410, timeout=10)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"mode": "omit"}, {"交易": (1, Decimal("10.00")), "退款": (1, Decimal("-30.00"))}),
        ({"mode": "duplicate"}, {"交易": (3, Decimal("187.76")), "退款": (1, Decimal("-30.00"))}),
        ({"mode": "alter_amount", "delta_minor": 100}, {"交易": (2, Decimal("99.88")), "退款": (1, Decimal("-30.00"))}),
        ({"mode": "omit", "kind": "refund"}, {"交易": (2, Decimal("98.88")), "退款": (0, Decimal("0.00"))}),
    ],
)
def test_bill_content_rules_put_discrepancies_into_the_bill(sandbox, alipay, billed_day, rule, expected):
    day, first, _ = billed_day
    sandbox.control("POST", "faults", {"target": "alipay.bill_content", "out_trade_no": first, **rule})

    bill = parse_bill(download(alipay, day)[1])
    again = parse_bill(download(alipay, day)[1])

    assert footer_totals(bill["footer"]) == row_totals(bill["rows"]) == expected
    assert again["rows"] == bill["rows"]


def test_an_extra_line_adds_a_trade_the_merchant_never_had(sandbox, alipay, billed_day):
    day = billed_day[0]
    sandbox.control(
        "POST", "faults",
        {"target": "alipay.bill_content", "mode": "extra_line", "amount_minor": 500, "bill_date": day.isoformat(),
         "out_trade_no": "STRANGER_1"},
    )  # fmt: skip

    bill = parse_bill(download(alipay, day)[1])

    stranger = [row for row in bill["rows"] if row["商户订单号"].strip() == "STRANGER_1"]
    assert [row["商家实收（元）"] for row in stranger] == ["5.00"]
    assert footer_totals(bill["footer"])["交易"] == (3, Decimal("103.88"))


# -- bills that go wrong on purpose, read by the shop's own adapter --------------------


@pytest.fixture
def adapter(sandbox):
    """The shop's Alipay adapter, pointed at the sandbox with its keys."""
    from payments.gateways.alipay import AlipayGateway
    from tests.sandbox.alipay_client import APP_ID

    keys = sandbox.keys_dir / "alipay"
    return AlipayGateway({
        "app_id": APP_ID, "seller_id": SELLER_ID, "gateway_url": sandbox.alipay_gateway_url,
        "app_private_key_path": str(keys / "app_private_key.pem"),
        "alipay_public_key_path": str(keys / "alipay_public_key.pem"),
    })


def test_the_adapter_replaces_an_expired_link(sandbox, adapter, billed_day):
    day, first, second = billed_day
    sandbox.control("POST", "faults", {"target": "alipay.bill", "mode": "expired_link"})

    lines = list(adapter.parse_statement(adapter.fetch_statement(day)))

    assert {line.out_trade_no for line in lines} == {first, second} and len(lines) == 3
    assert sandbox.control("GET", "faults")["faults"][0]["applied"] == 1


def test_a_zip_cut_in_half_is_an_integrity_error(sandbox, adapter, billed_day):
    from payments.exceptions import StatementIntegrityError

    sandbox.control("POST", "faults", {"target": "alipay.bill", "mode": "truncate"})

    with pytest.raises(StatementIntegrityError, match="cut short"):
        adapter.fetch_statement(billed_day[0])


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ({"target": "alipay.bill", "mode": "wrong_encoding"}, "not GBK"),
        ({"target": "alipay.bill_content", "mode": "foreign_merchant"}, "not ours"),
        ({"target": "alipay.bill_content", "mode": "bad_totals", "delta_minor": 100}, "交易合计"),
    ],
    ids=["wrong_encoding", "foreign_merchant", "bad_totals"],
)
def test_bills_that_do_not_parse(sandbox, adapter, billed_day, fault, match):
    from payments.exceptions import StatementFormatError

    day = billed_day[0]
    sandbox.control("POST", "faults", {**fault, "bill_date": day.isoformat()} if "bill_content" in fault["target"]
                    else fault)

    with pytest.raises(StatementFormatError, match=match):
        list(adapter.parse_statement(adapter.fetch_statement(day)))
