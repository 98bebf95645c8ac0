"""`/alipay/gateway.do`: one URL, the `method` parameter picks the API.

Follows docs/gateways-alipay-unionpay.md A2-A6. Parameters may come in the query
string, the form body or both (A2). The common parameters are checked, then
the merchant's RSA2 signature over every parameter but `sign` (A4), then
`biz_content`. Browser methods (page.pay, wap.pay) continue in cashier.py
and answer with HTML; server methods (methods.py) answer with a signed JSON
envelope (A5). Fault rules for calls are applied after the request has been
verified, as a real gateway would only misbehave on a valid request.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sandbox import config
from sandbox.alipay import cashier, errors, methods
from sandbox.alipay.calls import AlipayCall
from sandbox.alipay.envelope import ERROR_NODE, envelope_response, node_name
from sandbox.alipay.errors import AlipayError
from sandbox.alipay.formats import parse_beijing
from sandbox.alipay.keyring import merchant_public_key
from sandbox.alipay.signing import REQUEST_UNSIGNED, canonical_string, rsa2_verify
from sandbox.faults import fault_take
from sandbox.models import FaultRule
from sandbox.runtime import runtime_settings
from sandbox.server import connection_drop

logger = logging.getLogger(__name__)


def request_params(request: HttpRequest) -> dict[str, str]:
    """Query string and form body merged (the body wins on a clash)."""
    params: dict[str, str] = {}
    for source in (request.GET, request.POST):
        for name in source:
            params[name] = source[name]
    return params


def _require(params: dict[str, str], name: str, sub_code: str) -> str:
    value = params.get(name, "")
    if not value:
        raise AlipayError(errors.MISSING_ARGUMENTS, sub_code)
    return value


def _check_timestamp(text: str) -> None:
    try:
        stamped = parse_beijing(text)
    except ValueError:
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-timestamp") from None
    # The merchant's clock is real: compare with the real time, not the
    # sandbox clock that tests may shift.
    skew = abs((timezone.now() - stamped).total_seconds())
    if skew > runtime_settings().timestamp_tolerance_seconds:
        raise AlipayError(
            errors.INVALID_ARGUMENTS, "isv.invalid-timestamp", f"非法的时间戳参数: 与网关时间相差{int(skew)}秒"
        )


def check_common_params(params: dict[str, str]) -> None:
    """A3: the common parameters, in the order the sandbox reports them."""
    app_id = _require(params, "app_id", "isv.missing-app-id")
    if app_id != config.ALIPAY_APP_ID:
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-app-id")
    sign_type = _require(params, "sign_type", "isv.missing-signature-type")
    if sign_type != "RSA2":
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-signature-type", "只支持RSA2签名")
    if not params.get("sign"):
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-signature", "验签出错: 缺少sign参数")
    _check_timestamp(_require(params, "timestamp", "isv.missing-timestamp"))
    if _require(params, "version", "isv.missing-version") != "1.0":
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-version")
    if _require(params, "charset", "isv.missing-charset").lower() != "utf-8":
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-charset", "字符集错误: 沙箱只支持utf-8")
    if params.get("format", "JSON").upper() != "JSON":
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-format")


def verify_request_signature(params: dict[str, str]) -> None:
    signed_text = canonical_string(params, unsigned=REQUEST_UNSIGNED)
    if not rsa2_verify(signed_text, params["sign"], merchant_public_key()):
        # Like Alipay, show the string the gateway verified: the quickest way
        # for a developer to see what their side signed differently.
        raise AlipayError(
            errors.INVALID_ARGUMENTS,
            "isv.invalid-signature",
            f"验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为：{signed_text}",
        )


def parse_biz_content(params: dict[str, str]) -> dict[str, Any]:
    text = _require(params, "biz_content", "isv.missing-biz-content")
    try:
        # Keep numbers as the text that was sent: amounts are never floats.
        biz = json.loads(text, parse_float=str, parse_int=str)
    except ValueError:
        biz = None
    if not isinstance(biz, dict):
        raise AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-parameter", "biz_content不是JSON对象")
    return biz


# -- dispatch -----------------------------------------------------------------

ServerMethod = Callable[[AlipayCall, FaultRule | None], dict[str, Any]]

# method -> (fault target, handler)
SERVER_METHODS: dict[str, tuple[str, ServerMethod]] = {
    "alipay.trade.precreate": ("alipay.precreate", methods.trade_precreate_method),
    "alipay.trade.query": ("alipay.query", methods.trade_query_method),
    "alipay.trade.close": ("alipay.close", methods.trade_close_method),
    "alipay.trade.refund": ("alipay.refund", methods.trade_refund_method),
    "alipay.trade.fastpay.refund.query": ("alipay.refund_query", methods.trade_refund_query_method),
    "alipay.data.dataservice.bill.downloadurl.query": ("alipay.bill", methods.bill_downloadurl_query_method),
}
BROWSER_METHODS = ("alipay.trade.page.pay", "alipay.trade.wap.pay")


def gateway_view(request: HttpRequest) -> HttpResponse:
    params = request_params(request)
    method = params.get("method", "")
    if not method:
        return envelope_response(ERROR_NODE, AlipayError(errors.MISSING_ARGUMENTS, "isv.missing-method").fields())
    if method not in SERVER_METHODS and method not in BROWSER_METHODS:
        return envelope_response(ERROR_NODE, AlipayError(errors.INVALID_ARGUMENTS, "isv.invalid-method").fields())
    try:
        check_common_params(params)
        verify_request_signature(params)
        biz = parse_biz_content(params)
    except AlipayError as error:
        logger.info("refused %s: %s", method, error)
        if method in BROWSER_METHODS:
            return cashier.error_page(request, error)
        return envelope_response(node_name(method), error.fields())

    call = AlipayCall(method=method, params=params, biz=biz, request=request)
    if method in BROWSER_METHODS:
        return cashier.page_pay_start(call)
    target, handler = SERVER_METHODS[method]
    return _server_call(call, target, handler)


def _server_call(call: AlipayCall, target: str, handler: ServerMethod) -> HttpResponse:
    out_trade_no = str(call.biz.get("out_trade_no", ""))
    rule = fault_take(target, out_trade_no=out_trade_no)
    if rule is not None and rule.mode == "error":
        error = AlipayError(rule.params["code"], rule.params["sub_code"], rule.params.get("sub_msg", ""), msg=rule.params.get("msg", ""))
        return envelope_response(node_name(call.method), error.fields())
    if rule is not None and rule.mode == "timeout":
        # Answer too late for the client, and without doing the work.
        time.sleep(rule.params["seconds"])
        return envelope_response(node_name(call.method), AlipayError(errors.UNKNOWN_ERROR, "isp.unknow-error").fields())
    try:
        node = handler(call, rule)
    except AlipayError as error:
        node = error.fields()
    if rule is not None and rule.mode == "slow":
        # The work is done and committed; the answer, a normal one, is late.
        time.sleep(rule.params["seconds"])
    if rule is not None and rule.mode == "crash_after":
        # The work is done and committed; the merchant never hears of it.
        if "seconds" in rule.params:
            time.sleep(rule.params["seconds"])
        else:
            connection_drop(call.request)
    return envelope_response(node_name(call.method), node)
