"""`manage.py archive_verify [--database]`: check the archive's SHA-256 chain."""
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from archive.services import archive_verify, archived_days


class Command(BaseCommand):
    help = ("Check the nightly archive: every day present and chained to the one before, every file as its "
            "manifest records it; with --database, every day also still matching the database. Names each "
            "day that does not, and exits with status 1.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", action="store_true",
                            help="also export each day again from the database and compare")

    def handle(self, *args: Any, database: bool, **options: Any) -> None:
        days = archived_days()
        problems = archive_verify(database=database)
        if problems:
            for problem in problems:
                self.stderr.write(f"archive: {problem}")
            raise CommandError(f"the archive is broken on {len({p.day for p in problems})} day(s)")
        self.stdout.write(f"archive: {len(days)} day(s) intact"
                          + (f", {days[0]} to {days[-1]}" if days else ""))
