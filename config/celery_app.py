"""The Celery app. Its beat schedule is the list in config/periodic.py.

Configuration comes from Django settings under the CELERY_ namespace
(config/settings/base.py). Without REDIS_URL tasks run in-process.
"""
import logging
import os
import threading

from celery import Celery, bootsteps

from config.periodic import beat_schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = beat_schedule()


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """Write this worker's heartbeat (shop.workers) every WORKER_HEARTBEAT_SECONDS.

    A thread of its own, so the beat goes on while the consumer reconnects
    to its broker; each beat says whether the consumer is running (taking
    tasks) or not. A dead worker stops beating: /healthz shows it stale.
    """

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.stopping = threading.Event()
        self.thread = None

    def start(self, worker):
        from django.conf import settings
        from django.utils import timezone

        started_at = timezone.now()
        interval = settings.WORKER_HEARTBEAT_SECONDS

        def beat_until_stopped():
            while not self.stopping.is_set():
                self.beat(worker, started_at)
                self.stopping.wait(interval)

        self.thread = threading.Thread(target=beat_until_stopped, name="shop-heartbeat", daemon=True)
        self.thread.start()

    def stop(self, worker):
        self.stopping.set()

    def beat(self, worker, started_at):
        from django.db import close_old_connections

        from shop.workers import worker_heartbeat_record

        consumer = getattr(worker, "consumer", None)
        consuming = bool(consumer is not None and consumer.connection is not None
                         and getattr(consumer.blueprint, "state", None) == bootsteps.RUN)
        try:
            close_old_connections()
            worker_heartbeat_record(hostname=worker.hostname, pid=os.getpid(), started_at=started_at,
                                    consuming=consuming)
        except Exception:  # the database may be down: the heartbeat just stops
            logging.getLogger(__name__).exception("worker heartbeat not written")


app.steps["worker"].add(WorkerHeartbeatStep)
