"""Two runs of one day at once (the daily job and someone in admin): one result, no duplicates."""
import pytest

from reconciliation.models import Discrepancy, StatementLine, StatementRun
from tests.concurrency import run_in_parallel
from tests.reconciliation.support import DAY, at, paid_payment, reconcile, stranger_line

pytestmark = pytest.mark.django_db(transaction=True)


def planted_day(fake) -> None:
    missing = paid_payment(fake, paid_at=at(DAY, 9))
    for hour in (10, 11, 12):
        paid_payment(fake, paid_at=at(DAY, hour))
    fake.bills[DAY] = [*(line for line in fake.recorded_lines(DAY) if line.out_trade_no != missing.out_trade_no),
                       stranger_line("STRANGER1", 700, at(DAY, 12)), stranger_line("STRANGER2", 800, at(DAY, 13))]


def snapshot() -> list[tuple]:
    return sorted(Discrepancy.objects.values_list("kind", "reference", "status", "bill_amount_minor"))


def test_the_same_day_reconciled_twice_in_parallel_gives_identical_discrepancies(fake):
    planted_day(fake)

    results = run_in_parallel(lambda index: reconcile(force=bool(index))[0].outcome, 2)

    assert [status for status, _ in results] == ["ok", "ok"], results
    assert {outcome for _, outcome in results} <= {"matched", "unchanged"}
    parallel = snapshot()
    assert len(parallel) == 3
    assert StatementLine.objects.count() == 5

    reconcile(force=True)
    assert snapshot() == parallel
    assert StatementRun.objects.count() == 3


def test_forced_runs_in_parallel_on_a_reconciled_day_change_nothing(fake):
    planted_day(fake)
    reconcile()
    before = snapshot()

    results = run_in_parallel(lambda index: reconcile(force=True)[0].outcome, 3)

    assert [outcome for _, outcome in results] == ["matched"] * 3, results
    assert snapshot() == before
    assert Discrepancy.objects.filter(reference="STRANGER1").count() == 1
