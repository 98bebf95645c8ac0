"""Trade and refund references for adapter tests, where only the numbers matter.

Alipay and WeChat Pay name trades by number alone; the times here are
whatever a service would have stored, fixed so tests are deterministic.
"""
from __future__ import annotations

from datetime import UTC, datetime

from payments.gateways.base import RefundReference, TradeReference

REQUESTED_AT = datetime(2024, 5, 1, 1, 58, 0, tzinfo=UTC)
SUBMITTED_AT = datetime(2024, 5, 1, 2, 1, 0, tzinfo=UTC)


def trade_ref(out_trade_no: str, requested_at: datetime = REQUESTED_AT, gateway_trade_no: str = "") -> TradeReference:
    return TradeReference(out_trade_no=out_trade_no, requested_at=requested_at, gateway_trade_no=gateway_trade_no)


def refund_ref(out_trade_no: str, out_refund_no: str, submitted_at: datetime = SUBMITTED_AT,
               gateway_trade_no: str = "") -> RefundReference:
    return RefundReference(out_refund_no=out_refund_no, submitted_at=submitted_at,
                           payment=trade_ref(out_trade_no, gateway_trade_no=gateway_trade_no))
