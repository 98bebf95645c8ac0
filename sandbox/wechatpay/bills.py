"""Trade bills (交易账单), built from the sandbox's trades (docs/gateways-wechatpay.md §6.8, §6.9).

`GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL|SUCCESS|REFUND
[&tar_type=GZIP]` builds the day's file at once and answers (signed)
`{"hash_type":"SHA1","hash_value":<SHA-1 of the uncompressed file>,
"download_url":<base>/wechatpay/v3/billdownload/file?token=...}`. The link
lives 5 minutes (times the time scale). `GET download_url`, signed by the
merchant like any call, answers 200 with the file (gzip when asked),
`application/octet-stream`, WITHOUT signature headers; an expired link 400
INVALID_REQUEST, an unknown one 404 RESOURCE_NOT_EXISTS. A day with no line
is 400 NO_STATEMENT_EXIST; today (Beijing, sandbox clock) 400
STATEMENT_CREATING; a later day 400 PARAM_ERROR.

The file: UTF-8 with a BOM, CRLF lines; the detail header (27 columns for
ALL, 20 for SUCCESS, 29 for REFUND); one row per payment of that day
(交易状态 SUCCESS, 订单金额 = amount.total) and, for ALL and REFUND, one
per refund started that day that is not closed (交易状态 REFUND,
申请退款金额 = the refund, 商户退款单号 = out_refund_no, 退款状态 its
status); every field of a row prefixed with a backtick; then the summary
header and its backticked row, whose totals are the sums of the rows
written. Our mchid in every row; 特约商户号 0; fees 0.6% with five decimals
(negative on refund rows).

Standing `wechatpay.bill_content` rules put chosen discrepancies into the
file (a row left out, doubled, an amount changed, a stranger's payment
added, a currency changed, a row of another merchant); the summary always
matches the rows actually written, unless a `bad_totals` rule puts it off
on purpose. A `wechatpay.bill` fault may hand out a link expired already,
serve the gzip cut in half (`truncate`), or the file in GBK with its hash
announced for those bytes (`wrong_encoding`).
"""
from __future__ import annotations

import gzip
import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from django.http import HttpResponse
from django.urls import reverse
from django.utils import timezone

from sandbox import config
from sandbox.faults import fault_standing_rules
from sandbox.models import BillLink, FaultRule, Refund, Trade
from sandbox.runtime import provider_now, scaled
from sandbox.wechatpay.api import Answer, V3Call
from sandbox.wechatpay.errors import WechatPayError, param_error
from sandbox.wechatpay.formats import BEIJING, bill_time, fee_text, yuan_text
from sandbox.wechatpay.resources import PROVIDER, REFUND_STATUSES

BILL_LINK_LIFETIME_SECONDS = 300
BILL_CONTENT_TARGET = "wechatpay.bill_content"
BILL_TYPES = ("ALL", "SUCCESS", "REFUND")
FOREIGN_MCHID = "1900009999"
TAR_TYPES = ("", "GZIP")
PAYMENT = "payment"
REFUND = "refund"
LINE_END = "\r\n"
BOM = "\ufeff"
FIELD_MARK = "`"
# 0.6% in units of 0.00001 yuan per fen: fen * 6 = the fee * 100000.
FEE_PER_FEN = 6
FEE_RATE = "0.60%"
BILLED_REFUNDS = (Refund.Status.PROCESSING, Refund.Status.SUCCEEDED, Refund.Status.ABNORMAL)

ALL_COLUMNS = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
]  # fmt: skip
REFUND_ONLY_COLUMNS = ("微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额")
SUCCESS_COLUMNS = [name for name in ALL_COLUMNS if name not in REFUND_ONLY_COLUMNS]
REFUND_COLUMNS = ALL_COLUMNS[:14] + ["退款申请时间", "退款成功时间"] + ALL_COLUMNS[14:]
COLUMNS = {"ALL": ALL_COLUMNS, "SUCCESS": SUCCESS_COLUMNS, "REFUND": REFUND_COLUMNS}
# Summary column -> the detail column it totals ("" for the row count).
SUMMARY = {
    "总交易单数": "",
    "应结订单总金额": "应结订单金额",
    "退款总金额": "退款金额",
    "充值券退款总金额": "充值券退款金额",
    "手续费总金额": "手续费",
    "订单总金额": "订单金额",
    "申请退款总金额": "申请退款金额",
}
SUCCESS_SUMMARY = ("总交易单数", "应结订单总金额", "手续费总金额", "订单总金额")


@dataclass(frozen=True)
class BillRow:
    kind: str  # PAYMENT or REFUND
    moment: datetime  # paid, or refund started
    appid: str
    transaction_id: str
    out_trade_no: str
    trade_type: str
    description: str
    attach: str
    amount_minor: int  # the payment's amount, or the refund's
    refund_id: str = ""
    out_refund_no: str = ""
    refund_status: str = ""
    refund_succeeded_at: datetime | None = None
    currency: str = "CNY"
    mchid: str = config.WECHATPAY_MCHID


def _day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=BEIJING)
    return start, start + timedelta(days=1)


def _recorded_rows(day: date) -> list[BillRow]:
    start, end = _day_window(day)
    payments = Trade.objects.filter(provider=PROVIDER, status=Trade.Status.PAID, paid_at__gte=start, paid_at__lt=end)
    refunds = Refund.objects.filter(
        trade__provider=PROVIDER, status__in=BILLED_REFUNDS, created_at__gte=start, created_at__lt=end
    ).select_related("trade")
    rows = [_payment_row(trade) for trade in payments]
    for refund in refunds:
        row = _trade_row(refund.trade, REFUND, refund.created_at, refund.amount_minor)
        rows.append(
            replace(
                row,
                refund_id=refund.refund_id,
                out_refund_no=refund.out_refund_no,
                refund_status=REFUND_STATUSES[refund.status],
                refund_succeeded_at=refund.succeeded_at,
            )
        )
    return sorted(rows, key=lambda row: row.moment)


def _payment_row(trade: Trade) -> BillRow:
    assert trade.paid_at is not None  # selected by paid_at, so it has one
    return _trade_row(trade, PAYMENT, trade.paid_at, trade.amount_minor)


def _trade_row(trade: Trade, kind: str, moment: datetime, amount_minor: int) -> BillRow:
    return BillRow(
        kind=kind,
        moment=moment,
        appid=trade.wire.get("appid", config.WECHATPAY_APPID),
        transaction_id=trade.trade_no or "",
        out_trade_no=trade.out_trade_no,
        trade_type=trade.wire.get("trade_type", "NATIVE"),
        description=trade.subject,
        attach=trade.wire.get("attach", ""),
        amount_minor=amount_minor,
    )


def _rule_applies(rule: FaultRule, row: BillRow) -> bool:
    return row.out_trade_no == rule.out_trade_no and row.kind == rule.params.get("kind", PAYMENT)


def _apply_content_rule(rule: FaultRule, rows: list[BillRow], day: date) -> list[BillRow]:
    if rule.params.get("bill_date", day.isoformat()) != day.isoformat():
        return rows
    if rule.mode == "omit":
        return [row for row in rows if not _rule_applies(rule, row)]
    if rule.mode == "alter_amount":
        delta = rule.params["delta_minor"]
        return [replace(row, amount_minor=row.amount_minor + delta) if _rule_applies(rule, row) else row for row in rows]
    if rule.mode == "alter_currency":
        return [replace(row, currency=rule.params["currency"]) if _rule_applies(rule, row) else row for row in rows]
    if rule.mode == "foreign_merchant":
        return [replace(row, mchid=FOREIGN_MCHID) if _rule_applies(rule, row) else row for row in rows]
    if rule.mode == "duplicate":
        doubled: list[BillRow] = []
        for row in rows:
            doubled.extend([row, row] if _rule_applies(rule, row) else [row])
        return doubled
    if rule.mode == "extra_line":
        stranger = BillRow(
            kind=PAYMENT,
            moment=datetime.combine(day, time(12, 0), tzinfo=BEIJING),
            appid=config.WECHATPAY_APPID,
            transaction_id="4200000000" + day.strftime("%Y%m%d") + f"{rule.pk:010d}",
            out_trade_no=rule.out_trade_no or f"SANDBOX_EXTRA_{rule.pk}",
            trade_type="NATIVE",
            description="沙箱额外交易",
            attach="",
            amount_minor=rule.params["amount_minor"],
        )
        return [*rows, stranger]
    return rows


def bill_rows(day: date, bill_type: str) -> list[BillRow]:
    """The day's rows of that bill type, with the standing fault rules' discrepancies."""
    rows = _recorded_rows(day)
    for rule in fault_standing_rules(BILL_CONTENT_TARGET):
        rows = _apply_content_rule(rule, rows, day)
    if bill_type == "SUCCESS":
        return [row for row in rows if row.kind == PAYMENT]
    if bill_type == "REFUND":
        return [row for row in rows if row.kind == REFUND]
    return rows


def _clean(text: str) -> str:
    # A backtick or a line break inside a field would break the layout.
    return " ".join(text.replace(FIELD_MARK, "'").split())


def _cells(row: BillRow) -> dict[str, str]:
    zero = "0.00"
    payment = row.kind == PAYMENT
    amount = yuan_text(row.amount_minor)
    fee = FEE_PER_FEN * row.amount_minor * (1 if payment else -1)
    return {
        "交易时间": bill_time(row.moment),
        "公众账号ID": row.appid,
        "商户号": row.mchid,
        "特约商户号": "0",
        "设备号": "",
        "微信订单号": row.transaction_id,
        "商户订单号": row.out_trade_no,
        "用户标识": config.WECHATPAY_PAYER_OPENID,
        "交易类型": row.trade_type,
        "交易状态": "SUCCESS" if payment else "REFUND",
        "付款银行": config.WECHATPAY_BANK_TYPE,
        "货币种类": row.currency,
        "应结订单金额": amount if payment else zero,
        "代金券金额": zero,
        "退款申请时间": "" if payment else bill_time(row.moment),
        "退款成功时间": bill_time(row.refund_succeeded_at) if row.refund_succeeded_at else "",
        "微信退款单号": "0" if payment else row.refund_id,
        "商户退款单号": "0" if payment else row.out_refund_no,
        "退款金额": zero if payment else amount,
        "充值券退款金额": zero,
        "退款类型": "" if payment else "ORIGINAL",
        "退款状态": "" if payment else row.refund_status,
        "商品名称": _clean(row.description),
        "商户数据包": _clean(row.attach),
        "手续费": fee_text(fee),
        "费率": FEE_RATE,
        "订单金额": amount if payment else zero,
        "申请退款金额": zero if payment else amount,
        "费率备注": "",
    }


def _summary(table: list[dict[str, str]], bill_type: str, delta_minor: int = 0) -> tuple[list[str], list[str]]:
    names = list(SUCCESS_SUMMARY) if bill_type == "SUCCESS" else list(SUMMARY)
    values = []
    for name in names:
        column = SUMMARY[name]
        if not column:
            values.append(str(len(table)))
            continue
        total = sum(_hundred_thousandths(cells[column]) for cells in table)
        if column == "应结订单金额":
            # A `bad_totals` rule: the summary no longer adds up.
            total += delta_minor * 1000
        values.append(fee_text(total) if column == "手续费" else yuan_text(total // 1000))
    return names, values


def _hundred_thousandths(text: str) -> int:
    # "-0.53328" -> -53328; "88.88" -> 8888000: exact, no floats.
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("-").partition(".")
    value = int(whole) * 100000 + int((fraction + "00000")[:5])
    return -value if negative else value


def bill_totals_delta(day: date) -> int:
    """What `bad_totals` rules of the day put the summary off by, in fen."""
    return sum(rule.params["delta_minor"] for rule in fault_standing_rules(BILL_CONTENT_TARGET)
               if rule.mode == "bad_totals" and rule.params.get("bill_date") == day.isoformat())


def bill_text(rows: list[BillRow], bill_type: str, *, totals_delta_minor: int = 0) -> str:
    columns = COLUMNS[bill_type]
    table = [_cells(row) for row in rows]
    summary_names, summary_values = _summary(table, bill_type, totals_delta_minor)
    lines = [
        ",".join(columns),
        *(FIELD_MARK + ",`".join(cells[name] for name in columns) for cells in table),
        ",".join(summary_names),
        FIELD_MARK + ",`".join(summary_values),
    ]
    return BOM + LINE_END.join(lines) + LINE_END


def _bill_date(call: V3Call) -> date:
    text = call.query_text("bill_date")
    if not text:
        raise param_error("bill_date", "为必填字段", location="query")
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise param_error("bill_date", "格式应为YYYY-MM-DD", value=text[:16], location="query") from None


def tradebill(call: V3Call, fault: FaultRule | None) -> Answer:
    day = _bill_date(call)
    bill_type = call.query_text("bill_type") or "ALL"
    if bill_type not in BILL_TYPES:
        raise param_error("bill_type", f"沙箱只提供{'/'.join(BILL_TYPES)}", value=bill_type[:16], location="query")
    tar_type = call.query_text("tar_type")
    if tar_type not in TAR_TYPES:
        raise param_error("tar_type", "只支持GZIP", value=tar_type[:16], location="query")
    today = provider_now().astimezone(BEIJING).date()
    if day > today:
        raise param_error("bill_date", "不能晚于今天", value=day.isoformat(), location="query")
    if day == today:
        raise WechatPayError("STATEMENT_CREATING", "账单生成中, 请在次日10点后下载")
    rows = bill_rows(day, bill_type)
    if not rows:
        raise WechatPayError("NO_STATEMENT_EXIST", "当日无交易, 账单文件不存在")
    text = bill_text(rows, bill_type, totals_delta_minor=bill_totals_delta(day))
    damage = fault.mode if fault is not None and fault.mode in ("truncate", "wrong_encoding") else ""
    # Wrong encoding: the file in GBK (no BOM there), its hash taken over those bytes.
    content = text.removeprefix(BOM).encode("gbk") if damage == "wrong_encoding" else text.encode("utf-8")
    expires_at = timezone.now() + scaled(BILL_LINK_LIFETIME_SECONDS)
    if fault is not None and fault.mode == "expired_link":
        expires_at = timezone.now() - timedelta(seconds=1)
    link = BillLink.objects.create(
        provider=PROVIDER,
        token=secrets.token_hex(16),
        bill_type=bill_type,
        bill_date=day,
        content=content,
        compression=tar_type,
        expires_at=expires_at,
        damage=damage,
    )
    digest = hashlib.sha1(content)
    if fault is not None and fault.mode == "bad_hash":
        # The file is served intact; the announced hash is wrong (§11 "bill
        # hash mismatch": throw the file away and ask again).
        digest.update(b"sandbox-bad-hash")
    url = call.request.build_absolute_uri(reverse("wechatpay-billdownload")) + f"?token={link.token}"
    return Answer(data={"hash_type": "SHA1", "hash_value": digest.hexdigest(), "download_url": url})


def billdownload(call: V3Call, fault: FaultRule | None) -> HttpResponse:
    link = BillLink.objects.filter(provider=PROVIDER, token=call.query_text("token")).first()
    if link is None or link.content is None:
        raise WechatPayError("RESOURCE_NOT_EXISTS", "账单下载链接不存在")
    if timezone.now() > link.expires_at:
        raise WechatPayError("INVALID_REQUEST", "账单下载链接已过期, 请重新申请")
    content = bytes(link.content)
    if link.compression == "GZIP":
        content = gzip.compress(content)
    if link.damage == "truncate":
        content = content[: len(content) // 2]
    # §6.8: the file carries no WeChat signature.
    return HttpResponse(content, content_type="application/octet-stream")
