"""API v2's calls on the sandbox's WeChat Pay trades and refunds (docs/gateways-wechatpay.md §10.3).

The same trades as API v3 (provider `wechatpay`), marked `wire["api"] =
"v2"` when a v2 `unifiedorder` created them, so that their notifications
go out in v2's format:

- `/pay/unifiedorder`: NATIVE (`product_id` required) answers `code_url`,
  the sandbox scan page; MWEB (`scene_info` with `h5_info` required)
  answers `mweb_url`, the sandbox H5 page, which lives 5 minutes (sandbox
  clock, not shortened by the time scale) from this answer. The same out_trade_no with identical
  parameters answers again (a fresh mweb_url); other parameters
  INVALID_REQUEST; paid ORDERPAID; closed or past time_expire ORDERCLOSED.
  A missing field is LACK_PARAMS, a malformed one PARAM_ERROR.
- `/pay/orderquery` (out_trade_no, or transaction_id which wins):
  `trade_state` as v3's query; unknown ORDERNOTEXIST.
- `/pay/closeorder`: SUCCESS; SYSTEMERROR within 5 minutes (times the time
  scale) of the order; ORDERPAID, ORDERCLOSED; never ordered: SUCCESS, and
  the number is voided (as v3's close).
- `/secapi/pay/refund` (mutual TLS): idempotent by out_refund_no as v3's
  refund; the answer says the refund was taken (no status); unknown or
  unpaid trade INVALID_TRANSACTIONID; another total_fee PARAM_ERROR;
  another amount under a used number, more than is left, nothing left:
  ERROR.
- `/pay/refundquery` (refund_id, out_refund_no, transaction_id,
  out_trade_no, in that priority): the `_$n` list; REFUNDNOTEXIST. Each
  refund listed counts as a refund query (a processing one may settle).
- `/pay/downloadbill`: the same file as v3's tradebill (§6.9; gzip with
  tar_type GZIP), unsigned; errors are return_code FAIL "No Bill Exist",
  "Bill Creating" (today, Beijing time), "invalid bill_date".
"""
from __future__ import annotations

import gzip
import ipaddress
import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.http import HttpResponse
from django.urls import reverse

from sandbox import config
from sandbox.exceptions import (
    RefundConflict,
    RefundExceedsRefundable,
    TradeAlreadyPaid,
    TradeClosed,
    TradeConflict,
    TradeExpired,
    TradeNotRefundable,
)
from sandbox.models import FaultRule, Refund, Trade
from sandbox.notifications import dispatcher_wake
from sandbox.runtime import provider_now, refund_processing_queries, scaled
from sandbox.server import LISTENER_URLS
from sandbox.services import (
    refund_request,
    trade_announce,
    trade_close,
    trade_find,
    trade_past_deadline,
    trade_void_unknown,
)
from sandbox.wechatpay.bills import bill_rows, bill_text
from sandbox.wechatpay.formats import BEIJING, OUT_REFUND_NO, OUT_TRADE_NO, new_prepay_id, new_refund_id
from sandbox.wechatpay.notifications import wechatpay_notify_refund
from sandbox.wechatpay.refunds import refund_find
from sandbox.wechatpay.resources import PROVIDER, REFUND_STATUSES, wire_trade_state
from sandbox.wechatpay.trades import wechatpay_refund_note_query
from sandbox.wechatpay.v2.api import V2Call, V2Fail, V2Refused, xml_response

API = "v2"
NATIVE = "NATIVE"
MWEB = "MWEB"
PAY_METHODS = {NATIVE: Trade.PayMethod.QR, MWEB: Trade.PayMethod.WAP}
H5_TYPES = frozenset({"IOS", "Android", "Wap"})
COMPACT_TIME = "%Y%m%d%H%M%S"
REFUND_TIME = "%Y-%m-%d %H:%M:%S"
DEFAULT_PAYABLE = timedelta(hours=2)
MIN_PAYABLE = timedelta(minutes=5)
CLOSE_MIN_AGE_SECONDS = 300
MWEB_LINK_LIFETIME_SECONDS = 300
MAX_FEN = 10**11
# v2 names the refund states its own way (§10.3, §12.3).
V2_REFUND_STATUSES = {"PROCESSING": "PROCESSING", "SUCCESS": "SUCCESS", "ABNORMAL": "CHANGE", "CLOSED": "REFUNDCLOSE"}
_DIGITS = re.compile(r"[0-9]{1,12}")
_COMPACT = re.compile(r"[0-9]{14}")
_BILL_DATE = re.compile(r"[0-9]{8}")


# -- fields -------------------------------------------------------------------


def _text(call: V2Call, name: str, *, max_length: int, required: bool = True,
          pattern: re.Pattern[str] | None = None) -> str:  # fmt: skip
    value = call.text(name)
    if not value:
        if required:
            raise V2Refused("LACK_PARAMS", f"缺少参数{name}")
        return ""
    if len(value) > max_length or (pattern is not None and not pattern.fullmatch(value)):
        raise V2Refused("PARAM_ERROR", f"{name}参数格式错误")
    return value


def _fen(call: V2Call, name: str) -> int:
    value = _text(call, name, max_length=12)
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_FEN:
        raise V2Refused("PARAM_ERROR", f"{name}必须是以分为单位的正整数")
    return int(value)


def _notify_url(call: V2Call, *, required: bool) -> str:
    value = _text(call, "notify_url", max_length=256, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or "?" in value or "#" in value:
            raise V2Refused("PARAM_ERROR", "notify_url必须是不带参数的http(s)绝对地址")
    return value


def _compact_time(call: V2Call, name: str) -> datetime | None:
    value = _text(call, name, max_length=14, required=False)
    if not value:
        return None
    if not _COMPACT.fullmatch(value):
        raise V2Refused("PARAM_ERROR", f"{name}格式应为yyyyMMddHHmmss")
    return datetime.strptime(value, COMPACT_TIME).replace(tzinfo=BEIJING)


def compact(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime(COMPACT_TIME)


def _page_url(name: str, trade: Trade) -> str:
    # The shopper's pages are on plain HTTP whichever listener was called.
    base = LISTENER_URLS.get("http", "")
    return base + reverse(name, args=[trade.token])


# -- unifiedorder ---------------------------------------------------------------


def _order_request(call: V2Call) -> dict[str, Any]:
    trade_type = _text(call, "trade_type", max_length=16)
    if trade_type not in PAY_METHODS:
        raise V2Refused("PARAM_ERROR", "沙箱只支持trade_type NATIVE和MWEB")
    ip = _text(call, "spbill_create_ip", max_length=64)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise V2Refused("PARAM_ERROR", "spbill_create_ip参数格式错误") from None
    fee_type = _text(call, "fee_type", max_length=16, required=False)
    if fee_type not in ("", "CNY"):
        raise V2Refused("PARAM_ERROR", "fee_type只支持CNY")
    request: dict[str, Any] = {
        "trade_type": trade_type,
        "body": _text(call, "body", max_length=128),
        "out_trade_no": _text(call, "out_trade_no", max_length=32, pattern=OUT_TRADE_NO),
        "total_fee": _fen(call, "total_fee"),
        "notify_url": _notify_url(call, required=True),
        "attach": _text(call, "attach", max_length=127, required=False),
        "time_expire": _text(call, "time_expire", max_length=14, required=False),
        "product_id": _text(call, "product_id", max_length=32, required=trade_type == NATIVE),
    }
    _compact_time(call, "time_start")
    _compact_time(call, "time_expire")
    if trade_type == MWEB:
        request["scene_info"] = _scene_info(_text(call, "scene_info", max_length=256))
    return request


def _scene_info(text: str) -> dict[str, Any]:
    try:
        scene = json.loads(text)
    except ValueError:
        raise V2Refused("PARAM_ERROR", "scene_info不是JSON") from None
    h5 = scene.get("h5_info") if isinstance(scene, dict) else None
    if not isinstance(h5, dict) or h5.get("type") not in H5_TYPES:
        raise V2Refused("PARAM_ERROR", "scene_info.h5_info.type必须是IOS/Android/Wap之一")
    return scene


def _deadline(call: V2Call, now: datetime) -> datetime:
    expire = _compact_time(call, "time_expire")
    if expire is None:
        return now + DEFAULT_PAYABLE
    if expire < now + MIN_PAYABLE:
        # §12.9: v2 wants more than 5 minutes.
        raise V2Refused("PARAM_ERROR", "time_expire时间过短，刷卡至少1分钟，其他5分钟")
    return expire


def _refuse_repeat(trade: Trade, request: dict[str, Any]) -> None:
    if trade.status == Trade.Status.PAID:
        raise V2Refused("ORDERPAID")
    if trade.status in (Trade.Status.CLOSED, Trade.Status.FAILED, Trade.Status.VOIDED) or trade_past_deadline(trade):
        raise V2Refused("ORDERCLOSED")
    if trade.wire.get("api") != API or trade.wire.get("request") != request:
        raise V2Refused("INVALID_REQUEST", "201 商户订单号重复")


def unified_order(call: V2Call, fault: FaultRule | None) -> dict[str, str]:
    request = _order_request(call)
    now = provider_now()
    existing = Trade.objects.filter(provider=PROVIDER, out_trade_no=request["out_trade_no"]).first()
    if existing is not None:
        _refuse_repeat(existing, request)
        expires_at, wire = existing.expires_at, dict(existing.wire)
    else:
        expires_at = _deadline(call, now)
        wire = {"api": API, "trade_type": request["trade_type"], "appid": call.text("appid"),
                "attach": request["attach"], "prepay_id": new_prepay_id(now), "request": request,
                "sign_type": call.sign_type}  # fmt: skip
    if request["trade_type"] == MWEB:
        # Each answer hands out a new link, valid from now.
        wire["mweb_issued_at"] = now.isoformat()
    try:
        trade = trade_announce(
            provider=PROVIDER,
            out_trade_no=request["out_trade_no"],
            amount_minor=request["total_fee"],
            subject=request["body"],
            pay_method=PAY_METHODS[request["trade_type"]],
            notify_url=request["notify_url"],
            expires_at=expires_at,
            wire=wire,
        )
    except TradeAlreadyPaid:
        raise V2Refused("ORDERPAID") from None
    except (TradeExpired, TradeClosed):
        raise V2Refused("ORDERCLOSED") from None
    except TradeConflict:
        raise V2Refused("INVALID_REQUEST", "201 商户订单号重复") from None
    answer = {"trade_type": request["trade_type"], "prepay_id": trade.wire["prepay_id"]}
    if request["trade_type"] == NATIVE:
        answer["code_url"] = _page_url("wechatpay-scan", trade)
    else:
        answer["mweb_url"] = f"{_page_url('wechatpay-h5', trade)}?prepay_id={trade.wire['prepay_id']}"
    return answer


def unified_order_target(call: V2Call) -> str:
    return "wechatpay.h5" if call.text("trade_type") == MWEB else "wechatpay.native"


def mweb_link_expired(trade: Trade) -> bool:
    """A v2 MWEB trade whose last mweb_url is older than 5 minutes on the sandbox clock.

    Not shortened by the time scale: a shopper's page must outlive the
    seconds between its opening and the press of a button; tests move the
    clock (clock_offset_seconds) instead.
    """
    issued = trade.wire.get("mweb_issued_at") if trade.wire.get("api") == API else None
    if not issued:
        return False
    return provider_now() > datetime.fromisoformat(issued) + timedelta(seconds=MWEB_LINK_LIFETIME_SECONDS)


# -- orderquery and closeorder ----------------------------------------------------


def _named_trade(call: V2Call) -> Trade | None:
    transaction_id = call.text("transaction_id")
    out_trade_no = call.text("out_trade_no")
    if not transaction_id and not out_trade_no:
        raise V2Refused("LACK_PARAMS", "transaction_id和out_trade_no必须二选一")
    trade = trade_find(PROVIDER, out_trade_no=out_trade_no, trade_no=transaction_id)
    if trade is None or trade.status == Trade.Status.VOIDED:
        return None
    if transaction_id and trade.status != Trade.Status.PAID:
        return None
    return trade


def trade_fields(trade: Trade) -> dict[str, str]:
    """What orderquery says of a trade (and what the payment notification builds on)."""
    state = wire_trade_state(trade) or "NOTPAY"
    fields = {
        "out_trade_no": trade.out_trade_no,
        "trade_state": state,
        "trade_state_desc": {"SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "未支付", "CLOSED": "已关闭",
                             "PAYERROR": "支付失败"}.get(state, state),  # fmt: skip
        "trade_type": str(trade.wire.get("trade_type", NATIVE)),
        "total_fee": str(trade.amount_minor),
        "fee_type": "CNY",
        "attach": str(trade.wire.get("attach", "")),
    }
    if trade.status == Trade.Status.PAID:
        assert trade.paid_at is not None and trade.trade_no  # trade_pay() stamps both
        fields.update(transaction_id=trade.trade_no, cash_fee=str(trade.amount_minor), time_end=compact(trade.paid_at),
                      openid=config.WECHATPAY_PAYER_OPENID, is_subscribe="N",
                      bank_type=config.WECHATPAY_BANK_TYPE)  # fmt: skip
    return fields


def order_query(call: V2Call, fault: FaultRule | None) -> dict[str, str]:
    trade = _named_trade(call)
    if trade is None:
        raise V2Refused("ORDERNOTEXIST")
    return trade_fields(trade)


def close_order(call: V2Call, fault: FaultRule | None) -> dict[str, str]:
    out_trade_no = _text(call, "out_trade_no", max_length=32, pattern=OUT_TRADE_NO)
    trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
    if trade is None:
        trade_void_unknown(provider=PROVIDER, out_trade_no=out_trade_no)
        return {}
    if trade.status in (Trade.Status.VOIDED, Trade.Status.FAILED):
        return {}
    if trade.status == Trade.Status.PAID:
        raise V2Refused("ORDERPAID")
    if trade.status == Trade.Status.CLOSED:
        raise V2Refused("ORDERCLOSED")
    if provider_now() - trade.created_at < scaled(CLOSE_MIN_AGE_SECONDS):
        raise V2Refused("SYSTEMERROR", "订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟")
    try:
        trade_close(trade, announced_to=Trade.Status.CLOSED)
    except TradeAlreadyPaid:
        raise V2Refused("ORDERPAID") from None
    return {}


def trade_reference(call: V2Call) -> str:
    if call.text("out_trade_no"):
        return call.text("out_trade_no")
    trade = Trade.objects.filter(provider=PROVIDER, trade_no=call.text("transaction_id") or None).first()
    return trade.out_trade_no if trade is not None else ""


# -- refund and refundquery -------------------------------------------------------


def refund_fields(refund: Refund, index: int | None = None) -> dict[str, str]:
    """A refund's fields, with `_$n` suffixes in a refund query's list."""
    suffix = "" if index is None else f"_{index}"
    status = V2_REFUND_STATUSES[REFUND_STATUSES[refund.status]]
    fields = {
        f"out_refund_no{suffix}": refund.out_refund_no,
        f"refund_id{suffix}": refund.refund_id,
        f"refund_fee{suffix}": str(refund.amount_minor),
        f"settlement_refund_fee{suffix}": str(refund.amount_minor),
    }
    if index is not None:
        fields.update({f"refund_status{suffix}": status, f"refund_channel{suffix}": "ORIGINAL",
                       f"refund_account{suffix}": "REFUND_SOURCE_UNSETTLED_FUNDS",
                       f"refund_recv_accout{suffix}": "支付用户零钱"})  # fmt: skip
        if refund.succeeded_at is not None and status == "SUCCESS":
            fields[f"refund_success_time{suffix}"] = refund.succeeded_at.astimezone(BEIJING).strftime(REFUND_TIME)
    return fields


def refund_create(call: V2Call, fault: FaultRule | None) -> dict[str, str]:
    out_refund_no = _text(call, "out_refund_no", max_length=64, pattern=OUT_REFUND_NO)
    total_fee = _fen(call, "total_fee")
    refund_fee = _fen(call, "refund_fee")
    if call.text("refund_fee_type") not in ("", "CNY"):
        raise V2Refused("PARAM_ERROR", "refund_fee_type只支持CNY")
    reason = _text(call, "refund_desc", max_length=80, required=False)
    notify_url = _notify_url(call, required=False)
    trade = _named_trade(call)
    if trade is None or trade.status != Trade.Status.PAID:
        raise V2Refused("INVALID_TRANSACTIONID", "订单不存在或未支付")
    if total_fee != trade.amount_minor:
        raise V2Refused("PARAM_ERROR", "订单金额total_fee与原订单不一致")
    used = refund_find(out_refund_no)
    if used is not None and used.trade_id != trade.pk:
        raise V2Refused("ERROR", "out_refund_no已用于另一笔订单的退款")
    queries = fault.params["queries"] if fault is not None and fault.mode == "processing" else \
        refund_processing_queries(PROVIDER)  # fmt: skip
    try:
        with transaction.atomic():
            refund, created = refund_request(trade, out_refund_no=out_refund_no, amount_minor=refund_fee,
                                             reason=reason, processing_queries=queries,
                                             refund_id=new_refund_id(provider_now()), notify_url=notify_url)  # fmt: skip
            refund = Refund.objects.select_related("trade").get(pk=refund.pk)
            if created and refund.status == Refund.Status.SUCCEEDED:
                wechatpay_notify_refund(refund)
            elif created:
                transaction.on_commit(dispatcher_wake)
    except RefundConflict:
        raise V2Refused("ERROR", "订单金额或退款金额与之前请求不一致，请核实后再试") from None
    except TradeNotRefundable:
        raise V2Refused("ERROR", "订单已全额退款") from None
    except RefundExceedsRefundable:
        raise V2Refused("ERROR", "申请退款金额超过订单可退金额") from None
    assert trade.trade_no is not None  # a paid trade has its transaction_id
    return {
        "transaction_id": trade.trade_no,
        "out_trade_no": trade.out_trade_no,
        **refund_fields(refund),
        "total_fee": str(trade.amount_minor),
        "settlement_total_fee": str(trade.amount_minor),
        "fee_type": "CNY",
        "cash_fee": str(trade.amount_minor),
        "cash_refund_fee": str(refund.amount_minor),
        "coupon_refund_fee": "0",
        "refund_channel": "",
    }


def refund_create_reference(call: V2Call) -> str:
    return trade_reference(call)


def _queried_refunds(call: V2Call) -> tuple[Trade, list[Refund], bool]:
    refund_id, out_refund_no = call.text("refund_id"), call.text("out_refund_no")
    if refund_id or out_refund_no:
        refunds = Refund.objects.filter(trade__provider=PROVIDER).select_related("trade")
        refund = refunds.filter(refund_id=refund_id).first() if refund_id else refund_find(out_refund_no)
        if refund is None:
            raise V2Refused("REFUNDNOTEXIST")
        return refund.trade, [refund], False
    trade = _named_trade(call)
    if trade is None or not trade.refunds.exists():
        raise V2Refused("REFUNDNOTEXIST")
    return trade, list(trade.refunds.all()), True


def refund_query(call: V2Call, fault: FaultRule | None) -> dict[str, str]:
    trade, refunds, by_trade = _queried_refunds(call)
    listed = [wechatpay_refund_note_query(refund) for refund in refunds]
    assert trade.trade_no is not None  # only paid trades have refunds
    fields = {"transaction_id": trade.trade_no, "out_trade_no": trade.out_trade_no,
              "total_fee": str(trade.amount_minor), "cash_fee": str(trade.amount_minor), "fee_type": "CNY",
              "refund_count": str(len(listed))}  # fmt: skip
    if by_trade:
        fields["total_refund_count"] = str(len(listed))
    for index, refund in enumerate(listed):
        fields.update(refund_fields(Refund.objects.select_related("trade").get(pk=refund.pk), index))
    return fields


def refund_query_reference(call: V2Call) -> str:
    refund = refund_find(call.text("out_refund_no")) if call.text("out_refund_no") else None
    return refund.trade.out_trade_no if refund is not None else trade_reference(call)


# -- downloadbill -----------------------------------------------------------------


def download_bill(call: V2Call, fault: FaultRule | None) -> HttpResponse:
    text = call.text("bill_date")
    if not _BILL_DATE.fullmatch(text):
        raise V2Fail("invalid bill_date")
    try:
        day = datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise V2Fail("invalid bill_date") from None
    bill_type = call.text("bill_type") or "ALL"
    if bill_type not in ("ALL", "SUCCESS", "REFUND"):
        raise V2Fail("invalid bill_type")
    tar_type = call.text("tar_type")
    if tar_type not in ("", "GZIP"):
        raise V2Fail("invalid tar_type")
    today = provider_now().astimezone(BEIJING).date()
    if day > today:
        raise V2Fail("invalid bill_date")
    if day == today:
        raise V2Fail("Bill Creating")
    rows = bill_rows(day, bill_type)
    if not rows:
        raise V2Fail("No Bill Exist")
    content = bill_text(rows, bill_type).encode("utf-8")
    if tar_type == "GZIP":
        content = gzip.compress(content)
    # §10.3: on success the body is the file itself, unsigned.
    response = xml_response(content)
    response["Content-Type"] = "application/octet-stream" if tar_type else "text/plain; charset=utf-8"
    return response
