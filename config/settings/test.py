"""pytest settings: real PostgreSQL and Redis on loopback, fast hashing."""
import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")

from config.settings.base import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tests that exercise a worker start one; the rest run tasks in-process and
# see their failures.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# A gateway task's retry reaches the test as celery.exceptions.Retry, as on a worker.
TASK_EAGER_RETRY_INLINE = True
# Plain-HTTP live servers in tests.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
ALLOWED_HOSTS = ["*"]
LANGUAGE_CODE = "en"
# Serve static files from the app folders, as in development: live servers
# in browser tests need CSS without a collectstatic step.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# The in-memory gateway for unit tests of the payment services.
GATEWAY_CLASSES = {**GATEWAY_CLASSES, "fake": "payments.gateways.fake.FakeGateway"}  # noqa: F405
# WeChat Pay API v3 whatever the shell exports (WECHATPAY_API_VERSION,
# WECHATPAY_API_KEY); the v2 tests switch to v2 themselves.
GATEWAY_CLASSES["wechatpay"] = "payments.gateways.wechatpay.WechatPayGateway"
GATEWAY_OPTIONS = {**GATEWAY_OPTIONS, "wechatpay": WECHATPAY_V3_OPTIONS}  # noqa: F405
# Live-server request threads die after each request; a persistent
# connection would outlive its thread and block dropping the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # The SQLite run of the reconciliation tests (make test): a test database
    # in a file, so that threads with their own connections share it (an
    # in-memory one would lock whole tables across them).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-sqlite.sqlite3")}  # noqa: F405
