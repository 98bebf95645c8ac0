"""What an expired order needs from payments before it closes: its open
attempts closed at their gateways (registered with orders' expiry sweep in
PaymentsConfig.ready; see orders/services/expiry.py)."""
from __future__ import annotations

import logging
from datetime import datetime

from orders.models import Order
from payments.exceptions import GatewayRejected, GatewayUnavailable
from payments.gateways import get_gateway
from payments.models import PaymentStatus
from payments.selectors import OPEN_STATUSES
from payments.services.lifecycle import payment_record_event
from payments.services.sync import JANITOR, payment_close_at_gateway

logger = logging.getLogger(__name__)


def order_attempts_close(order: Order, now: datetime) -> bool:
    """Close an expired order's open attempts at their gateways; True when it may close.

    False keeps the order open until the next sweep: a gateway that cannot
    be reached, one that refuses a close this soon after the attempt was
    created, an attempt that turns out to be paid (the order is paid then),
    or, at a gateway that cannot close trades, one still in flight. A
    gateway that refuses the close for good is written to the attempt's log and does not hold the order: holding its stock forever
    would protect nothing, because the attempt stays open and queried, and
    should it ever be paid, that payment is late and refunded automatically.
    """
    for payment in order.payments.filter(status__in=OPEN_STATUSES):
        gateway = get_gateway(payment.gateway)
        if gateway.capabilities.closes_trades and now < payment.created_at + gateway.capabilities.close_delay:
            logger.info("order %s: %s too young to close at %s", order.order_no, payment.out_trade_no,
                        payment.gateway)
            return False
        try:
            payment = payment_close_at_gateway(payment_id=payment.pk, actor=JANITOR, reason="order timed out",
                                               now=now)
        except GatewayUnavailable as exc:
            logger.warning("order %s: closing %s failed, retrying later: %s", order.order_no,
                           payment.out_trade_no, exc)
            return False
        except GatewayRejected as exc:
            payment_record_event(payment, actor=JANITOR, reason=f"the gateway refused to close it: {exc}"[:2000],
                                 detail={"close_refused": str(exc)[:500]})
            logger.error("order %s: %s refused to close %s; closing the order, the attempt stays watched: %s",
                         order.order_no, payment.gateway, payment.out_trade_no, exc)
            continue
        if payment.status == PaymentStatus.SUCCEEDED:
            return False
        if payment.is_open:
            # A gateway that cannot close trades still has it in flight.
            logger.info("order %s: %s is still open at %s; waiting for its outcome", order.order_no,
                        payment.out_trade_no, payment.gateway)
            return False
    return True
