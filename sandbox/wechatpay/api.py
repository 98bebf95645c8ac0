"""The HTTP layer of `/wechatpay/v3/...`: verify the merchant, apply call
faults, sign the answer (docs/gateways-wechatpay.md §3, §4, §8).

Every call must carry `Authorization: WECHATPAY2-SHA256-RSA2048 ...` whose
mchid and serial_no are the sandbox merchant's, whose timestamp is within
5 minutes of the REAL clock (the merchant's clock is not shifted by
`clock_offset_seconds`), and whose signature verifies with the merchant's
public key over `METHOD\\nTARGET\\nTIMESTAMP\\nNONCE\\nBODY\\n`, TARGET being
the path and query exactly as on the request line (with the `/wechatpay`
prefix) and BODY the raw bytes; anything else is 401 SIGN_ERROR. Then the
API v3 header rules (400 INVALID_REQUEST, "HTTP 请求不符合微信支付 APIv3 接口
规则"): a User-Agent (§3.3: always send one), an Accept that allows JSON
when sent, `Content-Type: application/json` on a body. A `Wechatpay-Serial`
request header, when sent, must name the sandbox's public key id (400
PARAM_ERROR otherwise).

Every 2xx answer is signed with the platform key over `ts\\nnonce\\nbody\\n`
(an empty 204 too) and carries `Wechatpay-Timestamp` (real Unix time),
`Wechatpay-Nonce`, `Wechatpay-Signature`, `Wechatpay-Serial`,
`Wechatpay-Signature-Type` and `Request-ID`. Error answers are
`{"code","message"[,"detail"]}`, unsigned, with a Request-ID.

Call fault rules apply after the request has been verified, as a real
gateway would only misbehave on a valid request.
"""
from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse

from sandbox import config
from sandbox.faults import fault_take
from sandbox.models import FaultRule
from sandbox.server import connection_drop, raw_request_target
from sandbox.wechatpay.errors import WechatPayError, param_error, sign_error
from sandbox.wechatpay.formats import new_request_id
from sandbox.wechatpay.keyring import merchant_public_key, platform_private_key
from sandbox.wechatpay.signing import (
    SCHEME,
    AuthorizationInvalid,
    answer_message,
    new_nonce,
    parse_authorization,
    request_message,
    rsa_sign,
    rsa_verify,
)

logger = logging.getLogger(__name__)

# §3.1: WeChat turns away timestamps more than 5 minutes off its clock.
REQUEST_TIMESTAMP_TOLERANCE_SECONDS = 300
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class V3Call:
    """A verified request: its raw target, its JSON body ({} for none) and query."""

    request: HttpRequest
    target: str
    data: dict[str, Any]

    def query_text(self, name: str) -> str:
        return self.request.GET.get(name, "")


@dataclass(frozen=True)
class Answer:
    """A 2xx answer: `data` is sent as compact UTF-8 JSON; None sends no body."""

    status: int = 200
    data: dict[str, Any] | None = None


def json_bytes(data: Any) -> bytes:
    """Compact UTF-8 JSON, non-ASCII unescaped, as WeChat sends it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_response(answer: Answer) -> HttpResponse:
    body = b"" if answer.data is None else json_bytes(answer.data)
    # Real Unix time: the merchant checks it against its own, unshifted clock.
    timestamp = str(int(time.time()))
    nonce = new_nonce()
    response = HttpResponse(body, status=answer.status, content_type=JSON_CONTENT_TYPE)
    if not body:
        del response["Content-Type"]
    response["Wechatpay-Timestamp"] = timestamp
    response["Wechatpay-Nonce"] = nonce
    response["Wechatpay-Signature"] = rsa_sign(answer_message(timestamp, nonce, body), platform_private_key())
    response["Wechatpay-Serial"] = config.WECHATPAY_PUBLIC_KEY_ID
    response["Wechatpay-Signature-Type"] = SCHEME
    response["Request-ID"] = new_request_id()
    return response


def error_response(error: WechatPayError) -> HttpResponse:
    response = HttpResponse(json_bytes(error.body()), status=error.status, content_type=JSON_CONTENT_TYPE)
    response["Request-ID"] = new_request_id()
    return response


def verify_request(request: HttpRequest) -> V3Call:
    """§3 checks in order; raises WechatPayError (401 SIGN_ERROR, 400 PARAM_ERROR)."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise sign_error("缺少Authorization请求头")
    try:
        fields = parse_authorization(header)
    except AuthorizationInvalid as error:
        raise sign_error(str(error)) from None
    if fields["mchid"] != config.WECHATPAY_MCHID:
        raise sign_error(f"商户号{fields['mchid'][:32]}不存在或未配置API证书")
    if fields["serial_no"].upper() != config.WECHATPAY_MERCHANT_SERIAL_NO:
        raise sign_error(f"商户证书序列号{fields['serial_no'][:48]}不正确")
    timestamp = fields["timestamp"]
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise sign_error("timestamp不是Unix秒数")
    skew = abs(time.time() - int(timestamp))
    if skew > REQUEST_TIMESTAMP_TOLERANCE_SECONDS:
        raise sign_error(f"请求时间戳与微信支付服务器时间相差{int(skew)}秒, 超过5分钟")
    target = raw_request_target(request)
    message = request_message(request.method or "", target, timestamp, fields["nonce_str"], request.body)
    if not rsa_verify(message, fields["signature"], merchant_public_key()):
        # Show the first four lines verified, like WeChat's support does:
        # the quickest way to see a path or query signed differently.
        raise sign_error(f"签名验证失败, 验签串前四行为: {request.method}\\n{target}\\n{timestamp}\\n{fields['nonce_str']}")
    _check_http_rules(request)
    serial = request.headers.get("Wechatpay-Serial", "")
    if serial and serial != config.WECHATPAY_PUBLIC_KEY_ID:
        raise param_error("Wechatpay-Serial", "不是商户可用的微信支付公钥ID或平台证书序列号", value=serial[:64],
                          location="header")  # fmt: skip
    return V3Call(request=request, target=target, data=_body_object(request))


def _check_http_rules(request: HttpRequest) -> None:
    if not request.headers.get("User-Agent", "").strip():
        raise WechatPayError("INVALID_REQUEST", "HTTP 请求不符合微信支付 APIv3 接口规则: 缺少User-Agent")
    accept = request.headers.get("Accept", "")
    if accept and not any(kind in accept for kind in (JSON_CONTENT_TYPE, "*/*", "application/*")):
        raise WechatPayError("INVALID_REQUEST", "HTTP 请求不符合微信支付 APIv3 接口规则: Accept应为application/json")
    content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if request.body and content_type != JSON_CONTENT_TYPE:
        raise WechatPayError("INVALID_REQUEST", "HTTP 请求不符合微信支付 APIv3 接口规则: Content-Type应为application/json")


def _body_object(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = json.loads(request.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WechatPayError("PARAM_ERROR", "请求体不是合法的UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise WechatPayError("PARAM_ERROR", "请求体必须是JSON对象")
    return data


# (call, path parameters) -> the out_trade_no a fault rule filter is matched against
Reference = Callable[[V3Call, dict[str, str]], str]
Handler = Callable[..., "Answer | HttpResponse"]


def _no_reference(call: V3Call, kwargs: dict[str, str]) -> str:
    return ""


def v3_endpoint(
    *, methods: tuple[str, ...], fault_target: str = "", reference: Reference = _no_reference
) -> Callable[[Handler], Callable[..., HttpResponse]]:
    """Make a handler `(call, fault, **path_parameters) -> Answer | HttpResponse` a view.

    Raising WechatPayError answers that error. An HttpResponse is sent as
    is (the bill file, which WeChat does not sign).
    """

    def decorate(handler: Handler) -> Callable[..., HttpResponse]:
        @functools.wraps(handler)
        def view(request: HttpRequest, **kwargs: str) -> HttpResponse:
            rule: FaultRule | None = None
            try:
                if request.method not in methods:
                    raise WechatPayError("METHOD_NOT_ALLOWED", f"{request.method}不被支持, 应为{'/'.join(methods)}")
                call = verify_request(request)
                if fault_target:
                    rule = fault_take(fault_target, out_trade_no=reference(call, kwargs))
                if rule is not None and rule.mode == "error":
                    params = rule.params
                    raise WechatPayError(params["code"], params.get("message", ""), status=params["status"])
                if rule is not None and rule.mode == "timeout":
                    # Answer too late for the client, and without doing the work.
                    time.sleep(rule.params["seconds"])
                    raise WechatPayError("SYSTEM_ERROR")
                result = handler(call, rule, **kwargs)
            except WechatPayError as error:
                logger.info("wechatpay %s %s refused: %s", request.method, request.path, error)
                response = error_response(error)
            else:
                response = result if isinstance(result, HttpResponse) else signed_response(result)
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


def not_found_view(request: HttpRequest, rest: str = "") -> HttpResponse:
    return error_response(WechatPayError("NOT_FOUND", f"{request.path} 不存在"))
