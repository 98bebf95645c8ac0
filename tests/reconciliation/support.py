"""Setup for reconciliation tests: our payments and refunds on a chosen bill day, through the real services."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

from payments.gateways.base import BEIJING, StatementLine, StatementLineKind
from payments.models import Payment
from payments.services import payment_sync
from reconciliation.models import Discrepancy, Statement
from reconciliation.services import statement_reconcile
from refunds.models import Refund
from refunds.services import refund_approve, refund_submit
from shop.actors import Actor
from tests.orders.factories import place_order
from tests.payments.factories import start_payment
from tests.refunds.factories import apply_for_refund, reviewer

DAY = date(2026, 11, 30)
# The morning after: the bill of DAY is out.
NOW = datetime(2026, 12, 1, 10, 5, tzinfo=BEIJING)
TEST = Actor.system("test")


def at(day: date, hours: int, minutes: int = 0, seconds: int = 0) -> datetime:
    return datetime.combine(day, time(hours, minutes, seconds), tzinfo=BEIJING)


def paid_payment(fake, *, paid_at: datetime, price_minor: int = 8800, order=None) -> Payment:
    """An attempt paid at the gateway at `paid_at` and applied by a query, as the janitor would."""
    payment, _ = start_payment(order=order or place_order(price_minor=price_minor), gateway_code="fake")
    fake.pay(payment.out_trade_no, paid_at=paid_at)
    return payment_sync(payment_id=payment.pk, actor=TEST)


def open_payment(fake, *, price_minor: int = 8800, order=None) -> Payment:
    payment, _ = start_payment(order=order or place_order(price_minor=price_minor), gateway_code="fake")
    return payment


def refunded(fake, payment: Payment, *, amount_minor: int, refunded_at: datetime) -> Refund:
    """A refund approved and done at the gateway, dated `refunded_at` on both sides."""
    refund = apply_for_refund(payment.order, amount_minor=amount_minor)
    refund_approve(refund_id=refund.pk, reviewer=reviewer(f"reviewer{refund.pk}"))
    # The submit waits for the commit; in a test transaction, send it now.
    refund = refund_submit(refund_id=refund.pk)
    assert refund.status == "succeeded", refund.status
    Refund.objects.filter(pk=refund.pk).update(refunded_at=refunded_at)
    fake.refunds[refund.out_refund_no] = replace(fake.refunds[refund.out_refund_no], refunded_at=refunded_at)
    fake.refund_requested_at[refund.out_refund_no] = refunded_at
    return Refund.objects.get(pk=refund.pk)


def stranger_line(out_trade_no: str, amount_minor: int, when: datetime) -> StatementLine:
    return StatementLine(kind=StatementLineKind.PAYMENT, out_trade_no=out_trade_no, gateway_trade_no="G" + out_trade_no,
                         amount_minor=amount_minor, occurred_at=when)


def reconcile(day: date = DAY, *, now: datetime = NOW, force: bool = False, actor: Actor = TEST):
    run = statement_reconcile(gateway_code="fake", day=day, actor=actor, force=force, now=now)
    return run, Statement.objects.get(gateway="fake", day=day)


def found(statement: Statement, **filters) -> set[tuple[str, str, str]]:
    """(kind, reference, status) of the statement's discrepancies."""
    return set(Discrepancy.objects.filter(statement=statement, **filters).values_list("kind", "reference", "status"))


def next_day(day: date) -> date:
    return day + timedelta(days=1)
