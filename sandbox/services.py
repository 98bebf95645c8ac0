"""Every write to trades and refunds: the provider-neutral trade lifecycle.

Statuses follow TRADE_TRANSITIONS in sandbox/models.py. Each service runs in
its own transaction (SQLite IMMEDIATE, so it holds the write lock from the
start) and re-reads the row it changes; callers that must also queue a
notification wrap both in one outer `transaction.atomic()`. Provider
packages translate the exceptions of sandbox/exceptions.py into their codes.
"""
from __future__ import annotations

import secrets
from datetime import datetime

from django.db import transaction
from django.db.models import Sum

from sandbox.exceptions import (
    InvalidTransition,
    RefundConflict,
    RefundExceedsRefundable,
    TradeAlreadyPaid,
    TradeClosed,
    TradeConflict,
    TradeExpired,
    TradeNotRefundable,
)
from sandbox.models import TRADE_TRANSITIONS, BillLink, FaultRule, Refund, Trade
from sandbox.providers import provider_get
from sandbox.runtime import provider_now, runtime_settings, scaled

UNPAID = (Trade.Status.ANNOUNCED, Trade.Status.PENDING)
ENDED_UNPAID = (Trade.Status.FAILED, Trade.Status.CLOSED, Trade.Status.VOIDED)


def _locked(trade: Trade) -> Trade:
    return Trade.objects.select_for_update().get(pk=trade.pk)


def _move(trade: Trade, to: str, **changes: object) -> Trade:
    if to not in TRADE_TRANSITIONS[trade.status]:
        raise InvalidTransition(f"{trade.out_trade_no}: {trade.status} -> {to}")
    trade.status = to
    for name, value in changes.items():
        setattr(trade, name, value)
    trade.save(update_fields=["status", *changes])
    return trade


def trade_past_deadline(trade: Trade) -> bool:
    """Unpaid and past its deadline (time_expire) on the sandbox clock."""
    return trade.status in UNPAID and trade.expires_at is not None and provider_now() >= trade.expires_at


def _refuse_unpayable(trade: Trade) -> None:
    if trade.status == Trade.Status.PAID:
        raise TradeAlreadyPaid(trade.out_trade_no)
    if trade.status in ENDED_UNPAID:
        raise TradeClosed(trade.out_trade_no)
    if trade_past_deadline(trade):
        # Only for providers whose expiry does not close the trade.
        raise TradeExpired(trade.out_trade_no)


def _expiry_closes(trade: Trade) -> bool:
    return provider_get(trade.provider).expiry_closes_trade


def _expire_locked(trade: Trade) -> Trade:
    if trade_past_deadline(trade) and _expiry_closes(trade):
        return _move(trade, Trade.Status.CLOSED, closed_at=trade.expires_at)
    return trade


def trade_expire_if_due(trade: Trade) -> Trade:
    """Close an unpaid trade whose deadline has passed; otherwise change nothing.

    Expiry is applied lazily, whenever a trade is read for a decision. For
    a provider whose expiry does not close trades (WeChat Pay) nothing
    changes: paying is refused, the trade still reads unpaid.
    """
    if not trade_past_deadline(trade) or not _expiry_closes(trade):
        return trade
    with transaction.atomic():
        return _expire_locked(_locked(trade))


def trade_find(provider: str, *, out_trade_no: str = "", trade_no: str = "") -> Trade | None:
    """The trade by the provider's number (preferred) or the merchant's; expired ones closed."""
    trades = Trade.objects.filter(provider=provider)
    if trade_no:
        trade = trades.filter(trade_no=trade_no).first()
    else:
        trade = trades.filter(out_trade_no=out_trade_no).first() if out_trade_no else None
    return trade_expire_if_due(trade) if trade is not None else None


def trade_announce(
    *,
    provider: str,
    out_trade_no: str,
    amount_minor: int,
    subject: str,
    pay_method: str,
    body: str = "",
    notify_url: str = "",
    return_url: str = "",
    quit_url: str = "",
    expires_at: datetime | None = None,
    wire: dict | None = None,
) -> Trade:
    """Record the merchant's request to be paid (page pay, precreate).

    Creates the trade ANNOUNCED, or refreshes the URLs and details of an
    unpaid one asked for again with the same amount. Raises TradeConflict
    (different amount), TradeAlreadyPaid or TradeClosed.
    """
    with transaction.atomic():
        trade = Trade.objects.select_for_update().filter(provider=provider, out_trade_no=out_trade_no).first()
        if trade is None:
            return Trade.objects.create(
                provider=provider,
                out_trade_no=out_trade_no,
                amount_minor=amount_minor,
                subject=subject,
                body=body,
                pay_method=pay_method,
                notify_url=notify_url,
                return_url=return_url,
                quit_url=quit_url,
                expires_at=expires_at,
                wire=wire or {},
                token=secrets.token_hex(16),
                created_at=provider_now(),
            )
        trade = _expire_locked(trade)
        _refuse_unpayable(trade)
        if trade.amount_minor != amount_minor:
            raise TradeConflict(out_trade_no)
        trade.subject = subject
        trade.body = body
        trade.pay_method = pay_method
        trade.notify_url = notify_url
        trade.return_url = return_url
        trade.quit_url = quit_url
        trade.expires_at = expires_at
        trade.wire = wire or {}
        trade.save()
        return _expire_locked(trade)


def trade_open(trade: Trade, *, trade_no: str) -> Trade:
    """The shopper opened or scanned it: ANNOUNCED -> PENDING; PENDING stays.

    `trade_no` is the provider's number for it. Raises TradeAlreadyPaid or
    TradeClosed when it cannot be paid any more.
    """
    with transaction.atomic():
        trade = _expire_locked(_locked(trade))
        if trade.status == Trade.Status.PENDING:
            return trade
        _refuse_unpayable(trade)
        return _move(trade, Trade.Status.PENDING, trade_no=trade_no, opened_at=provider_now())


def trade_pay(trade: Trade, *, trade_no: str) -> Trade:
    """The buyer paid: ANNOUNCED or PENDING -> PAID.

    `trade_no` is used when the trade has no provider number yet. Raises
    TradeAlreadyPaid (so a second press never pays twice) or TradeClosed.
    """
    with transaction.atomic():
        trade = _expire_locked(_locked(trade))
        _refuse_unpayable(trade)
        now = provider_now()
        return _move(
            trade,
            Trade.Status.PAID,
            trade_no=trade.trade_no or trade_no,
            opened_at=trade.opened_at or now,
            paid_at=now,
        )


def trade_fail(trade: Trade, *, trade_no: str) -> Trade:
    """The buyer's payment failed: ANNOUNCED or PENDING -> FAILED (closed unpaid)."""
    with transaction.atomic():
        trade = _expire_locked(_locked(trade))
        _refuse_unpayable(trade)
        now = provider_now()
        return _move(
            trade,
            Trade.Status.FAILED,
            trade_no=trade.trade_no or trade_no,
            opened_at=trade.opened_at or now,
            closed_at=now,
        )


def trade_close(trade: Trade, *, announced_to: str = Trade.Status.VOIDED) -> Trade:
    """The merchant closes it: PENDING -> CLOSED, ANNOUNCED -> `announced_to`.

    ANNOUNCED becomes VOIDED where the provider has no trade before the
    shopper acts (Alipay), CLOSED where the merchant's request created it
    (WeChat Pay prepay). Already closed, failed or voided: unchanged
    (idempotent). Raises TradeAlreadyPaid for a paid trade.
    """
    with transaction.atomic():
        trade = _expire_locked(_locked(trade))
        if trade.status == Trade.Status.PAID:
            raise TradeAlreadyPaid(trade.out_trade_no)
        if trade.status == Trade.Status.PENDING:
            return _move(trade, Trade.Status.CLOSED, closed_at=provider_now())
        if trade.status == Trade.Status.ANNOUNCED:
            return _move(trade, announced_to, closed_at=provider_now())
        return trade


def trade_void_unknown(*, provider: str, out_trade_no: str) -> Trade:
    """Remember that the merchant closed a number we never saw: it can never be paid."""
    with transaction.atomic():
        trade, _ = Trade.objects.get_or_create(
            provider=provider,
            out_trade_no=out_trade_no,
            defaults={
                "amount_minor": 0,
                "pay_method": Trade.PayMethod.PAGE,
                "status": Trade.Status.VOIDED,
                "token": secrets.token_hex(16),
                "created_at": provider_now(),
                "closed_at": provider_now(),
            },
        )
        return trade


# Refunds whose amount is spoken for without being in refunded_minor: still
# processing, or stuck abnormal (the money left but did not arrive).
RESERVED_REFUND_STATUSES = (Refund.Status.PROCESSING, Refund.Status.ABNORMAL)


def _reserved_total(trade: Trade) -> int:
    reserved = trade.refunds.filter(status__in=RESERVED_REFUND_STATUSES)
    return reserved.aggregate(total=Sum("amount_minor"))["total"] or 0


def _settle(refund: Refund, trade: Trade) -> Refund:
    trade.refunded_minor += refund.amount_minor
    trade.save(update_fields=["refunded_minor"])
    refund.status = Refund.Status.SUCCEEDED
    refund.succeeded_at = refund.ended_at = provider_now()
    refund.pending_queries = 0
    refund.save(update_fields=["status", "succeeded_at", "ended_at", "pending_queries"])
    return refund


def refund_request(
    trade: Trade,
    *,
    out_refund_no: str,
    amount_minor: int,
    reason: str = "",
    processing_queries: int = 0,
    refund_id: str = "",
    notify_url: str = "",
    wire: dict | None = None,
) -> tuple[Refund, bool]:
    """Refund part of a paid trade under the merchant's refund number.

    Returns (refund, created). The same number with the same amount is a
    replay: nothing moves and `created` is False. With `processing_queries`
    the refund waits, unsettled, for that many refund queries. `refund_id`
    is the provider's number (default: 28 random hex digits); `wire` its
    request details (UnionPay's txnTime). Raises
    RefundConflict (same number, other amount), TradeNotRefundable (unpaid
    or fully refunded) or RefundExceedsRefundable.
    """
    with transaction.atomic():
        trade = _locked(trade)
        refund = trade.refunds.filter(out_refund_no=out_refund_no).first()
        if refund is not None:
            if refund.amount_minor != amount_minor:
                raise RefundConflict(out_refund_no)
            refund.requests += 1
            refund.save(update_fields=["requests"])
            return refund, False
        if trade.status != Trade.Status.PAID or trade.fully_refunded:
            raise TradeNotRefundable(trade.out_trade_no)
        if amount_minor > trade.amount_minor - trade.refunded_minor - _reserved_total(trade):
            raise RefundExceedsRefundable(out_refund_no)
        refund = Refund.objects.create(
            trade=trade,
            out_refund_no=out_refund_no,
            refund_id=refund_id or secrets.token_hex(14),
            amount_minor=amount_minor,
            reason=reason,
            notify_url=notify_url,
            wire=wire or {},
            status=Refund.Status.PROCESSING,
            pending_queries=processing_queries,
            created_at=provider_now(),
        )
        if processing_queries == 0:
            _settle(refund, trade)
        return refund, True


def refund_note_query(refund: Refund) -> tuple[Refund, bool]:
    """A refund query saw this refund; a processing one settles when its count runs out.

    Returns (refund, settled_now).
    """
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("trade").get(pk=refund.pk)
        if refund.status != Refund.Status.PROCESSING:
            return refund, False
        if refund.pending_queries > 0:
            refund.pending_queries -= 1
            refund.save(update_fields=["pending_queries"])
            return refund, False
        return _settle(refund, _locked(refund.trade)), True


REFUND_END_STATUSES = (Refund.Status.SUCCEEDED, Refund.Status.ABNORMAL, Refund.Status.CLOSED)


def refund_end(refund: Refund, *, status: str) -> Refund:
    """End a processing refund now: SUCCEEDED (the money moves), ABNORMAL
    (it stays reserved) or CLOSED (it is refundable again).

    Raises InvalidTransition when the refund is not processing (an ended
    refund never changes again) or `status` is not an end.
    """
    if status not in REFUND_END_STATUSES:
        raise InvalidTransition(f"{status} is not where a refund ends")
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("trade").get(pk=refund.pk)
        if refund.status != Refund.Status.PROCESSING:
            raise InvalidTransition(f"refund {refund.out_refund_no}: {refund.status} -> {status}")
        if status == Refund.Status.SUCCEEDED:
            return _settle(refund, _locked(refund.trade))
        refund.status = status
        refund.ended_at = provider_now()
        refund.pending_queries = 0
        refund.save(update_fields=["status", "ended_at", "pending_queries"])
        return refund


# How many due refunds one call of refunds_settle_due ends per provider;
# the rest are due at once, so the dispatcher comes straight back for them.
SETTLE_BATCH = 100


def refunds_settle_due() -> float | None:
    """End SUCCESS every refund still processing `refund_settle_after_seconds`
    (times the time scale, sandbox clock) after its creation, the provider's
    way (the money moves, its notification is queued), whatever refund
    queries it still waits for. Returns the seconds until the next refund is
    due (0 when some are due already), None when none is waiting.

    Each refund ends in its own transaction through refund_end, which
    re-reads it under the write lock: one ended meanwhile by a query or the
    control API raises InvalidTransition and is left alone, so a refund is
    never settled (or notified) twice.
    """
    next_due: float | None = None
    for provider, after in runtime_settings().refund_settle_after_seconds.items():
        if after is None:
            continue
        delay = scaled(after)
        processing = Refund.objects.filter(trade__provider=provider, status=Refund.Status.PROCESSING)
        due = processing.filter(created_at__lte=provider_now() - delay).order_by("created_at", "id")
        settle = provider_get(provider).refund_settle
        for refund in list(due[:SETTLE_BATCH]):
            try:
                settle(refund)
            except (InvalidTransition, Refund.DoesNotExist):
                # Ended meanwhile (a query, the control API) or forgotten (reset).
                continue
        upcoming = processing.order_by("created_at").values_list("created_at", flat=True).first()
        if upcoming is not None:
            wait = max((upcoming + delay - provider_now()).total_seconds(), 0.0)
            next_due = wait if next_due is None else min(next_due, wait)
    return next_due


def sandbox_reset() -> None:
    """Forget every trade, refund, notification, fault rule and bill link."""
    with transaction.atomic():
        Trade.objects.all().delete()
        FaultRule.objects.all().delete()
        BillLink.objects.all().delete()
