"""Asking the gateway: a query applied like a notification, a close, and the
janitor's sweep that heals lost notifications."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from payments.exceptions import AmountMismatch, GatewayError
from payments.gateways import get_gateway
from payments.gateways.base import CloseOutcome, Gateway, TradeState, TradeStatus
from payments.lock_objects import payment_and_order_for_update
from payments.models import Payment, PaymentStatus
from payments.selectors import OPEN_STATUSES, payment_list_stale_open
from payments.services.lifecycle import payment_move
from payments.services.references import payment_reference
from payments.services.trade_state import trade_state_apply
from shop.actors import Actor

logger = logging.getLogger(__name__)

JANITOR = Actor.system("janitor")


def payment_sync(*, payment_id: int, actor: Actor, now: datetime | None = None) -> Payment:
    """Query the gateway for an attempt and apply what it says.

    At a gateway that cannot close trades, an attempt past its deadline
    that the gateway says it never took is closed here: the deadline sent
    with the payment was the close. Raises GatewayError when the gateway
    cannot answer; AmountMismatch when it reports a different amount
    (nothing is applied).
    """
    payment = Payment.objects.get(pk=payment_id)
    gateway = get_gateway(payment.gateway)
    state = gateway.query_payment(payment_reference(payment))
    with transaction.atomic():
        payment, order = payment_and_order_for_update(payment_id=payment_id)
        payment.last_queried_at = timezone.now()
        payment.save(update_fields=["last_queried_at", "updated_at"])
        trade_state_apply(payment, order, state=state, actor=actor)
        if payment.is_open and _ended_by_its_deadline(gateway, payment, state, now=now or timezone.now()):
            payment_move(payment, to_status=PaymentStatus.CLOSED, actor=actor,
                         reason="past its payment deadline, never taken by the gateway",
                         detail={"gateway_status": str(state.status)})
    return payment


def _ended_by_its_deadline(gateway: Gateway, payment: Payment, state: TradeState, *, now: datetime) -> bool:
    # A gateway that closes trades is asked to (payment_close_at_gateway).
    # One that cannot refuses payment after the deadline we sent, so "no such
    # trade" after it is final (docs/gateways-alipay-unionpay.md B8); a trade
    # it knows and has not finished is still in flight and stays open.
    return (not gateway.capabilities.closes_trades and state.status == TradeStatus.NOT_FOUND
            and now >= payment.expires_at)


def payment_sync_if_due(*, payment_id: int, actor: Actor, min_interval: timedelta) -> Payment:
    """`payment_sync`, at most once per `min_interval` across all processes.

    For pages that poll (the QR page, the confirming page): a gateway error
    is logged and the page shows what we know.
    """
    now = timezone.now()
    claimed = Payment.objects.filter(
        Q(last_queried_at__isnull=True) | Q(last_queried_at__lte=now - min_interval),
        pk=payment_id,
        status__in=OPEN_STATUSES,
    ).update(last_queried_at=now)
    if claimed:
        try:
            return payment_sync(payment_id=payment_id, actor=actor)
        except (GatewayError, AmountMismatch) as exc:
            logger.warning("payment %s: query failed: %s", payment_id, exc)
    return Payment.objects.get(pk=payment_id)


def payment_close_at_gateway(*, payment_id: int, actor: Actor, reason: str,
                             now: datetime | None = None) -> Payment:
    """Close an open attempt at its gateway, then locally.

    If the gateway says it was paid in the meantime, the payment is queried
    and applied instead. A gateway that cannot close trades is queried
    instead (`payment_sync`): the attempt closes once its deadline has
    passed and the gateway never took it, and stays open (watched by the
    janitor) while it could still be paid or is in flight. Raises
    GatewayError when the gateway cannot answer (the attempt stays open; try
    again later).
    """
    payment = Payment.objects.get(pk=payment_id)
    if not payment.is_open:
        return payment
    gateway = get_gateway(payment.gateway)
    if not gateway.capabilities.closes_trades:
        return payment_sync(payment_id=payment_id, actor=actor, now=now)
    outcome = gateway.close_payment(payment_reference(payment))
    if outcome == CloseOutcome.ALREADY_PAID:
        return payment_sync(payment_id=payment_id, actor=actor)
    with transaction.atomic():
        payment, _order = payment_and_order_for_update(payment_id=payment_id)
        if payment.is_open:
            payment_move(payment, to_status=PaymentStatus.CLOSED, actor=actor,
                         reason=f"{reason} (gateway: {outcome})")
    return payment


def payment_query_delay(query_count: int) -> timedelta:
    """Back off between queries of one attempt: base × 2^n, capped."""
    base = settings.PAYMENT_QUERY_AFTER_SECONDS
    return timedelta(seconds=min(base * (2 ** query_count), settings.PAYMENT_QUERY_MAX_INTERVAL_SECONDS))


def payments_query_stale(*, now: datetime | None = None, limit: int = 200) -> int:
    """Ask the gateways about open attempts a few minutes old; heal lost notifications.

    Each attempt is queried with exponential backoff. Returns how many were
    queried.
    """
    now = now or timezone.now()
    created_before = now - timedelta(seconds=settings.PAYMENT_QUERY_AFTER_SECONDS)
    queried = 0
    for payment in payment_list_stale_open(created_before=created_before, now=now, limit=limit):
        Payment.objects.filter(pk=payment.pk).update(
            query_count=F("query_count") + 1,
            next_query_at=now + payment_query_delay(payment.query_count + 1),
        )
        try:
            payment_sync(payment_id=payment.pk, actor=JANITOR, now=now)
        except (GatewayError, AmountMismatch) as exc:
            logger.warning("janitor: query of %s failed: %s", payment.out_trade_no, exc)
        queried += 1
    return queried
