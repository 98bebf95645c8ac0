"""Money that stopped moving: an approval whose gateway call never reached the
broker is delivered by the outbox, re-sent by the stalled sweep, and raises
an alarm while it stays stuck."""
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from refunds.invariants import money_invariants_check
from refunds.models import InvariantViolation, Refund, RefundStatus
from refunds.services import refund_approve, refunds_resubmit_stalled
from refunds.tasks import refund_email_shopper_task, refund_submit_task
from shop.models import OutboxMessage
from shop.outbox import outbox_relay_due
from tests.refunds.factories import apply_for_refund, paid_order, reviewer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def gateway(fake_gateway):
    return fake_gateway


@pytest.fixture
def broker_down(monkeypatch):
    """Every publish fails as with Redis stopped."""
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    for task in (refund_submit_task, refund_email_shopper_task):
        monkeypatch.setattr(task, "apply_async", refuse)
    return monkeypatch


def status(refund) -> str:
    return Refund.objects.values_list("status", flat=True).get(pk=refund.pk)


def test_an_approval_while_the_broker_is_down_commits_and_is_submitted_once_it_is_back(broker_down, gateway):
    order, _ = paid_order()
    refund = apply_for_refund(order, 4000)

    refund_approve(refund_id=refund.pk, reviewer=reviewer())  # no error reaches the reviewer

    assert status(refund) == RefundStatus.APPROVED
    assert set(OutboxMessage.objects.filter(completed_at__isnull=True).values_list("task", flat=True)) == {
        "refunds.tasks.refund_submit_task", "refunds.tasks.refund_email_shopper_task"}
    assert gateway.refunds_executed == {}

    broker_down.undo()
    assert outbox_relay_due() == 2

    assert status(refund) == RefundStatus.SUCCEEDED
    assert gateway.refunds_executed == {refund.out_refund_no: 4000}
    assert not OutboxMessage.objects.filter(completed_at__isnull=True).exists()
    assert outbox_relay_due(now=timezone.now() + timedelta(hours=1)) == 0


def test_an_approved_refund_never_sent_is_sent_again_by_the_sweep_and_alarms_while_stuck(
        broker_down, gateway, settings, client):
    order, payment = paid_order()
    refund = apply_for_refund(order, 4000)
    refund_approve(refund_id=refund.pk, reviewer=reviewer())
    # Suppose even the outbox row went missing: the sweep is the second line.
    OutboxMessage.objects.all().delete()
    approved_at = Refund.objects.get(pk=refund.pk).reviewed_at

    assert refunds_resubmit_stalled(now=approved_at + timedelta(seconds=60)) == 0  # too early
    later = approved_at + timedelta(seconds=settings.REFUND_RESUBMIT_AFTER_SECONDS + 1)
    assert refunds_resubmit_stalled(now=later) == 1  # broker still down: written, not sent
    assert refunds_resubmit_stalled(now=later + timedelta(seconds=1)) == 0  # waits its interval

    # Past the alarm limit: needs attention, the banner, the invariant check.
    Refund.objects.filter(pk=refund.pk).update(
        reviewed_at=timezone.now() - timedelta(seconds=settings.REFUND_STALLED_ALARM_AFTER_SECONDS + 1))
    found = money_invariants_check()
    assert [(v.kind, v.subject) for v in found] == [("refund_not_submitted", refund.out_refund_no)]
    assert "4000 fen reserved" in found[0].detail
    from refunds.metrics import refunds_unsubmitted_minor
    assert refunds_unsubmitted_minor._value.get() == 4000
    client.force_login(reviewer("desk"))
    attention = client.get("/admin/refunds/refund/?attention=yes")
    assert refund.out_refund_no in attention.content.decode()
    assert "1 refund needs manual handling" in client.get("/admin/").content.decode()

    broker_down.undo()
    assert outbox_relay_due() == 1
    assert status(refund) == RefundStatus.SUCCEEDED
    assert gateway.refunds_executed == {refund.out_refund_no: 4000}
    assert money_invariants_check() == []
    assert not InvariantViolation.objects.filter(resolved_at__isnull=True).exists()
    assert refunds_unsubmitted_minor._value.get() == 0


def test_a_refund_email_delivered_twice_is_sent_once(mailoutbox):
    from refunds.services import refund_email_shopper

    order, _ = paid_order()
    refund = apply_for_refund(order, 4000)
    mailoutbox.clear()
    assert refund_email_shopper(refund_id=refund.pk, event="approved") is True
    assert refund_email_shopper(refund_id=refund.pk, event="approved") is False  # the outbox's second delivery
    assert refund_email_shopper(refund_id=refund.pk, event="succeeded") is True
    assert len(mailoutbox) == 2
