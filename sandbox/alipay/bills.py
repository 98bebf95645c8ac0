"""Alipay trade bills (docs/gateways-alipay-unionpay.md A11), built from the sandbox's trades.

`bill.downloadurl.query` hands out a link that lives 30 s (times the time
scale); the link serves `<PID>0156_<yyyyMMdd>.csv.zip` holding two GBK CSV
files whose names are GBK too, without the ZIP UTF-8 flag:
`..._业务明细.csv` (one line per payment and per refund) and
`..._业务明细(汇总).csv` (the summary). Comment lines start with `#`, id cells
end with a TAB, refund lines carry negative amounts, and the footer holds the
control totals. A day runs from 00:00 to 00:00 Beijing time.

Standing fault rules on `alipay.bill_content` put chosen discrepancies into
the file (a line left out, an amount changed, a line doubled, a stranger's
trade added); the footer totals always match the lines actually written,
unless a `bad_totals` rule puts them off on purpose, and a
`foreign_merchant` rule writes another merchant's account in the header.
An `alipay.bill` fault may damage the file a link serves: expired already,
cut in half (`truncate`), or its CSV in UTF-8 (`wrong_encoding`).
"""
from __future__ import annotations

import io
import secrets
import zipfile
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from sandbox import config
from sandbox.alipay.formats import BEIJING, beijing_text, yuan_text
from sandbox.faults import fault_standing_rules
from sandbox.models import BillLink, FaultRule, Refund, Trade
from sandbox.runtime import provider_now, scaled

BILL_LINK_LIFETIME_SECONDS = 30
BILL_CONTENT_TARGET = "alipay.bill_content"
# The account shown in a bill: the merchant PID with Alipay's "0156" suffix.
BILL_ACCOUNT = config.ALIPAY_SELLER_ID + "0156"
FOREIGN_ACCOUNT = "20889990000000990156"
PAYMENT = "交易"
REFUND = "退款"
LINE_END = "\r\n"

DETAIL_COLUMNS = [
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
    "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）",
    "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
    "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注",
]  # fmt: skip
SUMMARY_COLUMNS = [
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）",
    "支付宝优惠（元）", "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）",
]  # fmt: skip


@dataclass(frozen=True)
class BillLine:
    kind: str  # PAYMENT or REFUND
    trade_no: str
    out_trade_no: str
    subject: str
    created_at: datetime
    finished_at: datetime
    # Signed: negative on refund lines.
    amount_minor: int
    out_request_no: str = ""
    body: str = ""


def _day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def _recorded_lines(day: date) -> list[BillLine]:
    start, end = _day_window(day)
    payments = Trade.objects.filter(
        provider="alipay", status=Trade.Status.PAID, paid_at__gte=start, paid_at__lt=end
    )
    refunds = Refund.objects.filter(
        trade__provider="alipay", status=Refund.Status.SUCCEEDED, succeeded_at__gte=start, succeeded_at__lt=end
    ).select_related("trade")
    lines = [_payment_line(trade) for trade in payments] + [_refund_line(refund) for refund in refunds]
    return sorted(lines, key=lambda line: line.finished_at)


def _payment_line(trade: Trade) -> BillLine:
    # trade_pay() gives every paid trade its number and both times.
    assert trade.trade_no is not None and trade.opened_at is not None and trade.paid_at is not None
    return BillLine(PAYMENT, trade.trade_no, trade.out_trade_no, trade.subject, trade.opened_at, trade.paid_at,
                    trade.amount_minor, body=trade.body)  # fmt: skip


def _refund_line(refund: Refund) -> BillLine:
    # Only paid trades are refunded; services._settle() stamps every success.
    trade = refund.trade
    assert trade.trade_no is not None and trade.opened_at is not None and refund.succeeded_at is not None
    return BillLine(REFUND, trade.trade_no, trade.out_trade_no, trade.subject, trade.opened_at,
                    refund.succeeded_at, -refund.amount_minor, refund.out_refund_no, trade.body)  # fmt: skip


def _rule_applies(rule: FaultRule, line: BillLine) -> bool:
    kind = {"payment": PAYMENT, "refund": REFUND}.get(rule.params.get("kind", "payment"))
    return line.out_trade_no == rule.out_trade_no and line.kind == kind


def _apply_content_rule(rule: FaultRule, lines: list[BillLine], day: date) -> list[BillLine]:
    if rule.params.get("bill_date", day.isoformat()) != day.isoformat():
        return lines
    if rule.mode == "omit":
        return [line for line in lines if not _rule_applies(rule, line)]
    if rule.mode == "alter_amount":
        delta = rule.params["delta_minor"]
        return [
            replace(line, amount_minor=line.amount_minor + delta) if _rule_applies(rule, line) else line
            for line in lines
        ]
    if rule.mode == "duplicate":
        doubled: list[BillLine] = []
        for line in lines:
            doubled.extend([line, line] if _rule_applies(rule, line) else [line])
        return doubled
    if rule.mode == "extra_line":
        moment = datetime.combine(day, time(12, 0), tzinfo=BEIJING)
        stranger = BillLine(
            PAYMENT,
            trade_no=day.strftime("%Y%m%d") + "22001" + f"{rule.pk:015d}",
            out_trade_no=rule.out_trade_no or f"SANDBOX_EXTRA_{rule.pk}",
            subject="沙箱额外交易",
            created_at=moment,
            finished_at=moment,
            amount_minor=rule.params["amount_minor"],
        )
        return [*lines, stranger]
    return lines


def bill_lines(day: date) -> list[BillLine]:
    """The day's lines, with any discrepancies the standing fault rules ask for."""
    lines = _recorded_lines(day)
    for rule in fault_standing_rules(BILL_CONTENT_TARGET):
        lines = _apply_content_rule(rule, lines, day)
    return lines


@dataclass(frozen=True)
class BillDamage:
    """What the day-wide rules change in the file around its lines."""

    account: str = BILL_ACCOUNT
    totals_delta_minor: int = 0


def bill_damage(day: date) -> BillDamage:
    damage = BillDamage()
    for rule in fault_standing_rules(BILL_CONTENT_TARGET):
        if rule.params.get("bill_date") != day.isoformat():
            continue
        if rule.mode == "foreign_merchant":
            damage = replace(damage, account=FOREIGN_ACCOUNT)
        elif rule.mode == "bad_totals":
            damage = replace(damage, totals_delta_minor=damage.totals_delta_minor + rule.params["delta_minor"])
    return damage


def bill_has_lines(day: date) -> bool:
    return bool(bill_lines(day))


def bill_zip_name(day: date) -> str:
    return f"{BILL_ACCOUNT}_{day:%Y%m%d}.csv.zip"


def _chinese_date(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y年%m月%d日 %H:%M:%S")


def _detail_row(line: BillLine) -> list[str]:
    amount = yuan_text(line.amount_minor)
    zero = "0.00"
    # Ids end with a TAB so spreadsheets keep them as text (A11).
    return [
        line.trade_no + "\t", line.out_trade_no + "\t", line.kind, line.subject,
        beijing_text(line.created_at), beijing_text(line.finished_at), "", "", "", "",
        config.ALIPAY_BUYER_LOGON_ID, amount, amount, zero, zero, zero, zero, zero, "", zero, zero,
        (line.out_request_no + "\t") if line.out_request_no else "", zero, zero, line.body,
    ]  # fmt: skip


def _csv_line(cells: list[str]) -> str:
    # Alipay writes bare cells; quote only what would break the line.
    quoted = [f'"{cell}"' if ("," in cell or '"' in cell) else cell for cell in cells]
    return ",".join(quoted)


def _totals(lines: list[BillLine], kind: str) -> tuple[int, int]:
    chosen = [line for line in lines if line.kind == kind]
    return len(chosen), sum(line.amount_minor for line in chosen)


def bill_detail_text(day: date, lines: list[BillLine], exported_at: datetime,
                     damage: BillDamage | None = None) -> str:
    damage = damage or BillDamage()
    start, end = _day_window(day)
    payment_count, payment_total = _totals(lines, PAYMENT)
    payment_total += damage.totals_delta_minor
    refund_count, refund_total = _totals(lines, REFUND)
    rows = [
        "#支付宝业务明细查询",
        f"#账号：[{damage.account}]",
        f"#起始日期：[{_chinese_date(start)}]   终止日期：[{_chinese_date(end)}]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        _csv_line(DETAIL_COLUMNS),
        *(_csv_line(_detail_row(line)) for line in lines),
        "#-----------------------------------------业务明细列表结束------------------------------------",
        f"#交易合计：{payment_count}笔，商家实收共{yuan_text(payment_total)}元，商家优惠共0.00元",
        f"#退款合计：{refund_count}笔，商家实收退款共{yuan_text(refund_total)}元，商家优惠退款共0.00元",
        f"#导出时间：[{_chinese_date(exported_at)}]",
    ]
    return LINE_END.join(rows) + LINE_END


def bill_summary_text(day: date, lines: list[BillLine], exported_at: datetime) -> str:
    start, end = _day_window(day)
    payment_count, payment_total = _totals(lines, PAYMENT)
    refund_count, refund_total = _totals(lines, REFUND)
    net = yuan_text(payment_total + refund_total)
    zero = "0.00"
    row = [payment_count, refund_count, net, net, zero, zero, zero, zero, zero, net]
    rows = [
        "#支付宝业务汇总查询",
        f"#账号：[{BILL_ACCOUNT}]",
        f"#起始日期：[{_chinese_date(start)}]   终止日期：[{_chinese_date(end)}]",
        "#-----------------------------------------业务汇总列表----------------------------------------",
        _csv_line(SUMMARY_COLUMNS),
        _csv_line(["", "", *map(str, row)]),
        _csv_line(["合计", "", *map(str, row)]),
        "#-----------------------------------------业务汇总列表结束------------------------------------",
        f"#导出时间：[{_chinese_date(exported_at)}]",
    ]
    return LINE_END.join(rows) + LINE_END


class GbkNamedZipInfo(zipfile.ZipInfo):
    """An entry whose name is stored in GBK with the UTF-8 flag (bit 11) clear,
    as Alipay's bills are; zipfile would otherwise write UTF-8 and set it."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 (zipfile's name)
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def bill_zip(day: date, *, encoding: str = "gbk") -> bytes:
    lines = bill_lines(day)
    exported_at = provider_now()
    stem = f"{BILL_ACCOUNT}_{day:%Y%m%d}"
    entries = {
        f"{stem}_业务明细.csv": bill_detail_text(day, lines, exported_at, bill_damage(day)),
        f"{stem}_业务明细(汇总).csv": bill_summary_text(day, lines, exported_at),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in entries.items():
            info = GbkNamedZipInfo(name, date_time=exported_at.astimezone(BEIJING).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode(encoding))
    return buffer.getvalue()


def bill_link_create(day: date, *, fault: FaultRule | None = None) -> BillLink:
    """A download link; an `alipay.bill` fault rule may hand it out expired, or damage what it serves."""
    expires_at = timezone.now() + scaled(BILL_LINK_LIFETIME_SECONDS)
    if fault is not None and fault.mode == "expired_link":
        expires_at = timezone.now() - timedelta(seconds=1)
    damage = fault.mode if fault is not None and fault.mode in ("truncate", "wrong_encoding") else ""
    return BillLink.objects.create(
        provider="alipay",
        token=secrets.token_hex(16),
        bill_type="trade",
        bill_date=day,
        expires_at=expires_at,
        damage=damage,
    )


def bill_download_view(request: HttpRequest, token: str, filename: str) -> HttpResponse:
    link = BillLink.objects.filter(provider="alipay", token=token).first()
    if link is None or filename != bill_zip_name(link.bill_date):
        raise Http404("no such bill")
    if timezone.now() > link.expires_at:
        return HttpResponse("账单下载链接已过期 (bill link expired)", status=410, content_type="text/plain; charset=utf-8")
    content = bill_zip(link.bill_date, encoding="utf-8" if link.damage == "wrong_encoding" else "gbk")
    if link.damage == "truncate":
        content = content[: len(content) // 2]
    response = HttpResponse(content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
