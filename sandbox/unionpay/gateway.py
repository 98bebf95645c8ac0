"""UnionPay's gateway endpoints (docs/gateways-alipay-unionpay.md B1, B3-B9, B11).

- `POST /unionpay/gateway/api/frontTransReq.do`: the browser's auto-submitted
  front consume; checked, then 302 to the cashier page (errors: an HTML page
  with the respCode);
- `POST /unionpay/gateway/api/backTransReq.do`: refund (txnType 04);
- `POST /unionpay/gateway/api/queryTrans.do`: query (txnType 00) of a consume
  or a refund by its orderId + txnTime;
- `POST /unionpay/filetransfer/`: the settlement file (txnType 76).

Every request: form-encoded, `version` 5.1.0, `signMethod` 01, `certId` the
merchant certificate's serial (else 11), the signature over every field
but `signature` (else 11), `merId` the sandbox merchant's (else 31), the
transaction's own fields (missing: 13, malformed: 10). Answers are raw
`key=value&...` bodies signed with UnionPay's key, signPubKeyCert included.
Fault rules apply after a request verified, as a real gateway misbehaves
only on a valid request.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from sandbox import config
from sandbox.exceptions import (
    RefundConflict,
    RefundExceedsRefundable,
    TradeAlreadyPaid,
    TradeClosed,
    TradeConflict,
    TradeNotRefundable,
)
from sandbox.faults import fault_take
from sandbox.models import FaultRule, Refund, Trade
from sandbox.notifications import dispatcher_wake
from sandbox.runtime import provider_now, refund_processing_queries
from sandbox.server import connection_drop
from sandbox.services import refund_request, trade_announce, trade_find
from sandbox.unionpay import bills
from sandbox.unionpay.keyring import merchant_cert_id, merchant_public_key
from sandbox.unionpay.messages import (
    CURRENCY_CODE,
    SIGN_METHOD,
    VERSION,
    fen_text,
    message,
    new_query_id,
    new_trace_no,
    parse_txn_time,
    raw_body,
    settle_date,
    verify,
)
from sandbox.unionpay.notifications import unionpay_notify_refund
from sandbox.unionpay.trades import unionpay_refund_note_query
from sandbox.unionpay.wire import (
    PROVIDER,
    TXN_CONSUME,
    TXN_REFUND,
    common_fields,
    refund_orig_resp_code,
    signed,
    trade_orig_resp_code,
)

logger = logging.getLogger(__name__)

ORDER_ID = re.compile(r"[0-9A-Za-z]{8,32}")
CHANNELS = {"07": Trade.PayMethod.PAGE, "08": Trade.PayMethod.WAP}


class AcpRefused(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code} {detail}".strip())
        self.code = code
        self.detail = detail


def request_fields(request: HttpRequest) -> dict[str, str]:
    """The posted form, each field once (a field named twice is a format error)."""
    fields: dict[str, str] = {}
    for name, values in request.POST.lists():
        if len(values) != 1:
            raise AcpRefused("10", f"{name}重复")
        fields[name] = values[0]
    return fields


def _require(fields: Mapping[str, str], *names: str) -> None:
    for name in names:
        if not fields.get(name):
            raise AcpRefused("13", f"{name}不能为空")


def _expect(fields: Mapping[str, str], name: str, *allowed: str) -> None:
    if fields.get(name) not in allowed:
        raise AcpRefused("10", f"{name}={fields.get(name, '')[:20]}不正确, 应为{'/'.join(allowed)}")


def check_request(fields: Mapping[str, str]) -> None:
    """The common checks of every request (B4, B5)."""
    _require(fields, "version", "encoding", "signMethod", "certId", "signature", "txnType", "merId")
    _expect(fields, "version", VERSION)
    _expect(fields, "signMethod", SIGN_METHOD)
    if fields["encoding"].upper() not in ("UTF-8", "UTF8"):
        raise AcpRefused("10", "encoding只支持UTF-8")
    if fields["certId"] != merchant_cert_id():
        raise AcpRefused("11", f"certId {fields['certId'][:24]} 不是商户签名证书的序列号")
    if not verify(fields, merchant_public_key()):
        raise AcpRefused("11", "验证签名失败")
    if fields["merId"] != config.UNIONPAY_MER_ID:
        raise AcpRefused("31", "商户号不存在")


def _order_id(fields: Mapping[str, str]) -> str:
    _require(fields, "orderId", "txnTime")
    if not ORDER_ID.fullmatch(fields["orderId"]):
        raise AcpRefused("10", "orderId须为8-32位字母或数字")
    try:
        parse_txn_time(fields["txnTime"])
    except ValueError:
        raise AcpRefused("10", "txnTime格式错误") from None
    return fields["orderId"]


def _amount(fields: Mapping[str, str]) -> int:
    _require(fields, "txnAmt")
    try:
        return fen_text(fields["txnAmt"])
    except ValueError:
        raise AcpRefused("10", "txnAmt须为正整数(分)") from None


def answer(fields: Mapping[str, str], code: str, detail: str = "", **extra: str) -> HttpResponse:
    """A signed raw answer echoing the request's identifying fields (B3)."""
    echoed = {name: fields[name] for name in ("bizType", "txnType", "txnSubType", "orderId", "txnTime",
                                              "accessType", "merId", "encoding") if fields.get(name)}
    body = {**common_fields(fields.get("encoding", "UTF-8")), **echoed, **extra, "respCode": code,
            "respMsg": f"{message(code)}{detail and ' ' + detail}"}
    return HttpResponse(raw_body(signed(body)).encode("utf-8"), content_type="text/plain; charset=UTF-8")


def _take(target: str, out_trade_no: str) -> FaultRule | None:
    return fault_take(target, out_trade_no=out_trade_no)


def _misbehave(rule: FaultRule | None, fields: Mapping[str, str]) -> HttpResponse | None:
    """An `error` or `timeout` rule answers instead of doing the work."""
    if rule is None:
        return None
    if rule.mode == "error":
        return answer(fields, rule.params["code"], rule.params.get("message", ""))
    if rule.mode == "timeout":
        time.sleep(rule.params["seconds"])
        return answer(fields, "03")
    return None


# -- front consume --------------------------------------------------------------


def error_page(request: HttpRequest, code: str, detail: str) -> HttpResponse:
    context = {"code": code, "message": message(code), "detail": detail}
    return render(request, "sandbox/unionpay/error.html", context, status=400)


@require_POST
def front_view(request: HttpRequest) -> HttpResponse:
    try:
        fields = request_fields(request)
        check_request(fields)
        _expect(fields, "txnType", TXN_CONSUME)
        _expect(fields, "txnSubType", "01")
        _expect(fields, "bizType", "000201")
        _expect(fields, "channelType", *CHANNELS)
        _expect(fields, "accessType", "0")
        _expect(fields, "currencyCode", CURRENCY_CODE)
        order_id, amount = _order_id(fields), _amount(fields)
        _require(fields, "frontUrl", "backUrl")
        deadline = None
        if fields.get("payTimeout"):
            try:
                deadline = parse_txn_time(fields["payTimeout"])
            except ValueError:
                raise AcpRefused("10", "payTimeout格式错误") from None
    except AcpRefused as refused:
        logger.info("unionpay front consume refused: %s", refused)
        return error_page(request, refused.code, refused.detail)
    rule = _take("unionpay.front", order_id)
    if rule is not None and rule.mode == "timeout":
        time.sleep(rule.params["seconds"])
    if rule is not None:
        code = rule.params.get("code", "03")
        return error_page(request, code, rule.params.get("message", ""))
    existing = Trade.objects.filter(provider=PROVIDER, out_trade_no=order_id).first()
    if existing is not None and existing.wire.get("txnTime") != fields["txnTime"]:
        return error_page(request, "12", "orderId已用于另一txnTime的交易")
    wire = {name: fields[name] for name in ("txnTime", "channelType", "bizType", "encoding", "payTimeout",
                                            "reqReserved") if fields.get(name)}
    if existing is not None:
        wire = {**existing.wire, **wire}
    try:
        trade = trade_announce(
            provider=PROVIDER, out_trade_no=order_id, amount_minor=amount, subject=f"UnionPay order {order_id}",
            pay_method=CHANNELS[fields["channelType"]], notify_url=fields["backUrl"], return_url=fields["frontUrl"],
            expires_at=deadline, wire=wire,
        )
    except TradeAlreadyPaid:
        return error_page(request, "12", "该订单已支付")
    except TradeClosed:
        return error_page(request, "12", "该订单已失败或超时")
    except TradeConflict:
        return error_page(request, "12", "同一订单号的金额与原请求不一致")
    return HttpResponseRedirect(reverse("unionpay-cashier", args=[trade.token]))


# -- back transactions: refund --------------------------------------------------


@require_POST
def back_view(request: HttpRequest) -> HttpResponse:
    try:
        fields = request_fields(request)
        check_request(fields)
        if fields["txnType"] != TXN_REFUND:
            raise AcpRefused("10", f"沙箱的后台交易只支持退货(04), 不支持txnType {fields['txnType'][:4]}")
        _expect(fields, "txnSubType", "00")
        _expect(fields, "bizType", "000201", "000000")
        _expect(fields, "accessType", "0")
        out_refund_no, amount = _order_id(fields), _amount(fields)
        _require(fields, "origQryId", "backUrl")
    except AcpRefused as refused:
        logger.info("unionpay back transaction refused: %s", refused)
        return answer(request.POST.dict(), refused.code, refused.detail)
    trade = Trade.objects.filter(provider=PROVIDER, trade_no=fields["origQryId"]).first()
    rule = _take("unionpay.refund", trade.out_trade_no if trade is not None else "")
    early = _misbehave(rule, fields)
    if early is not None:
        return early
    response = _refund(fields, trade=trade, out_refund_no=out_refund_no, amount=amount, rule=rule)
    if rule is not None and rule.mode == "crash_after":
        # The refund is done and committed; the merchant never hears of it.
        if "seconds" in rule.params:
            time.sleep(rule.params["seconds"])
        else:
            connection_drop(request)
    return response


def _refund(fields: Mapping[str, str], *, trade: Trade | None, out_refund_no: str, amount: int,
            rule: FaultRule | None) -> HttpResponse:
    if Refund.objects.filter(trade__provider=PROVIDER, out_refund_no=out_refund_no).exists() or \
            Trade.objects.filter(provider=PROVIDER, out_trade_no=out_refund_no).exists():
        return answer(fields, "12", "orderId+txnTime重复")
    if trade is None or trade.status != Trade.Status.PAID:
        return answer(fields, "35", "原交易不存在或未成功")
    queries = refund_processing_queries(PROVIDER)
    wire: dict[str, object] = {"txnTime": fields["txnTime"], "traceNo": new_trace_no(), "bizType": fields["bizType"],
                               "encoding": fields["encoding"]}
    if rule is not None and rule.mode == "processing":
        queries = rule.params["queries"]
    elif rule is not None and rule.mode == "fail":
        # In flight for that many queries, then failed at the next; never
        # settled at once.
        queries = 1
        wire.update(fails=True, fail_after_queries=rule.params["queries"])
    try:
        with transaction.atomic():
            refund, _created = refund_request(
                trade, out_refund_no=out_refund_no, amount_minor=amount, processing_queries=queries,
                refund_id=new_query_id(provider_now()), notify_url=fields["backUrl"], wire=wire,
            )
            refund = Refund.objects.select_related("trade").get(pk=refund.pk)
            if refund.status == Refund.Status.SUCCEEDED:
                unionpay_notify_refund(refund)
            else:
                # It may end by time (refund_settle_after_seconds).
                transaction.on_commit(dispatcher_wake)
    except TradeNotRefundable:
        return answer(fields, "45", "原交易已全额退货")
    except (RefundExceedsRefundable, RefundConflict):
        return answer(fields, "36", "退货金额超过原交易可退金额")
    logger.info("unionpay refund %s of %s accepted", out_refund_no, trade.out_trade_no)
    return answer(fields, "00", origQryId=fields["origQryId"], queryId=refund.refund_id, txnAmt=fields["txnAmt"])


# -- query ----------------------------------------------------------------------


@require_POST
def query_view(request: HttpRequest) -> HttpResponse:
    try:
        fields = request_fields(request)
        check_request(fields)
        _expect(fields, "txnType", "00")
        _expect(fields, "txnSubType", "00")
        _expect(fields, "bizType", "000000")
        order_id = _order_id(fields)
    except AcpRefused as refused:
        return answer(request.POST.dict(), refused.code, refused.detail)
    trade = trade_find(PROVIDER, out_trade_no=order_id)
    if trade is not None:
        early = _misbehave(_take("unionpay.query", trade.out_trade_no), fields)
        if early is not None:
            return early
        return _query_trade(fields, trade)
    refund = Refund.objects.filter(trade__provider=PROVIDER, out_refund_no=order_id).select_related("trade").first()
    if refund is not None:
        early = _misbehave(_take("unionpay.refund_query", refund.trade.out_trade_no), fields)
        if early is not None:
            return early
        return _query_refund(fields, refund)
    early = _misbehave(_take("unionpay.query", order_id), fields)
    return early or answer(fields, "34")


def _query_trade(fields: Mapping[str, str], trade: Trade) -> HttpResponse:
    original = trade_orig_resp_code(trade)
    if original is None or trade.wire.get("txnTime") != fields["txnTime"]:
        return answer(fields, "34")
    extra = {"txnType": TXN_CONSUME, "txnSubType": "01", "origRespCode": original,
             "origRespMsg": message(original), "txnAmt": str(trade.amount_minor), "currencyCode": CURRENCY_CODE,
             "issuerIdentifyMode": "0", "queryId": trade.trade_no or ""}
    if trade.wire.get("traceNo"):
        extra.update(traceNo=trade.wire["traceNo"], traceTime=trade.wire["traceTime"])
    if trade.status == Trade.Status.PAID and trade.paid_at is not None:
        extra.update(settleAmt=str(trade.amount_minor), settleCurrencyCode=CURRENCY_CODE,
                     settleDate=settle_date(trade.paid_at))
    return answer(fields, "00", **extra)


def _query_refund(fields: Mapping[str, str], refund: Refund) -> HttpResponse:
    if refund.wire.get("txnTime") != fields["txnTime"]:
        return answer(fields, "34")
    refund = unionpay_refund_note_query(refund)
    refund = Refund.objects.select_related("trade").get(pk=refund.pk)
    original = refund_orig_resp_code(refund)
    extra = {"txnType": TXN_REFUND, "txnSubType": "00", "origRespCode": original, "origRespMsg": message(original),
             "txnAmt": str(refund.amount_minor), "currencyCode": CURRENCY_CODE, "queryId": refund.refund_id,
             "origQryId": refund.trade.trade_no or "", "traceNo": refund.wire.get("traceNo", "")}
    if refund.status == Refund.Status.SUCCEEDED and refund.succeeded_at is not None:
        extra.update(settleAmt=str(refund.amount_minor), settleCurrencyCode=CURRENCY_CODE,
                     settleDate=settle_date(refund.succeeded_at))
    return answer(fields, "00", **extra)


# -- file transfer --------------------------------------------------------------


@require_POST
def file_transfer_view(request: HttpRequest) -> HttpResponse:
    try:
        fields = request_fields(request)
        check_request(fields)
        _expect(fields, "txnType", "76")
        _expect(fields, "txnSubType", "01")
        _expect(fields, "bizType", "000000")
        _expect(fields, "fileType", "00")
        _require(fields, "settleDate", "txnTime")
        if not re.fullmatch(r"[0-9]{4}", fields["settleDate"]):
            raise AcpRefused("10", "settleDate须为MMDD")
        day = bills.settlement_day(fields["settleDate"])
    except AcpRefused as refused:
        return answer(request.POST.dict(), refused.code, refused.detail)
    except ValueError:
        return answer(request.POST.dict(), "10", "settleDate不是日期")
    early = _misbehave(_take("unionpay.file", ""), fields)
    if early is not None:
        return early
    built = bills.settlement_file(day)
    extra = {"settleDate": fields["settleDate"], "fileType": "00"}
    if built is None:
        return answer(fields, "98", **extra)
    file_name, file_content = built
    return answer(fields, "00", fileName=file_name, fileContent=file_content, **extra)
