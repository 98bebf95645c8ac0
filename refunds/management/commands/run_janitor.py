import logging
import signal
import threading

from django.core.management.base import BaseCommand

from payments.services import orders_close_expired, payments_query_stale
from refunds.invariants import money_invariants_check
from refunds.services import refunds_create_automatic_pending, refunds_poll_processing

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Run the periodic money work in a loop (query stale attempts, close expired orders, "
        "poll refunds, start automatic refunds, check the money invariants). "
        "For the embedded default without Redis; with Redis, Celery beat schedules the same work."
    )

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=30.0, help="seconds between runs")
        parser.add_argument("--once", action="store_true", help="run once and exit")

    def handle(self, *args, interval: float, once: bool, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.is_set():
            try:
                queried = payments_query_stale()
                closed = orders_close_expired()
                polled = refunds_poll_processing()
                started = refunds_create_automatic_pending()
                violations = money_invariants_check()
                if queried or closed or polled or started or violations:
                    self.stdout.write(
                        f"janitor: queried {queried} attempts, closed {closed} orders, polled {polled} "
                        f"refunds, started {started} automatic refunds, {len(violations)} invariant violations"
                    )
            except Exception:  # keep the loop alive; the next run tries again
                logger.exception("janitor run failed")
            if once:
                break
            stop.wait(interval)
