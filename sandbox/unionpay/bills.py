"""UnionPay settlement files (docs/gateways-alipay-unionpay.md B11), built from the sandbox's trades.

The file for settlement day D covers what happened from 23:00 on D-1 to
23:00 on D (Beijing, sandbox clock): consumes paid and refunds that
succeeded in that window. It is ready once the window has closed; before,
or for a day without transactions, the file transfer answers 98.

`fileContent` is base64 of a zlib-compressed ZIP named
`<merId>_<yyyyMMdd>.zip` holding:
- `INN<yyMMdd>01ZM_<merId>`: one fixed-width line per transaction, GBK, CRLF,
  the 42 fields of B11 at their byte widths, one space between them;
  amounts 12 digits of fen, fees and settlement amounts with a C/D letter
  (consume: fee D = charged, settleAmt C = credited; refund: fee C, settleAmt
  D [sandbox assumption, B11 has no refund sample]); fee 0.6 %;
- `INN<yyMMdd>01ZME_<merId>`: the error and adjustment file, empty;
- `RD<yyyyMMdd>01_<merId>`: the summary report, GBK, whose `合计` line holds
  the count, the amount (refunds negative), the fee and the net in yuan
  [sandbox layout: the real report's was never seen].

Standing fault rules on `unionpay.file_content` put chosen discrepancies
into the ZM file (a line left out, an amount changed, a line doubled, a
stranger's consume added); the RD totals always match the lines written.
"""
from __future__ import annotations

import base64
import io
import zipfile
import zlib
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox import config
from sandbox.faults import fault_standing_rules
from sandbox.models import FaultRule, Refund, Trade
from sandbox.runtime import provider_now
from sandbox.unionpay.messages import BEIJING, short_time
from sandbox.unionpay.wire import PROVIDER

CONTENT_TARGET = "unionpay.file_content"
LINE_END = b"\r\n"
CUTOFF = time(23, 0)

# B11: (name, width in bytes) of a ZM line.
ZM_LAYOUT: tuple[tuple[str, int], ...] = (
    ("tradeNo", 3), ("acqInsCode", 11), ("sendInsCode", 11), ("traceNo", 6), ("txnTime", 10),
    ("payCardNo", 19), ("txnAmt", 12), ("merCatCode", 4), ("termType", 2), ("queryId", 21),
    ("oldPayType", 2), ("orderId", 32), ("payCardType", 2), ("origTraceNo", 6), ("origTxnTime", 10),
    ("merCharge", 13), ("settleAmt", 13), ("payType", 4), ("groupMerCode", 15), ("txnType", 2),
    ("txnSubType", 2), ("bizType", 6), ("accType", 2), ("billType", 4), ("billNo", 32),
    ("interactMode", 1), ("origQryId", 21), ("merId", 15), ("accountType", 1), ("subMerId", 15),
    ("subMerAbbr", 32), ("subMerAccountAmt", 13), ("settleNetAmt", 13), ("termId", 8), ("merReserved", 32),
    ("discountAmt", 13), ("invoiceAmt", 13), ("instalmentFee", 12), ("instalmentCount", 2), ("tradeMedia", 1),
    ("field41", 32), ("reserved", 98),
)  # fmt: skip


@dataclass(frozen=True)
class FileLine:
    refund: bool
    order_id: str
    query_id: str
    amount_minor: int
    happened_at: datetime
    trace_no: str
    orig_query_id: str = ""
    orig_trace_no: str = ""
    orig_txn_time: str = ""


def settlement_day(mmdd: str) -> date:
    """settleDate has no year (B11): the latest such day not after today (sandbox clock)."""
    today = provider_now().astimezone(BEIJING).date()
    for year in (today.year, today.year - 1):
        try:
            candidate = date(year, int(mmdd[:2]), int(mmdd[2:]))
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise ValueError(mmdd)


def window(day: date) -> tuple[datetime, datetime]:
    end = datetime.combine(day, CUTOFF, tzinfo=BEIJING)
    return end - timedelta(days=1), end


def fee_minor(amount_minor: int) -> int:
    fee = Decimal(amount_minor) * config.UNIONPAY_FEE_PER_MILLE / 1000
    return int(fee.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _recorded_lines(day: date) -> list[FileLine]:
    start, end = window(day)
    lines = []
    for trade in Trade.objects.filter(provider=PROVIDER, status=Trade.Status.PAID, paid_at__gte=start,
                                      paid_at__lt=end):
        assert trade.paid_at is not None and trade.trade_no is not None
        lines.append(FileLine(False, trade.out_trade_no, trade.trade_no, trade.amount_minor, trade.paid_at,
                              str(trade.wire.get("traceNo", "000000"))))
    refunds = Refund.objects.filter(trade__provider=PROVIDER, status=Refund.Status.SUCCEEDED,
                                    succeeded_at__gte=start, succeeded_at__lt=end).select_related("trade")
    for refund in refunds:
        assert refund.succeeded_at is not None
        trade = refund.trade
        lines.append(FileLine(True, refund.out_refund_no, refund.refund_id, refund.amount_minor, refund.succeeded_at,
                              str(refund.wire.get("traceNo", "000000")), orig_query_id=trade.trade_no or "",
                              orig_trace_no=str(trade.wire.get("traceNo", "")),
                              orig_txn_time=str(trade.wire.get("traceTime", ""))))
    return sorted(lines, key=lambda line: line.happened_at)


def _applies(rule: FaultRule, line: FileLine, trade_of: dict[str, str]) -> bool:
    wanted_refund = rule.params.get("kind", "payment") == "refund"
    owner = trade_of.get(line.order_id, line.order_id)
    return line.refund == wanted_refund and owner == rule.out_trade_no


def _apply_rule(rule: FaultRule, lines: list[FileLine], day: date, trade_of: dict[str, str]) -> list[FileLine]:
    if rule.params.get("bill_date", day.isoformat()) != day.isoformat():
        return lines
    if rule.mode == "omit":
        return [line for line in lines if not _applies(rule, line, trade_of)]
    if rule.mode == "alter_amount":
        delta = rule.params["delta_minor"]
        return [replace(line, amount_minor=line.amount_minor + delta) if _applies(rule, line, trade_of) else line
                for line in lines]
    if rule.mode == "duplicate":
        doubled: list[FileLine] = []
        for line in lines:
            doubled.extend([line, line] if _applies(rule, line, trade_of) else [line])
        return doubled
    if rule.mode == "extra_line":
        moment = datetime.combine(day, time(12, 0), tzinfo=BEIJING)
        stranger = FileLine(False, rule.out_trade_no or f"SANDBOXEXTRA{rule.pk:08d}",
                            moment.strftime("%y%m%d%H%M%S") + f"{rule.pk:09d}", rule.params["amount_minor"],
                            moment, "999999")
        return [*lines, stranger]
    return lines


def file_lines(day: date) -> list[FileLine]:
    """The day's lines, with the discrepancies the standing fault rules ask for."""
    lines = _recorded_lines(day)
    rules = fault_standing_rules(CONTENT_TARGET)
    if rules:
        trade_of = dict(Refund.objects.filter(trade__provider=PROVIDER).values_list("out_refund_no",
                                                                                    "trade__out_trade_no"))
        for rule in rules:
            lines = _apply_rule(rule, lines, day, trade_of)
    return lines


def _cell(value: str, width: int, *, right: bool = False) -> bytes:
    data = value.encode("gbk")
    if len(data) > width:
        raise ValueError(f"{value!r} is wider than {width} bytes")
    padding = b" " * (width - len(data))
    return padding + data if right else data + padding


def _zm_line(line: FileLine) -> bytes:
    fee = fee_minor(line.amount_minor)
    settle = line.amount_minor - fee
    charged, credited = ("C", "D") if line.refund else ("D", "C")
    values = {
        "tradeNo": "S30" if line.refund else "S56",
        "acqInsCode": config.UNIONPAY_ACQ_INS_CODE,
        "sendInsCode": config.UNIONPAY_SEND_INS_CODE,
        "traceNo": line.trace_no,
        "txnTime": short_time(line.happened_at),
        "payCardNo": config.UNIONPAY_CARD_NO,
        "txnAmt": f"{line.amount_minor:012d}",
        "merCatCode": "5311",
        "termType": "07",
        "queryId": line.query_id,
        "oldPayType": "01",
        "orderId": line.order_id,
        "payCardType": "01",
        "origTraceNo": line.orig_trace_no,
        "origTxnTime": line.orig_txn_time,
        "merCharge": f"{charged}{fee:012d}",
        "settleAmt": f"{credited}{settle:012d}",
        "payType": "0001",
        "txnType": "04" if line.refund else "01",
        "txnSubType": "00" if line.refund else "01",
        "bizType": "000201",
        "accType": "01",
        "interactMode": "1",
        "origQryId": line.orig_query_id,
        "merId": config.UNIONPAY_MER_ID,
        "accountType": "0",
        "settleNetAmt": f"{credited}{settle:012d}",
    }
    return b" ".join(_cell(values.get(name, ""), width) for name, width in ZM_LAYOUT)


def _yuan(fen: int) -> str:
    return str(Decimal(fen).scaleb(-2).quantize(Decimal("0.01")))


def _report(day: date, lines: list[FileLine]) -> bytes:
    def sums(chosen: list[FileLine]) -> tuple[int, int, int, int]:
        amount = sum(-line.amount_minor if line.refund else line.amount_minor for line in chosen)
        fee = sum(-fee_minor(line.amount_minor) if line.refund else fee_minor(line.amount_minor) for line in chosen)
        return len(chosen), amount, fee, amount - fee

    rows = ["中国银联全渠道商户交易汇总表", f"商户代码：{config.UNIONPAY_MER_ID}    清算日期：{day:%Y%m%d}",
            f"{'交易类型':<8}{'笔数':>8}{'交易金额':>16}{'手续费':>14}{'清算净额':>16}"]
    for label, chosen in (("消费", [line for line in lines if not line.refund]),
                          ("退货", [line for line in lines if line.refund])):
        count, amount, fee, net = sums(chosen)
        rows.append(f"{label:<8}{count:>8}{_yuan(amount):>16}{_yuan(fee):>14}{_yuan(net):>16}")
    count, amount, fee, net = sums(lines)
    rows.append(f"{'合计':<8}{count:>8}{_yuan(amount):>16}{_yuan(fee):>14}{_yuan(net):>16}")
    return "\r\n".join(rows).encode("gbk") + LINE_END


def settlement_zip(day: date, lines: list[FileLine]) -> tuple[str, bytes]:
    short = day.strftime("%y%m%d")
    mer_id = config.UNIONPAY_MER_ID
    entries = {
        f"INN{short}01ZM_{mer_id}": b"".join(_zm_line(line) + LINE_END for line in lines),
        f"INN{short}01ZME_{mer_id}": b"",
        f"RD{day:%Y%m%d}01_{mer_id}": _report(day, lines),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return f"{mer_id}_{day:%Y%m%d}.zip", buffer.getvalue()


def settlement_file(day: date) -> tuple[str, str] | None:
    """(fileName, fileContent) for settlement day `day`; None (98) before its
    window closed or when nothing happened in it."""
    if provider_now() < window(day)[1]:
        return None
    lines = file_lines(day)
    if not lines:
        return None
    name, archive = settlement_zip(day, lines)
    return name, base64.b64encode(zlib.compress(archive)).decode("ascii")
