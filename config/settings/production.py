"""Production (gunicorn, Celery worker and beat).

DEBUG stays off unless set; base.py already refuses to start without
SECRET_KEY. Static files are served by WhiteNoise from STATIC_ROOT after
`manage.py collectstatic`.
"""
from config.settings.base import *  # noqa: F401,F403

STORAGES = {
    **STORAGES,  # noqa: F405  (the archive's among them)
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
