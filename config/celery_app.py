"""The Celery app. Its beat schedule is the list in config/periodic.py.

Configuration comes from Django settings under the CELERY_ namespace
(config/settings/base.py). Without REDIS_URL tasks run in-process.
"""
import os

from celery import Celery

from config.periodic import beat_schedule

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = beat_schedule()
