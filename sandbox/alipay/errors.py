"""Alipay result codes the sandbox answers with (docs/gateways-alipay-unionpay.md A6).

`code` is the gateway result, `sub_code`/`sub_msg` the business reason.
Sub-messages are in Chinese, as Alipay writes them.
"""
from __future__ import annotations

from sandbox.exceptions import SandboxError, TradeAlreadyPaid, TradeClosed

SUCCESS = "10000"
UNKNOWN_ERROR = "20000"
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"

CODE_MESSAGES = {
    SUCCESS: "Success",
    UNKNOWN_ERROR: "Service Currently Unavailable",
    "20001": "Insufficient Token Permissions",
    MISSING_ARGUMENTS: "Missing Required Arguments",
    INVALID_ARGUMENTS: "Invalid Arguments",
    BUSINESS_FAILED: "Business Failed",
    "40005": "Call Limited",
    "40006": "Insufficient Permissions",
}

SUB_MESSAGES = {
    "isp.unknow-error": "系统繁忙",
    "aop.unknow-error": "系统繁忙",
    "isv.missing-method": "缺少方法名参数",
    "isv.missing-app-id": "缺少AppID参数",
    "isv.missing-signature-type": "缺少签名类型参数",
    "isv.missing-timestamp": "缺少时间戳参数",
    "isv.missing-version": "缺少版本参数",
    "isv.missing-charset": "缺少编码集参数",
    "isv.missing-biz-content": "缺少业务参数biz_content",
    "isv.invalid-method": "不存在的方法名",
    "isv.invalid-app-id": "无效的AppID参数",
    "isv.invalid-signature-type": "无效的签名类型",
    "isv.invalid-signature": "验签出错",
    "isv.invalid-timestamp": "非法的时间戳参数",
    "isv.invalid-version": "非法的版本参数",
    "isv.invalid-charset": "字符集错误",
    "isv.invalid-format": "无效的数据格式",
    "isv.invalid-parameter": "参数无效",
    "ACQ.SYSTEM_ERROR": "系统错误",
    "ACQ.INVALID_PARAMETER": "参数无效",
    "ACQ.TRADE_NOT_EXIST": "交易不存在",
    "ACQ.TRADE_STATUS_ERROR": "交易状态不合法",
    "ACQ.TRADE_HAS_SUCCESS": "交易已被支付",
    "ACQ.TRADE_HAS_CLOSE": "交易已经关闭",
    "ACQ.CONTEXT_INCONSISTENT": "交易信息被篡改",
    "ACQ.TOTAL_FEE_EXCEED": "订单金额超过限额",
    "ACQ.SELLER_BALANCE_NOT_ENOUGH": "卖家余额不足",
    "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL": "退款金额超限",
    "ACQ.DISCORDANT_REPEAT_REQUEST": "请求信息不一致",
    "ACQ.REASON_TRADE_BEEN_FREEZEN": "交易已冻结",
    "ACQ.TRADE_HAS_FINISHED": "交易已完结",
    "ACQ.REFUND_FEE_ERROR": "退款金额不合法",
    "isp.bill_not_exist": "账单不存在",
}


class AlipayError(Exception):
    """An answer other than 10000. `gateway_level` errors go under `error_response`."""

    def __init__(self, code: str, sub_code: str, sub_msg: str = "", *, msg: str = "", gateway_level: bool = False):
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg or SUB_MESSAGES.get(sub_code, "")
        self.msg = msg or CODE_MESSAGES.get(code, "Business Failed")
        self.gateway_level = gateway_level
        super().__init__(f"{code} {sub_code}: {self.sub_msg}")

    def fields(self) -> dict[str, str]:
        return {"code": self.code, "msg": self.msg, "sub_code": self.sub_code, "sub_msg": self.sub_msg}


def business_error(sub_code: str, sub_msg: str = "") -> AlipayError:
    return AlipayError(BUSINESS_FAILED, sub_code, sub_msg)


def invalid_parameter(detail: str) -> AlipayError:
    return business_error("ACQ.INVALID_PARAMETER", f"参数无效: {detail}")


def announce_error(error: SandboxError) -> AlipayError:
    """What Alipay answers when a trade cannot be (re)created under a number."""
    if isinstance(error, TradeAlreadyPaid):
        return business_error("ACQ.TRADE_HAS_SUCCESS")
    if isinstance(error, TradeClosed):
        return business_error("ACQ.TRADE_HAS_CLOSE")
    return business_error("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改: 相同out_trade_no的金额不一致")
