"""Reconciling a day as a whole: robust download, idempotent re-runs, sign-off, the daily job."""
from dataclasses import replace
from datetime import timedelta

import pytest
from django.core.files.storage import storages

from payments.exceptions import GatewayUnavailable, NoStatementReason, StatementIntegrityError
from payments.gateways.base import StatementFile
from reconciliation.exceptions import (
    DayNotOver,
    NoStatementsForGateway,
    NoteRequired,
    ReconciliationNotAllowed,
    SignOffRefused,
)
from reconciliation.models import (
    Discrepancy,
    DiscrepancyStatus,
    Statement,
    StatementAlarm,
    StatementLine,
    StatementRun,
    StatementStatus,
)
from reconciliation.services import (
    discrepancy_accept,
    discrepancy_resolve,
    reconciliation_run_due,
    statement_reconcile,
    statement_sign_off,
)
from tests.reconciliation.support import DAY, NOW, TEST, at, found, paid_payment, reconcile, stranger_line
from tests.shop.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(db):
    from django.contrib.auth.models import Permission

    user = UserFactory(username="fin", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_reports", "decide_discrepancies"]))
    return type(user).objects.get(pk=user.pk)


# -- robust download ------------------------------------------------------------------


def test_a_bill_not_out_yet_waits_with_backoff_then_becomes_no_bill_with_an_alarm(fake, settings, caplog):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    fake.no_bill[DAY] = NoStatementReason.NOT_YET

    run, statement = reconcile()
    assert (run.outcome, statement.status) == ("not_ready", StatementStatus.PENDING)
    assert "no bill yet" in statement.failure_reason
    assert statement.next_attempt_at == NOW + timedelta(minutes=10)

    # Before the backoff runs out the daily job leaves it alone.
    reconciliation_run_due(now=NOW + timedelta(minutes=5))
    assert StatementRun.objects.filter(statement__day=DAY).count() == 1
    reconciliation_run_due(now=NOW + timedelta(minutes=11))
    assert StatementRun.objects.filter(statement__day=DAY).count() == 2
    assert Statement.objects.get(pk=statement.pk).next_attempt_at == NOW + timedelta(minutes=11 + 20)

    # Past the deadline (18:00 the next day): no bill, and we had a payment that day.
    run, statement = reconcile(now=at(DAY + timedelta(days=1), 18, 1))
    assert (run.outcome, statement.status) == ("no_bill", StatementStatus.NO_BILL)
    assert statement.alarm == StatementAlarm.NO_BILL_WITH_TRANSACTIONS
    assert found(statement) == {("missing_at_gateway", payment.out_trade_no, "open")}
    assert "no fake bill for 2026-11-30, but we have 1 payments" in caplog.text


def test_no_bill_on_a_day_without_transactions_is_final_at_once_and_quiet(fake):
    run, statement = reconcile()

    assert (run.outcome, statement.status, statement.alarm) == ("no_bill", StatementStatus.NO_BILL, "")
    assert found(statement) == set()


def test_a_bill_that_does_not_parse_fails_with_its_reason_and_nothing_half_stored(fake, monkeypatch):
    paid_payment(fake, paid_at=at(DAY, 9))
    paid_payment(fake, paid_at=at(DAY, 10))
    good = fake.fetch_statement(DAY)
    # Two good lines, then the file is cut before its closing count.
    cut = good.content.rsplit(b"\n", 1)[0]
    monkeypatch.setattr(fake, "fetch_statement", lambda day: StatementFile(day, "fake.jsonl", content=cut))

    run, statement = reconcile()

    assert (run.outcome, statement.status) == ("failed", StatementStatus.FAILED)
    assert "the bill does not parse" in statement.failure_reason and "cut short" in statement.failure_reason
    assert StatementLine.objects.count() == 0 and Discrepancy.objects.count() == 0
    assert statement.next_attempt_at is not None
    # The bad file is kept for whoever looks into it.
    assert storages["bills"].exists(statement.file_name)

    monkeypatch.undo()
    run, statement = reconcile(now=statement.next_attempt_at)
    assert (run.outcome, statement.status, statement.failure_reason) == ("matched", StatementStatus.MATCHED, "")
    assert StatementLine.objects.count() == 2


def test_a_damaged_download_fails_and_an_unreachable_gateway_waits(fake):
    fake.fail_next["fetch_statement"] = StatementIntegrityError("SHA-1 differs")
    run, statement = reconcile()
    assert (run.outcome, statement.status) == ("failed", StatementStatus.FAILED)
    assert "arrived damaged: SHA-1 differs" in statement.failure_reason

    fake.fail_next["fetch_statement"] = GatewayUnavailable("timed out")
    run, statement = reconcile(force=True)
    assert (run.outcome, statement.status) == ("unavailable", StatementStatus.FAILED)
    assert "timed out" in statement.failure_reason


def test_a_day_that_is_not_over_and_a_gateway_without_bills_are_refused(fake):
    with pytest.raises(DayNotOver):
        statement_reconcile(gateway_code="fake", day=DAY + timedelta(days=1), actor=TEST, now=NOW)
    with pytest.raises(NoStatementsForGateway):
        statement_reconcile(gateway_code="nope", day=DAY, actor=TEST, now=NOW)


# -- idempotent re-runs -----------------------------------------------------------------


def plant_two_discrepancies(fake):
    missing = paid_payment(fake, paid_at=at(DAY, 9))
    paid_payment(fake, paid_at=at(DAY, 10))
    fake.bills[DAY] = [*(line for line in fake.recorded_lines(DAY) if line.out_trade_no != missing.out_trade_no),
                       stranger_line("STRANGER1", 700, at(DAY, 12))]
    return missing


def snapshot() -> list[tuple]:
    return sorted(Discrepancy.objects.values_list("kind", "reference", "status", "bill_amount_minor",
                                                  "local_amount_minor", "statement__day"))


def test_reconciling_twice_gives_the_same_result_and_counts_nothing_twice(fake):
    plant_two_discrepancies(fake)
    _run, first = reconcile()
    before = snapshot()

    unchanged, _statement = reconcile()
    assert unchanged.outcome == "unchanged"
    again, statement = reconcile(force=True)

    assert snapshot() == before and len(before) == 2
    assert (again.outcome, again.opened, again.cleared) == ("matched", 0, 0)
    assert StatementLine.objects.count() == 2
    assert (statement.line_count, statement.matched_count, statement.bill_payment_count) == (
        first.line_count, first.matched_count, first.bill_payment_count)


def test_a_resolved_discrepancy_stays_resolved(fake, finance):
    plant_two_discrepancies(fake)
    _run, statement = reconcile()
    stranger = Discrepancy.objects.get(reference="STRANGER1")
    with pytest.raises(NoteRequired):
        discrepancy_resolve(discrepancy_id=stranger.pk, user=finance, note="  ")
    discrepancy_resolve(discrepancy_id=stranger.pk, user=finance, note="Refunded by hand in the merchant console.")

    reconcile(force=True)

    stranger.refresh_from_db()
    assert (stranger.status, stranger.decided_by, stranger.note) == (
        DiscrepancyStatus.RESOLVED, finance, "Refunded by hand in the merchant console.")
    assert Discrepancy.objects.filter(reference="STRANGER1").count() == 1


def test_only_finance_decides(fake):
    plant_two_discrepancies(fake)
    reconcile()
    stranger = Discrepancy.objects.get(reference="STRANGER1")
    service = UserFactory(username="svc", is_staff=True)
    with pytest.raises(ReconciliationNotAllowed):
        discrepancy_accept(discrepancy_id=stranger.pk, user=service)
    with pytest.raises(ReconciliationNotAllowed):
        statement_sign_off(statement_id=stranger.statement_id, user=service)


def test_sign_off_needs_nothing_open_and_a_corrected_bill_reopens_the_day(fake, finance, caplog):
    missing = plant_two_discrepancies(fake)
    _run, statement = reconcile()
    with pytest.raises(SignOffRefused):
        statement_sign_off(statement_id=statement.pk, user=finance)
    for discrepancy in Discrepancy.objects.all():
        discrepancy_accept(discrepancy_id=discrepancy.pk, user=finance, note="checked")
    statement = statement_sign_off(statement_id=statement.pk, user=finance, note="All checked.")
    assert (statement.signed_off_by, statement.sign_off_note) == (finance, "All checked.")

    # The same bill again changes nothing: the day stays signed off.
    reconcile(force=True)
    assert Statement.objects.get(pk=statement.pk).signed_off_at is not None

    # The provider corrects the bill: the missing payment is there now, at another amount.
    fake.bills[DAY] = [*fake.recorded_lines(DAY), stranger_line("STRANGER1", 700, at(DAY, 12))]
    fake.bills[DAY] = [replace(line, amount_minor=line.amount_minor + 1) if line.out_trade_no == missing.out_trade_no
                       else line for line in fake.bills[DAY]]
    run, statement = reconcile(force=True)

    assert run.reopened_day
    assert (statement.signed_off_at, statement.alarm) == (None, StatementAlarm.REOPENED)
    assert statement.reopened_at is not None
    assert ("amount_mismatch", missing.out_trade_no, "open") in found(statement)
    assert "was signed off, and 1 new discrepancies reopened it" in caplog.text
    # The earlier decisions stand.
    assert ("missing_at_gateway", missing.out_trade_no, "accepted") in found(statement)


# -- the daily job ---------------------------------------------------------------------


def test_the_daily_job_reconciles_the_last_bill_day_once(fake):
    paid_payment(fake, paid_at=at(DAY, 9))

    done = reconciliation_run_due(now=NOW)
    again = reconciliation_run_due(now=NOW + timedelta(minutes=10))

    assert "fake 2026-11-30: matched" in done.reconciled
    assert not any("2026-11-30" in item for item in again.reconciled)
    assert Statement.objects.get(day=DAY).status == StatementStatus.MATCHED


def test_a_day_not_reconciled_by_noon_raises_the_alarm_once(fake, caplog):
    paid_payment(fake, paid_at=at(DAY, 9))
    fake.no_bill[DAY] = NoStatementReason.NOT_YET

    morning = reconciliation_run_due(now=at(DAY + timedelta(days=1), 11, 50))
    noon = reconciliation_run_due(now=at(DAY + timedelta(days=1), 12, 0))
    later = reconciliation_run_due(now=at(DAY + timedelta(days=1), 12, 30))

    assert morning.alarms == [] and len(noon.alarms) == 1 and later.alarms == []
    assert Statement.objects.get(day=DAY).alarm == StatementAlarm.NOT_RECONCILED
    assert caplog.text.count("is not reconciled by 12:00") == 1

    del fake.no_bill[DAY]
    reconciliation_run_due(now=Statement.objects.get(day=DAY).next_attempt_at)
    statement = Statement.objects.get(day=DAY)
    assert (statement.status, statement.alarm) == (StatementStatus.MATCHED, "")


def test_a_corrected_bill_reopens_a_signed_off_day_even_without_a_new_discrepancy(fake, finance, caplog):
    payment = paid_payment(fake, paid_at=at(DAY, 9))
    fake.bills[DAY] = [replace(line, amount_minor=line.amount_minor + 1) for line in fake.recorded_lines(DAY)]
    _run, statement = reconcile()
    (mismatch,) = Discrepancy.objects.all()
    discrepancy_accept(discrepancy_id=mismatch.pk, user=finance, note="the acquirer's rounding")
    statement_sign_off(statement_id=statement.pk, user=finance)

    # The provider corrects its bill: the amount is right now, nothing new to find.
    del fake.bills[DAY]
    run, statement = reconcile(force=True)

    assert run.reopened_day and run.opened == 0
    assert (statement.signed_off_at, statement.alarm) == (None, StatementAlarm.REOPENED)
    assert found(statement) == {("amount_mismatch", payment.out_trade_no, "accepted")}
    assert "a corrected bill reopened it" in caplog.text
