"""The HTTP layer of API v2 under /wechatpay/: read, verify, apply faults, sign the answer.

docs/gateways-wechatpay.md §10.1-§10.3. Every call is a POST of a flat XML
document carrying `appid`, `mch_id`, `nonce_str`, `sign` and optionally
`sign_type`. Checks, in order, each answered with `return_code` FAIL and a
`return_msg` (unsigned: WeChat did not take the request):
- not POST (REQUIRE_POST_METHOD), an empty body (POST_DATA_EMPTY), not
  UTF-8 (NOT_UTF8), not a flat XML document or any DOCTYPE
  (XML_FORMAT_ERROR);
- another `mch_id` than the sandbox merchant's; a `sign_type` other than
  MD5 or HMAC-SHA256; a missing or wrong `sign` (SIGNERROR);
- `/secapi/...` without a client certificate issued by the sandbox CA (a
  certificate from another CA already fails the TLS handshake).
Then another `appid` is `result_code` FAIL APPID_MCHID_NOT_MATCH, and the
call's fault rule applies (the v3 targets: `wechatpay.native`, `.h5`,
`.query`, `.close`, `.refund`, `.refund_query`, `.bill`): `error`
answers result_code FAIL with the code in v2's spelling (SYSTEM_ERROR ->
SYSTEMERROR, NOT_ENOUGH -> NOTENOUGH, ORDER_CLOSED -> ORDERCLOSED,
ORDER_NOT_EXIST -> ORDERNOTEXIST; `FAIL` answers return_code FAIL with the
message), `timeout` sleeps and answers SYSTEMERROR, and `crash_after` drops
the connection after a refund is done.

Answers with `return_code` SUCCESS carry `appid`, `mch_id`, a fresh
`nonce_str` and a `sign` made with the request's sign_type (the field
itself is not echoed; §12.16), always with HTTP 200. The missing client
certificate's answer is §12.19's.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse

from sandbox import config
from sandbox.faults import fault_take
from sandbox.models import FaultRule
from sandbox.server import PEER_CERTIFICATE_ENVIRON_KEY, connection_drop
from sandbox.wechatpay.v2 import envelope

logger = logging.getLogger(__name__)

XML_CONTENT_TYPE = "text/xml; charset=utf-8"
V2_SPELLINGS = {
    "SYSTEM_ERROR": "SYSTEMERROR",
    "NOT_ENOUGH": "NOTENOUGH",
    "ORDER_CLOSED": "ORDERCLOSED",
    "ORDER_NOT_EXIST": "ORDERNOTEXIST",
}
ERROR_DESCRIPTIONS = {
    "SYSTEMERROR": "系统超时，请稍后再试",
    "NOTENOUGH": "基本账户余额不足，请充值后重新发起",
    "ORDERPAID": "该订单已支付",
    "ORDERCLOSED": "订单已关闭",
    "ORDERNOTEXIST": "此交易订单号不存在",
    "REFUNDNOTEXIST": "退款订单查询失败",
    "BIZERR_NEED_RETRY": "并发情况下，业务被拒绝，商户重试即可解决",
    "FREQUENCY_LIMITED": "频率限制",
}


class V2Fail(Exception):
    """return_code FAIL: the request was not taken (unsigned answer)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class V2Refused(Exception):
    """result_code FAIL with an err_code (a signed answer)."""

    def __init__(self, code: str, description: str = "") -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description or ERROR_DESCRIPTIONS.get(code, code)


@dataclass(frozen=True)
class V2Call:
    request: HttpRequest
    fields: dict[str, str]
    sign_type: str

    def text(self, name: str) -> str:
        return self.fields.get(name, "")


def xml_response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(body, status=status, content_type=XML_CONTENT_TYPE)


def fail_response(message: str) -> HttpResponse:
    return xml_response(envelope.render({"return_code": "FAIL", "return_msg": message}))


def answer_response(call: V2Call, fields: dict[str, str]) -> HttpResponse:
    """A signed SUCCESS answer: return and result codes, our ids, a nonce, the fields, the sign."""
    message = {"return_code": "SUCCESS", "return_msg": "OK", "appid": config.WECHATPAY_APPID,
               "mch_id": config.WECHATPAY_MCHID, "result_code": "SUCCESS", **fields}  # fmt: skip
    return xml_response(envelope.render(envelope.signed(message, config.WECHATPAY_V2_API_KEY, call.sign_type)))


def refused_response(call: V2Call, error: V2Refused) -> HttpResponse:
    return answer_response(call, {"result_code": "FAIL", "err_code": error.code, "err_code_des": error.description})


def verify_call(request: HttpRequest, *, secure: bool) -> V2Call:
    if request.method != "POST":
        raise V2Fail("请使用post方法")
    if not request.body:
        raise V2Fail("post数据为空")
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise V2Fail("编码格式错误") from None
    try:
        fields = envelope.parse(request.body)
    except envelope.EnvelopeInvalid:
        raise V2Fail("XML格式错误") from None
    if fields.get("mch_id") != config.WECHATPAY_MCHID:
        raise V2Fail("商户号mch_id不存在或与appid不匹配")
    sign_type = fields.get("sign_type") or envelope.MD5
    if sign_type not in envelope.SIGN_TYPES:
        raise V2Fail("sign_type参数错误")
    if not fields.get("nonce_str") or len(fields["nonce_str"]) > 32:
        raise V2Fail("nonce_str参数错误")
    if not envelope.verify(fields, config.WECHATPAY_V2_API_KEY, sign_type):
        raise V2Fail("签名错误")
    if secure and not request.META.get(PEER_CERTIFICATE_ENVIRON_KEY):
        # §10.3: /secapi/ needs the merchant's client certificate (CA_ERROR).
        raise V2Fail("证书错误: 请求未携带商户API证书(apiclient_cert)")
    return V2Call(request=request, fields=fields, sign_type=sign_type)


Reference = Callable[[V2Call], str]
Handler = Callable[[V2Call, "FaultRule | None"], "dict[str, str] | HttpResponse"]


def _no_reference(call: V2Call) -> str:
    return ""


def v2_endpoint(*, fault_target: Callable[[V2Call], str] | str = "", secure: bool = False,
                reference: Reference = _no_reference,
                errors_as_fail: bool = False) -> Callable[[Handler], Callable[..., HttpResponse]]:  # fmt: skip
    """Make a handler `(call, fault) -> answer fields | HttpResponse` a view.

    `errors_as_fail`: the call's refusals are return_code FAIL with the
    code as message (downloadbill, whose errors are never signed).
    """

    def decorate(handler: Handler) -> Callable[..., HttpResponse]:
        @functools.wraps(handler)
        def view(request: HttpRequest) -> HttpResponse:
            rule: FaultRule | None = None
            try:
                call = verify_call(request, secure=secure)
            except V2Fail as error:
                logger.info("wechatpay v2 %s refused: %s", request.path, error.message)
                return fail_response(error.message)
            try:
                if call.text("appid") != config.WECHATPAY_APPID:
                    raise V2Refused("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
                target = fault_target(call) if callable(fault_target) else fault_target
                if target:
                    rule = fault_take(target, out_trade_no=reference(call))
                if rule is not None and rule.mode == "error":
                    code = V2_SPELLINGS.get(rule.params["code"], rule.params["code"])
                    if code == "FAIL":
                        raise V2Fail(rule.params.get("message", "系统繁忙"))
                    raise V2Refused(code, rule.params.get("message", ""))
                if rule is not None and rule.mode == "timeout":
                    # Answer too late for the client, and without doing the work.
                    time.sleep(rule.params["seconds"])
                    raise V2Refused("SYSTEMERROR")
                result = handler(call, rule)
            except V2Fail as error:
                response = fail_response(error.message)
            except V2Refused as error:
                logger.info("wechatpay v2 %s refused: %s", request.path, error)
                response = fail_response(error.code) if errors_as_fail else refused_response(call, error)
            else:
                response = result if isinstance(result, HttpResponse) else answer_response(call, result)
            if rule is not None and rule.mode == "slow":
                # The work is done and committed; the answer, a normal one, is late.
                time.sleep(rule.params["seconds"])
            if rule is not None and rule.mode == "crash_after":
                # The work is done and committed; the merchant never hears of it.
                if "seconds" in rule.params:
                    time.sleep(rule.params["seconds"])
                else:
                    connection_drop(request)
            return response

        return view

    return decorate
