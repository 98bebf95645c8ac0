"""The transactional outbox (shop/outbox.py): follow-up work is written with the
change, relayed after the commit, completed by the worker's signals, and
delivered again by the periodic relay when it was not sent or was lost."""
from datetime import timedelta

import pytest
from celery.app.task import Context
from celery.exceptions import Retry
from celery.signals import task_retry
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from shop.models import OutboxMessage
from shop.outbox import Intent, outbox_enqueue, outbox_enqueue_many, outbox_relay_due
from tests.concurrency import run_in_parallel
from tests.shop import outbox_tasks

RECORD = "tests.shop.outbox_tasks.record_task"


@pytest.fixture(autouse=True)
def _fresh_runs():
    outbox_tasks.RUNS.clear()
    yield
    outbox_tasks.RUNS.clear()


@pytest.fixture
def no_eager_propagation(settings):
    """make run's eager mode: a task's error stays in its result."""
    conf = outbox_tasks.failing_task.app.conf
    before = conf.task_eager_propagates
    settings.CELERY_TASK_EAGER_PROPAGATES = False
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = before


def broker_down(monkeypatch, task=outbox_tasks.record_task):
    """Publishing fails as it does with Redis stopped (retry=False)."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(kwargs.get("headers"))
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(task, "apply_async", refuse)
    return calls


@pytest.mark.django_db
class TestWrittenWithTheChange:
    def test_the_intent_is_relayed_after_the_commit_and_completed(self, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                message = outbox_enqueue(RECORD, 7)
                assert outbox_tasks.RUNS == []  # nothing runs before the commit
        assert outbox_tasks.RUNS == [("record", 7)]
        message.refresh_from_db()
        assert message.completed_at is not None
        assert (message.deliveries, message.failed_at, message.last_error) == (0, None, "")

    def test_a_rolled_back_change_leaves_no_intent_and_runs_nothing(self, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(ZeroDivisionError):
                with transaction.atomic():
                    outbox_enqueue(RECORD, 1)
                    raise ZeroDivisionError
        assert not OutboxMessage.objects.exists()
        assert outbox_tasks.RUNS == []

    def test_several_intents_are_one_insert(self, django_assert_num_queries, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks(execute=False):
            with django_assert_num_queries(1):
                outbox_enqueue_many([Intent(RECORD, (1,)), Intent(RECORD, (2,)), Intent(RECORD, (3,))])
        assert OutboxMessage.objects.count() == 3


@pytest.mark.django_db
class TestBrokerDown:
    def test_the_commit_stands_the_error_is_logged_and_the_row_is_due_now(
            self, monkeypatch, caplog, django_capture_on_commit_callbacks):
        calls = broker_down(monkeypatch)
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                message = outbox_enqueue(RECORD, 5)
        # The publish was tried once, without retrying, with the row's id.
        assert calls == [{"outbox_id": message.pk}]
        message.refresh_from_db()
        assert message.completed_at is None
        assert message.due_at <= timezone.now()
        assert "Connection refused" in message.last_error
        assert f"message #{message.pk}" in caplog.text

        monkeypatch.undo()  # the broker is back
        assert outbox_relay_due() == 1
        assert outbox_tasks.RUNS == [("record", 5)]
        message.refresh_from_db()
        assert message.completed_at is not None and message.deliveries == 1
        assert outbox_relay_due() == 0


@pytest.mark.django_db
class TestPeriodicRelay:
    def test_a_sent_message_never_completed_is_delivered_again_after_its_lease(self, settings):
        lost = OutboxMessage.objects.create(task=RECORD, args=[1], due_at=timezone.now() + timedelta(seconds=300))
        assert outbox_relay_due() == 0  # still leased: the worker may have it
        assert outbox_relay_due(now=timezone.now() + timedelta(seconds=301)) == 1
        assert outbox_tasks.RUNS == [("record", 1)]
        lost.refresh_from_db()
        assert lost.completed_at is not None and lost.deliveries == 1

    def test_completed_messages_are_left_alone(self):
        OutboxMessage.objects.create(task=RECORD, args=[1], due_at=timezone.now() - timedelta(hours=1),
                                     completed_at=timezone.now())
        assert outbox_relay_due() == 0
        assert outbox_tasks.RUNS == []

    def test_a_failing_task_backs_off_and_is_given_up_after_the_limit(self, settings, no_eager_propagation, caplog):
        settings.OUTBOX_MAX_DELIVERIES = 2
        message = OutboxMessage.objects.create(task="tests.shop.outbox_tasks.failing_task", args=[9],
                                               due_at=timezone.now())
        assert outbox_relay_due() == 1
        message.refresh_from_db()
        assert message.completed_at is None and "failing 9" in message.last_error
        assert message.due_at > timezone.now() + timedelta(seconds=300)  # backed off past one lease
        later = timezone.now() + timedelta(days=1)
        assert outbox_relay_due(now=later) == 1
        assert outbox_relay_due(now=later + timedelta(days=1)) == 0
        message.refresh_from_db()
        assert message.failed_at is not None and message.deliveries == 2
        assert [run for run in outbox_tasks.RUNS] == [("failing", 9), ("failing", 9)]
        assert "given up" in caplog.text

    def test_a_retrying_task_is_not_redelivered_before_its_countdown_and_a_lease(self):
        """What a worker's task_retry signal does (eager Celery runs a retry inline)."""
        message = OutboxMessage.objects.create(task=RECORD, args=[3], due_at=timezone.now())
        request = Context(headers={"outbox_id": message.pk})
        task_retry.send(sender=outbox_tasks.record_task, request=request,
                        reason=Retry(exc=TimeoutError("gateway"), when=600))
        message.refresh_from_db()
        assert message.completed_at is None and "retrying" in message.last_error
        assert message.due_at >= timezone.now() + timedelta(seconds=600 + 299)
        assert outbox_relay_due(now=timezone.now() + timedelta(seconds=600)) == 0
        # The retry itself was lost (say, Redis restarted): delivered once more.
        assert outbox_relay_due(now=timezone.now() + timedelta(seconds=901)) == 1
        message.refresh_from_db()
        assert message.completed_at is not None
        assert outbox_tasks.RUNS == [("record", 3)]


@pytest.mark.django_db(transaction=True)
def test_two_relays_at_once_deliver_each_due_message_once(monkeypatch):
    OutboxMessage.objects.bulk_create(
        OutboxMessage(task=RECORD, args=[n], due_at=timezone.now()) for n in range(40))
    sent = []
    monkeypatch.setattr(outbox_tasks.record_task, "apply_async",
                        lambda args, kwargs, headers, retry: sent.append(headers["outbox_id"]))

    results = run_in_parallel(lambda i: outbox_relay_due(), 2)

    assert [kind for kind, _ in results] == ["ok", "ok"], results
    assert sum(count for _, count in results) == 40
    assert sorted(sent) == sorted(OutboxMessage.objects.values_list("pk", flat=True))
    assert set(OutboxMessage.objects.values_list("deliveries", flat=True)) == {1}


@pytest.mark.django_db
def test_without_propagation_a_task_error_never_reaches_the_committing_request(
        no_eager_propagation, django_capture_on_commit_callbacks):
    """make run's eager mode: the change stands and the row stays due."""
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            message = outbox_enqueue("tests.shop.outbox_tasks.failing_task", 4)
    message.refresh_from_db()
    assert message.completed_at is None and "failing 4" in message.last_error


@pytest.mark.django_db
def test_staff_see_given_up_messages_in_the_banner_and_the_outbox_list(client):
    from tests.refunds.factories import reviewer

    OutboxMessage.objects.create(task=RECORD, args=[8], due_at=timezone.now(), failed_at=timezone.now(),
                                 deliveries=10, last_error="failed: RuntimeError('smtp down')")
    from django.contrib.auth.models import Permission

    desk = reviewer("desk")
    desk.user_permissions.add(Permission.objects.get(codename="view_outboxmessage"))
    client.force_login(desk)
    banner = client.get("/admin/").content.decode()
    assert "1 follow-up task was given up after repeated failures" in banner
    listing = client.get("/admin/shop/outboxmessage/?state=given_up")
    assert listing.status_code == 200 and RECORD in listing.content.decode()
