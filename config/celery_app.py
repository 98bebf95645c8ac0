"""The Celery app. Its beat schedule is the list in config/periodic.py.

Configuration comes from Django settings under the CELERY_ namespace
(config/settings/base.py). Without REDIS_URL tasks run in-process.
"""
import logging
import os

from celery import Celery, bootsteps

from config.periodic import beat_schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = beat_schedule()


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """Write this worker's heartbeat (shop.workers) from its own timer.

    The timer runs in the worker's event loop: a worker stuck reconnecting
    to its broker, or dead, stops beating and /healthz shows it stale.
    """

    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_ref = None

    def start(self, worker):
        from django.conf import settings
        from django.utils import timezone

        self.started_at = timezone.now()
        self.beat(worker)
        self.timer_ref = worker.timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, self.beat, (worker,))

    def stop(self, worker):
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def beat(self, worker):
        from django.db import close_old_connections

        from shop.workers import worker_heartbeat_record

        try:
            close_old_connections()
            worker_heartbeat_record(hostname=worker.hostname, pid=os.getpid(), started_at=self.started_at)
        except Exception:  # the database may be down: the heartbeat just stops
            logging.getLogger(__name__).exception("worker heartbeat not written")


app.steps["worker"].add(WorkerHeartbeatStep)
