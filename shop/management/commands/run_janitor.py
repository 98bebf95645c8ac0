"""`manage.py run_janitor`: the periodic jobs (config/periodic.py) in a loop.

For the embedded default without Redis (`make run`); with Redis, Celery beat
schedules the same list.
"""
import signal
import threading
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from config.periodic import run_due_jobs


class Command(BaseCommand):
    help = (
        "Run the shop's periodic jobs (config/periodic.py) in-process, each when its schedule says so. "
        "For the embedded default without Redis; with Redis, Celery beat schedules the same jobs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between checks for due jobs")
        parser.add_argument("--once", action="store_true", help="run every job once and exit")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        last_runs: dict[str, datetime] = {}
        while not stop.is_set():
            for run in run_due_jobs(last_runs, now=timezone.now()):
                if not run.ok:
                    self.stderr.write(f"janitor: {run.job.name} failed (see the log)")
                elif run.result:
                    self.stdout.write(f"janitor: {run.job.name}: {run.result}")
            if once:
                break
            stop.wait(interval)
