"""The one list of periodic jobs, as Celery beat and the in-process janitor read it."""
from datetime import timedelta

import pytest
from celery.schedules import schedule
from django.core.management import call_command
from django.utils import timezone

from config.celery_app import app
from config.periodic import PERIODIC_JOBS, PeriodicJob, beat_schedule, run_due_jobs

CALLS: list[str] = []


def job_that_fails():
    CALLS.append("fails")
    raise RuntimeError("boom")


def job_that_works():
    CALLS.append("works")
    return 3


def test_beat_schedules_exactly_the_listed_jobs():
    assert app.conf.beat_schedule == beat_schedule()
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} == {job.task for job in PERIODIC_JOBS}


def test_every_listed_task_is_a_registered_celery_task():
    app.loader.import_default_modules()
    assert {job.task for job in PERIODIC_JOBS} <= set(app.tasks)


def test_a_failing_job_is_logged_and_the_next_one_still_runs(caplog):
    CALLS.clear()
    every_minute = schedule(timedelta(minutes=1))
    jobs = [PeriodicJob("first", f"{__name__}.job_that_fails", every_minute),
            PeriodicJob("second", f"{__name__}.job_that_works", every_minute)]
    runs = run_due_jobs({}, now=timezone.now(), jobs=jobs)
    assert CALLS == ["fails", "works"]
    assert [(run.job.name, run.ok, run.result) for run in runs] == [("first", False, None), ("second", True, 3)]
    assert "periodic job first failed" in caplog.text


def test_a_job_runs_again_only_when_its_schedule_is_due():
    CALLS.clear()
    jobs = [PeriodicJob("hourly", f"{__name__}.job_that_works", schedule(timedelta(hours=1)))]
    last_runs: dict = {}
    run_due_jobs(last_runs, now=timezone.now(), jobs=jobs)
    run_due_jobs(last_runs, now=timezone.now(), jobs=jobs)
    assert CALLS == ["works"]
    last_runs["hourly"] = timezone.now() - timedelta(hours=2)
    run_due_jobs(last_runs, now=timezone.now(), jobs=jobs)
    assert CALLS == ["works", "works"]


@pytest.mark.django_db
def test_run_janitor_once_runs_every_job(capsys):
    call_command("run_janitor", "--once")
    assert "failed" not in capsys.readouterr().err
