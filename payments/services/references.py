"""How a gateway is told which attempt we mean."""
from __future__ import annotations

from payments.gateways.base import TradeReference
from payments.models import Payment


def payment_reference(payment: Payment) -> TradeReference:
    """The attempt as every gateway call after its start names it: number,
    stable request time and, once known, the provider's trade number."""
    return TradeReference(
        out_trade_no=payment.out_trade_no,
        requested_at=payment.requested_at,
        gateway_trade_no=payment.gateway_trade_no,
    )
