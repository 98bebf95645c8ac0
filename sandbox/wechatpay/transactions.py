"""Paying: Native and H5 prepay, the order queries and close (docs/gateways-wechatpay.md §6.1-§6.4).

- `POST /v3/pay/transactions/native` -> `code_url`, the sandbox scan page
  (`/wechatpay/scan/<token>/`); `POST /v3/pay/transactions/h5` (needs
  `scene_info.payer_client_ip` and `scene_info.h5_info.type`) -> `h5_url`,
  the sandbox H5 page (`/wechatpay/h5/<token>/?prepay_id=...`). The order
  exists at once: NOTPAY. The same out_trade_no with identical parameters
  answers the same URL again; other parameters (or the other trade type)
  give 403 OUT_TRADE_NO_USED; a paid order 400 ORDERPAID; a closed one
  400 ORDER_CLOSED, as does one past its time_expire. time_expire is
  moved up to 1 minute after the order when sooner; without one an order
  is payable for 7 days.
- `GET .../out-trade-no/{no}?mchid=` and `GET .../id/{transaction_id}?mchid=`
  -> the §5.3 object; 404 ORDER_NOT_EXIST when unknown (by id: until paid).
- `POST .../out-trade-no/{no}/close` `{"mchid"}` -> 204. Refused with 403
  RULE_LIMIT until 5 minutes (times the time scale, on the sandbox clock)
  after the order was created; 400 ORDERPAID when paid, 400 ORDER_CLOSED
  when already closed. An out_trade_no never prepaid answers 204 (as a
  community report says real WeChat does) and can never be paid
  afterwards; a query then says ORDER_NOT_EXIST. A PAYERROR order answers
  204 and stays PAYERROR.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.http import HttpResponse
from django.urls import reverse

from sandbox.exceptions import TradeAlreadyPaid, TradeClosed, TradeConflict, TradeExpired
from sandbox.models import FaultRule, Trade
from sandbox.runtime import provider_now, scaled
from sandbox.services import trade_announce, trade_close, trade_find, trade_past_deadline, trade_void_unknown
from sandbox.wechatpay import fields
from sandbox.wechatpay.api import Answer, V3Call
from sandbox.wechatpay.errors import WechatPayError, param_error
from sandbox.wechatpay.formats import OUT_TRADE_NO, new_prepay_id, parse_rfc3339
from sandbox.wechatpay.resources import PROVIDER, transaction_object

NATIVE = "NATIVE"
MWEB = "MWEB"  # H5
PAY_METHODS = {NATIVE: Trade.PayMethod.QR, MWEB: Trade.PayMethod.WAP}
H5_TYPES = frozenset({"iOS", "Android", "Wap"})
# §6.1: time_expire at least 1 minute after the order (adjusted up); none
# given: payable for 7 days.
MIN_PAYABLE = timedelta(minutes=1)
DEFAULT_PAYABLE = timedelta(days=7)
# The provider refuses to close an order this soon after creating it.
CLOSE_MIN_AGE_SECONDS = 300


def _not_exist() -> WechatPayError:
    return WechatPayError("ORDER_NOT_EXIST")


def _path_out_trade_no(value: str) -> str:
    if not OUT_TRADE_NO.fullmatch(value):
        raise param_error("out_trade_no", "格式错误", value=value[:64], location="path")
    return value


def _query_mchid(call: V3Call) -> None:
    mchid = call.query_text("mchid")
    if not mchid:
        raise param_error("mchid", "为必填字段", location="query")
    fields.check_mchid(mchid, location="query")


# -- prepay -------------------------------------------------------------------


def _prepay_request(call: V3Call, trade_type: str) -> dict[str, Any]:
    """The checked fields that must be identical when an order is asked for again."""
    data = call.data
    fields.check_mchid(fields.text(data, "mchid", max_length=32), location="body")
    appid = fields.text(data, "appid", max_length=32)
    fields.check_appid(appid)
    amount = fields.node(data, "amount")
    request: dict[str, Any] = {
        "trade_type": trade_type,
        "appid": appid,
        "description": fields.text(data, "description", max_length=127),
        "out_trade_no": fields.text(data, "out_trade_no", max_length=32, pattern=OUT_TRADE_NO),
        "time_expire": fields.text(data, "time_expire", max_length=64, required=False),
        "attach": fields.text(data, "attach", max_length=128, required=False),
        "notify_url": fields.notify_url(data, "notify_url", max_length=255, required=True),
        "total": fields.fen(amount, "total", label="amount.total"),
        "currency": fields.currency(amount, label="amount.currency", required=False),
    }
    if request["time_expire"]:
        try:
            parse_rfc3339(request["time_expire"])
        except ValueError:
            raise param_error("time_expire", "不是RFC 3339格式的时间", value=request["time_expire"]) from None
    if trade_type == MWEB:
        scene = fields.node(data, "scene_info", label="scene_info")
        fields.text(scene, "payer_client_ip", max_length=45, label="scene_info.payer_client_ip")
        h5_info = fields.node(scene, "h5_info", label="scene_info.h5_info")
        h5_type = fields.text(h5_info, "type", max_length=32, label="scene_info.h5_info.type")
        if h5_type not in H5_TYPES:
            raise param_error("scene_info.h5_info.type", f"必须是{'/'.join(sorted(H5_TYPES))}之一", value=h5_type)
    return request


def _deadline(request: dict[str, Any], now: datetime) -> datetime:
    if not request["time_expire"]:
        return now + DEFAULT_PAYABLE
    return max(parse_rfc3339(request["time_expire"]), now + MIN_PAYABLE)


def _refuse_repeat(trade: Trade, request: dict[str, Any]) -> None:
    """An order asked for again: only the identical request, while payable, is welcome."""
    if trade.status == Trade.Status.PAID:
        raise WechatPayError("ORDERPAID", "该订单已支付")
    if trade.status in (Trade.Status.CLOSED, Trade.Status.FAILED, Trade.Status.VOIDED):
        raise WechatPayError("ORDER_CLOSED", "该订单已关闭, 请使用新的商户订单号下单")
    if trade.wire.get("request") != request:
        raise WechatPayError("OUT_TRADE_NO_USED", "商户订单号重复: 同一订单号的下单参数必须与原请求一致")
    if trade_past_deadline(trade):
        raise WechatPayError("ORDER_CLOSED", "该订单已过支付截止时间(time_expire), 请使用新的商户订单号下单")


def _prepay(call: V3Call, trade_type: str) -> Trade:
    request = _prepay_request(call, trade_type)
    now = provider_now()
    existing = Trade.objects.filter(provider=PROVIDER, out_trade_no=request["out_trade_no"]).first()
    if existing is not None:
        _refuse_repeat(existing, request)
        expires_at, wire = existing.expires_at, existing.wire
    else:
        expires_at = _deadline(request, now)
        wire = {
            "trade_type": trade_type,
            "appid": request["appid"],
            "attach": request["attach"],
            "prepay_id": new_prepay_id(now),
            "request": request,
        }
        if trade_type == MWEB:
            scene = call.data["scene_info"]
            wire.update(payer_client_ip=scene["payer_client_ip"], h5_type=scene["h5_info"]["type"])
    try:
        return trade_announce(
            provider=PROVIDER,
            out_trade_no=request["out_trade_no"],
            amount_minor=request["total"],
            subject=request["description"],
            pay_method=PAY_METHODS[trade_type],
            notify_url=request["notify_url"],
            expires_at=expires_at,
            wire=wire,
        )
    except TradeAlreadyPaid:
        raise WechatPayError("ORDERPAID", "该订单已支付") from None
    except TradeExpired:
        raise WechatPayError("ORDER_CLOSED", "该订单已过支付截止时间(time_expire)") from None
    except TradeClosed:
        raise WechatPayError("ORDER_CLOSED", "该订单已关闭, 请使用新的商户订单号下单") from None
    except TradeConflict:
        raise WechatPayError("OUT_TRADE_NO_USED", "商户订单号重复") from None


def scan_page_url(call_request: Any, trade: Trade) -> str:
    return call_request.build_absolute_uri(reverse("wechatpay-scan", args=[trade.token]))


def h5_page_url(call_request: Any, trade: Trade) -> str:
    page = call_request.build_absolute_uri(reverse("wechatpay-h5", args=[trade.token]))
    return f"{page}?prepay_id={trade.wire.get('prepay_id', '')}"


def native_prepay(call: V3Call, fault: FaultRule | None) -> Answer:
    trade = _prepay(call, NATIVE)
    return Answer(data={"code_url": scan_page_url(call.request, trade)})


def h5_prepay(call: V3Call, fault: FaultRule | None) -> Answer:
    trade = _prepay(call, MWEB)
    return Answer(data={"h5_url": h5_page_url(call.request, trade)})


# -- query --------------------------------------------------------------------


def query_by_out_trade_no(call: V3Call, fault: FaultRule | None, out_trade_no: str) -> Answer:
    _query_mchid(call)
    trade = trade_find(PROVIDER, out_trade_no=_path_out_trade_no(out_trade_no))
    if trade is None or trade.status == Trade.Status.VOIDED:
        raise _not_exist()
    return Answer(data=transaction_object(trade))


def query_by_transaction_id(call: V3Call, fault: FaultRule | None, transaction_id: str) -> Answer:
    _query_mchid(call)
    trade = trade_find(PROVIDER, trade_no=transaction_id)
    # Before payment only the out-trade-no query knows the order (§6.3).
    if trade is None or trade.status != Trade.Status.PAID:
        raise _not_exist()
    return Answer(data=transaction_object(trade))


def transaction_reference(call: V3Call, kwargs: dict[str, str]) -> str:
    if "transaction_id" in kwargs:
        trade = Trade.objects.filter(provider=PROVIDER, trade_no=kwargs["transaction_id"]).first()
        return trade.out_trade_no if trade is not None else ""
    return kwargs.get("out_trade_no") or str(call.data.get("out_trade_no", ""))


# -- close --------------------------------------------------------------------


def close(call: V3Call, fault: FaultRule | None, out_trade_no: str) -> Answer | HttpResponse:
    fields.check_mchid(fields.text(call.data, "mchid", max_length=32), location="body")
    _path_out_trade_no(out_trade_no)
    trade = trade_find(PROVIDER, out_trade_no=out_trade_no)
    if trade is None:
        trade_void_unknown(provider=PROVIDER, out_trade_no=out_trade_no)
        return Answer(status=204)
    if trade.status in (Trade.Status.VOIDED, Trade.Status.FAILED):
        return Answer(status=204)
    if trade.status == Trade.Status.PAID:
        raise WechatPayError("ORDERPAID", "订单已支付, 不能关闭")
    if trade.status == Trade.Status.CLOSED:
        raise WechatPayError("ORDER_CLOSED", "订单已关闭")
    age = provider_now() - trade.created_at
    minimum = scaled(CLOSE_MIN_AGE_SECONDS)
    if age < minimum:
        raise WechatPayError(
            "RULE_LIMIT",
            f"订单创建{int(age.total_seconds())}秒, 下单后{minimum.total_seconds():g}秒(5分钟)内不能关单, 请稍后再试",
        )
    try:
        trade_close(trade, announced_to=Trade.Status.CLOSED)
    except TradeAlreadyPaid:
        raise WechatPayError("ORDERPAID", "订单已支付, 不能关闭") from None
    return Answer(status=204)
