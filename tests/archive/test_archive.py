"""The nightly archive: a day's notifications and payment and refund events,
compressed, with a SHA-256 manifest chained to the day before; the verify
command names the day a file, a manifest or the database was changed."""
import gzip
import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from archive.exceptions import ArchiveDayExists
from archive.services import (
    archive_day,
    archive_days_due,
    archive_storage,
    archive_verify,
    archived_days,
    day_path,
)
from payments.models import GatewayNotification, PaymentEvent
from refunds.models import RefundEvent
from tests.refunds.factories import apply_for_refund, paid_order

pytestmark = pytest.mark.django_db

BEIJING = ZoneInfo("Asia/Shanghai")
DAY_1, DAY_2, DAY_3 = date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)


@pytest.fixture(autouse=True)
def archive_dir(settings, tmp_path, fake_gateway):
    settings.STORAGES = {**settings.STORAGES, "archive": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "archive")}}}
    return tmp_path / "archive"


def at(day: date, hour: int = 12):
    return time_machine.travel(datetime.combine(day, time(hour), tzinfo=BEIJING), tick=False)


def business_on(day: date, hour: int = 12):
    """A paid order (a notification, payment events) and a refund application that day."""
    with at(day, hour):
        order, payment = paid_order()
        apply_for_refund(order, 1000)
    return order, payment


def rows(day: date, name: str) -> list[dict]:
    with archive_storage().open(day_path(day, f"{name}.jsonl.gz"), "rb") as stored:
        return [json.loads(line) for line in gzip.decompress(stored.read()).splitlines()]


def manifest(day: date) -> dict:
    with archive_storage().open(day_path(day, "manifest.json"), "rb") as stored:
        return json.loads(stored.read())


def test_a_day_is_archived_with_its_rows_only_and_chained_to_the_day_before():
    business_on(DAY_1)
    business_on(DAY_2, hour=0)  # 00:xx Beijing is still DAY_2 (the day before in UTC)
    business_on(DAY_2, hour=23)

    archive_day(day=DAY_1)
    second = archive_day(day=DAY_2)

    assert len(rows(DAY_1, "notifications")) == 1 and len(rows(DAY_2, "notifications")) == 2
    archived_ids = {row["id"] for day in (DAY_1, DAY_2) for row in rows(day, "notifications")}
    assert archived_ids == set(GatewayNotification.objects.values_list("pk", flat=True))
    assert rows(DAY_2, "notifications")[0]["body"]["base64"]  # the raw body, as received
    assert len(rows(DAY_2, "payment_events")) == PaymentEvent.objects.count() - len(rows(DAY_1, "payment_events"))
    assert len(rows(DAY_2, "refund_events")) == 2
    assert second["previous_day"] == DAY_1.isoformat()
    assert second["files"]["notifications.jsonl.gz"]["rows"] == 2
    assert archive_verify(database=True) == []
    with pytest.raises(ArchiveDayExists):
        archive_day(day=DAY_2)


def test_a_row_edited_in_the_archive_afterwards_is_named_by_its_day(archive_dir, capsys):
    for day in (DAY_1, DAY_2, DAY_3):
        business_on(day)
    with at(DAY_3 + timedelta(days=1), hour=3):
        assert archive_days_due() == [DAY_1, DAY_2, DAY_3]
    call_command("archive_verify")
    assert "3 day(s) intact" in capsys.readouterr().out

    # Someone rewrites an amount in day 2's archived notifications.
    path = archive_dir / day_path(DAY_2, "notifications.jsonl.gz")
    lines = gzip.decompress(path.read_bytes()).replace(b"10000", b"100").splitlines(keepends=True)
    path.write_bytes(gzip.compress(b"".join(lines)))

    with pytest.raises(CommandError, match="broken on 1 day"):
        call_command("archive_verify")
    assert f"archive: {DAY_2}: notifications.jsonl.gz does not match its SHA-256" in capsys.readouterr().err


def test_a_changed_manifest_or_a_removed_day_breaks_the_chain_at_that_day(archive_dir):
    for day in (DAY_1, DAY_2, DAY_3):
        business_on(day)
        archive_day(day=day)

    # Day 2's manifest rewritten to match an edited file: day 3 no longer chains to it.
    edited = archive_dir / day_path(DAY_2, "manifest.json")
    edited.write_text(edited.read_text().replace('"rows": 1', '"rows": 2', 1))
    assert [str(problem) for problem in archive_verify()] == [
        f"{DAY_3}: the manifest of {DAY_2} is not the one this day was chained to: it was changed"]

    # Day 2 deleted altogether.
    for stored in (archive_dir / day_path(DAY_2, "")).iterdir():
        stored.unlink()
    problems = [str(problem) for problem in archive_verify()]
    assert problems[0].startswith(f"{DAY_3}: the days after {DAY_1} are missing")
    assert archived_days() == [DAY_1, DAY_3]


def test_a_database_row_edited_after_archiving_is_named_with_database(capsys):
    business_on(DAY_1)
    order, payment = business_on(DAY_2)
    archive_day(day=DAY_1)
    archive_day(day=DAY_2)
    assert archive_verify(database=True) == []

    # An append-only event quietly rewritten in the database.
    PaymentEvent.objects.filter(payment=payment).update(reason="nothing to see")

    assert archive_verify() == []  # the archive itself is intact...
    with pytest.raises(CommandError):
        call_command("archive_verify", "--database")
    err = capsys.readouterr().err
    assert f"archive: {DAY_2}: the database's payment_events" in err and str(DAY_1) not in err


def test_the_nightly_job_catches_up_missed_nights_and_then_does_nothing():
    business_on(DAY_1)
    business_on(DAY_3)
    with at(DAY_2, hour=3):
        assert archive_days_due() == [DAY_1]
    with at(DAY_3 + timedelta(days=1), hour=3):
        assert archive_days_due() == [DAY_2, DAY_3]  # an empty day is archived too: no gap
        assert archive_days_due() == []
    assert manifest(DAY_2)["files"]["refund_events.jsonl.gz"]["rows"] == 0
    assert archive_verify(database=True) == []
    assert RefundEvent.objects.count() == 2
