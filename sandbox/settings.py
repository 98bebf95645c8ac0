"""Django settings of the sandbox gateway process (never the shop's).

`python -m sandbox serve` exports SANDBOX_DB_PATH, SANDBOX_KEYS_DIR,
SANDBOX_TIME_SCALE and SANDBOX_REFUND_SETTLE_AFTER from its options before
Django reads this module.
"""
import os
from pathlib import Path

from sandbox.config import (
    DEFAULT_DB_PATH,
    DEFAULT_KEYS_DIR,
    DEFAULT_REFUND_SETTLE_AFTER,
    DEFAULT_TIME_SCALE,
    refund_settle_after_parse,
)

BASE_DIR = Path(__file__).resolve().parent

# The sandbox holds no secret worth protecting: it signs with its own
# throwaway keys and serves only loopback test traffic.
SECRET_KEY = "sandbox-gateway-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = ["sandbox.apps.SandboxConfig"]
# No sessions, auth or CSRF: the sandbox imitates a foreign site, tokens in
# the page URLs are the only capability, and the control API is for tests.
MIDDLEWARE: list[str] = ["sandbox.middleware.content_length"]
ROOT_URLCONF = "sandbox.urls"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

SANDBOX_DB_PATH = Path(os.environ.get("SANDBOX_DB_PATH") or DEFAULT_DB_PATH)
SANDBOX_KEYS_DIR = Path(os.environ.get("SANDBOX_KEYS_DIR") or DEFAULT_KEYS_DIR)
SANDBOX_TIME_SCALE = float(os.environ.get("SANDBOX_TIME_SCALE") or DEFAULT_TIME_SCALE)
# The start-up refund_settle_after_seconds of the providers whose refunds end
# by themselves (WeChat Pay); None: never.
SANDBOX_REFUND_SETTLE_AFTER = refund_settle_after_parse(
    os.environ.get("SANDBOX_REFUND_SETTLE_AFTER") or DEFAULT_REFUND_SETTLE_AFTER
)

# WAL lets the page threads read while the dispatcher thread writes;
# IMMEDIATE transactions take the write lock up front, so two threads never
# deadlock upgrading read locks, and the busy timeout makes them queue.
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-transaction-behavior
DATABASES = {
    "default": {
        "ENGINE": "sandbox.sqlite",
        "NAME": SANDBOX_DB_PATH,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "Asia/Shanghai"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"sandbox": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
