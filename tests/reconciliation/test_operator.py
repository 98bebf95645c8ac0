"""What an operator sees: the metrics, the admin banner, `manage.py reconcile`, the admin action."""
from datetime import datetime, time, timedelta

import pytest
from django.core.management import CommandError, call_command

from payments.exceptions import NoStatementReason
from payments.gateways.base import BEIJING
from reconciliation.models import Statement, StatementAlarm, StatementStatus
from reconciliation.services import matching
from shop.demo import demo_setup
from tests.reconciliation.support import DAY, NOW, at, found, paid_payment, reconcile, stranger_line

pytestmark = pytest.mark.django_db


def test_metrics_give_the_last_reconciled_day_and_open_discrepancies_per_gateway(client, fake):
    paid_payment(fake, paid_at=at(DAY, 9))
    fake.bills[DAY] = [*fake.recorded_lines(DAY), stranger_line("STRANGER1", 100, at(DAY, 10))]
    reconcile()

    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in client.get("/metrics").content.decode().splitlines() if line.startswith("shop_reconc")}

    start = datetime.combine(DAY, time.min, tzinfo=BEIJING).timestamp()
    assert samples['shop_reconciliation_last_reconciled_day_timestamp_seconds{gateway="fake"}'] == start
    assert samples['shop_reconciliation_open_discrepancies{gateway="fake"}'] == 1
    assert samples['shop_reconciliation_alarms{gateway="fake"}'] == 0
    assert samples['shop_reconciliation_runs_total{gateway="fake",outcome="matched"}'] >= 1


def test_the_admin_banner_names_a_day_that_raised_an_alarm(client, fake):
    demo_setup()
    from django.contrib.auth import get_user_model

    fake.no_bill[DAY] = NoStatementReason.NOT_YET
    paid_payment(fake, paid_at=at(DAY, 9))
    reconcile(now=at(DAY + timedelta(days=1), 18, 5))  # past the deadline: no bill, with a payment
    client.force_login(get_user_model().objects.get(username="finance"))

    page = client.get("/admin/").content.decode()

    assert 'data-testid="reconciliation-alarms"' in page
    assert f"fake {DAY.isoformat()}: No bill, but we had transactions that day" in page
    assert Statement.objects.get(day=DAY).alarm == StatementAlarm.NO_BILL_WITH_TRANSACTIONS


def test_manage_py_reconcile_reconciles_one_day_and_leaves_a_reconciled_one_alone(fake, capsys, monkeypatch):
    from reconciliation.services import statements

    real = statements.statement_reconcile
    monkeypatch.setattr("reconciliation.management.commands.reconcile.statement_reconcile",
                        lambda **kwargs: real(**kwargs, now=NOW))
    paid_payment(fake, paid_at=at(DAY, 9))

    call_command("reconcile", "--gateway", "fake", "--day", DAY.isoformat())
    first = capsys.readouterr().out
    call_command("reconcile", "--gateway", "fake", "--day", DAY.isoformat())
    second = capsys.readouterr().out
    call_command("reconcile", "--gateway", "fake", "--day", DAY.isoformat(), "--force")

    assert f"fake {DAY.isoformat()}: Reconciled" in first and "1 lines, 1 matched, 0 discrepancies" in first
    assert "Already reconciled: use --force" in second
    assert Statement.objects.get(day=DAY).runs.count() == 3


def test_manage_py_reconcile_explains_what_it_cannot_do(fake):
    with pytest.raises(CommandError, match="not out yet"):
        call_command("reconcile", "--gateway", "fake", "--day", "2999-01-01")
    with pytest.raises(CommandError, match="no bills to reconcile"):
        call_command("reconcile", "--gateway", "nowhere", "--day", DAY.isoformat())


def test_the_admin_action_reconciles_the_chosen_days_again(client, fake, django_capture_on_commit_callbacks):
    demo_setup()
    from django.contrib.auth import get_user_model

    paid_payment(fake, paid_at=at(DAY, 9))
    _run, statement = reconcile()
    fake.bills[DAY] = [*fake.recorded_lines(DAY), stranger_line("STRANGER1", 100, at(DAY, 10))]
    client.force_login(get_user_model().objects.get(username="finance"))

    # The action queues the day through the outbox; its relay runs on commit.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/reconciliation/statement/", {"action": "reconcile_again",
                                                                    "_selected_action": [statement.pk]}, follow=True)

    # Admin capitalises its messages.
    assert f"Fake {DAY.isoformat()}: queued to be reconciled again (now: Reconciled)" in response.content.decode()
    assert found(statement) == {("missing_here", "STRANGER1", "open")}
    assert Statement.objects.get(pk=statement.pk).status == StatementStatus.MATCHED


def test_the_full_join_gives_the_same_answers_without_full_join_support(fake, monkeypatch):
    """SQLite before 3.39 has no FULL OUTER JOIN: the emulation finds the same (run on every database)."""
    from dataclasses import replace

    lacking = paid_payment(fake, paid_at=at(DAY, 9))
    mismatch = paid_payment(fake, paid_at=at(DAY, 10))
    fake.bills[DAY] = [replace(line, amount_minor=1) if line.out_trade_no == mismatch.out_trade_no else line
                       for line in fake.recorded_lines(DAY) if line.out_trade_no != lacking.out_trade_no]
    fake.bills[DAY].append(stranger_line("STRANGER1", 100, at(DAY, 11)))
    _run, statement = reconcile()
    expected = found(statement)

    monkeypatch.setattr(matching, "full_outer_join_supported", lambda: False)
    reconcile(force=True)

    assert found(statement) == expected and len(expected) == 3
