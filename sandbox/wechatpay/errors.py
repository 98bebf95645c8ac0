"""WeChat Pay v3 error answers (docs/gateways-wechatpay.md §8).

An error is an HTTP status and a JSON body `{"code","message"[,"detail"]}`;
clients key on `code`. Error answers are not signed (only 2xx are, §8).
Messages are in Chinese, as WeChat writes them.
"""
from __future__ import annotations

from typing import Any

# code -> (HTTP status, message), as in the official tables quoted in §8.
CODES: dict[str, tuple[int, str]] = {
    "PARAM_ERROR": (400, "参数错误"),
    "INVALID_REQUEST": (400, "无效请求"),
    "APPID_MCHID_NOT_MATCH": (400, "AppID和mch_id不匹配"),
    "MCH_NOT_EXISTS": (400, "商户号不存在"),
    "ORDER_CLOSED": (400, "订单已关闭"),
    "ORDERPAID": (400, "订单已支付"),
    "NO_STATEMENT_EXIST": (400, "账单文件不存在"),
    "STATEMENT_CREATING": (400, "账单生成中"),
    "SIGN_ERROR": (401, "签名错误"),
    "NO_AUTH": (403, "商户无权限"),
    "OUT_TRADE_NO_USED": (403, "商户订单号重复"),
    "RULE_LIMIT": (403, "业务规则限制"),
    "NOT_ENOUGH": (403, "余额不足"),
    "USER_ACCOUNT_ABNORMAL": (403, "退款请求失败"),
    "TRADE_ERROR": (403, "交易错误"),
    "ACCOUNT_ERROR": (403, "账号异常"),
    "ORDER_NOT_EXIST": (404, "订单不存在"),
    "RESOURCE_NOT_EXISTS": (404, "资源不存在"),
    "NOT_FOUND": (404, "请求的资源不存在"),
    "METHOD_NOT_ALLOWED": (405, "不支持的HTTP方法"),
    "FREQUENCY_LIMITED": (429, "频率超限"),
    "SYSTEM_ERROR": (500, "系统异常，请稍后重试"),
    "BANK_ERROR": (500, "银行系统异常"),
}
DEFAULT_STATUS = 400


class WechatPayError(Exception):
    def __init__(
        self, code: str, message: str = "", *, status: int | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        known_status, known_message = CODES.get(code, (DEFAULT_STATUS, code))
        self.code = code
        self.message = message or known_message
        self.status = status or known_status
        self.detail = detail
        super().__init__(f"{self.status} {code}: {self.message}")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        return body


def param_error(field: str, issue: str, *, value: Any = None, location: str = "body") -> WechatPayError:
    """PARAM_ERROR naming the field, with `detail` as WeChat gives it."""
    detail: dict[str, Any] = {"field": field, "location": location, "issue": issue}
    if value is not None:
        detail["value"] = value
    return WechatPayError("PARAM_ERROR", f"参数错误: {field} {issue}", detail=detail)


def sign_error(reason: str) -> WechatPayError:
    return WechatPayError("SIGN_ERROR", f"签名错误: {reason}")
