"""The baseline: a minimal Django project doing only the essential work of each
measured request, under the same gunicorn settings and against the same
PostgreSQL as the shop (`make bench`, bench/web.py).

No apps, no middleware, no templates: what is left is the WSGI handler, the URL
resolver, the request parsing and the database connection, which any Django
view pays for. Its tables (bench/baseline/schema.py) live in the bench
database beside the shop's.
"""
import os

import environ

SECRET_KEY = os.environ.get("SECRET_KEY", "bench-baseline-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.baseline.urls"
WSGI_APPLICATION = "bench.baseline.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"
DATABASES = {"default": environ.Env.db_url_config(os.environ["DATABASE_URL"])}
# As the shop's (config/settings/base.py): persistent, health-checked connections.
DATABASES["default"]["CONN_MAX_AGE"] = 60
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
LOGGING_CONFIG = None
