"""`manage.py archive_days [--day YYYY-MM-DD]`: the nightly archive, by hand."""
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive.exceptions import ArchiveDayExists
from archive.services import archive_day, archive_days_due


class Command(BaseCommand):
    help = "Archive every finished day not archived yet (what the nightly job does), or one --day."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", type=date.fromisoformat, help="only this day (YYYY-MM-DD)")

    def handle(self, *args: Any, day: date | None, **options: Any) -> None:
        if day is not None:
            try:
                archive_day(day=day)
            except ArchiveDayExists as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"archive: {day} written")
            return
        written = archive_days_due()
        self.stdout.write(f"archive: {len(written)} day(s) written" + (f", up to {written[-1]}" if written else ""))
