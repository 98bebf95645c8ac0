"""The Celery app, and the one place every periodic task is declared.

Configuration comes from Django settings under the CELERY_ namespace
(config/settings/base.py). Without REDIS_URL tasks run in-process.
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Beat schedule. Each entry says when and why; later capabilities add theirs.
app.conf.beat_schedule = {}
