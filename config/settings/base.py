"""Settings shared by every environment; production-safe by default.

Every value comes from the environment (or `.env`) through `config.env.env`.
The variable names are part of the outside contract (docs/CONTRACT.md) and
are all listed in `.env.example`.
"""
import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import BASE_DIR, env
from config.gateway_choice import V2, wechatpay_api_choice

VAR_DIR = BASE_DIR / "var"

# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

# A throwaway key is acceptable only while DEBUG is on; a production process
# without SECRET_KEY refuses to start.
_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS",
    default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [],
)

# Public base URL of the shop; notify and return URLs sent to gateways are
# built from it, so it must be reachable by the gateway.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------
# Applications
# ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    # Login throttling for the shop and admin (AXES_* below).
    "axes",
    # The shop's own apps, in dependency order: each may read the ones before.
    "shop",
    "orders",
    "payments",
    "refunds",
    "reconciliation",
    # The nightly archive of notifications and payment and refund events.
    "archive",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A gateway's POST to its notify endpoint skips the browser's middleware
    # below (shop/middleware.py, BROWSER_ONLY); the rest still wraps it.
    "shop.middleware.ServerToServerMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A NUL in a URL or a form value is a 404/400, never a database error.
    "shop.middleware.RejectNulCharactersMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart_summary",
                "refunds.context_processors.money_alarms",
                "reconciliation.context_processors.reconciliation_alarms",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------
# Embedded default: SQLite under var/. Tests and production use PostgreSQL.
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'shop.sqlite3'}"
    ),
}
# Persistent connections, checked before reuse so a restarted database does
# not surface as errors on the first request after it.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's PostgreSQL backend whose health check polls the idle socket
    # instead of sending a SELECT 1 each request (config/database/base.py).
    DATABASES["default"]["ENGINE"] = "config.database"
# Transactions are explicit in services, never per request.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers. Wait for the lock instead of failing at once,
    # and take it when a transaction begins: a deferred transaction that reads
    # and then writes fails with "database is locked" without waiting, which
    # is exactly the notification and the status poll meeting on one payment.
    # WAL lets the pages read while a notification writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20,
        transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )

# ---------------------------------------------------------------------------
# Redis: cache and Celery broker
# ---------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# ---------------------------------------------------------------------------
# Celery (https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html)
# ---------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL or "memory://"
# kombu's Redis transport with the repair that keeps a worker alive through
# a Redis restart (config/broker.py); the in-memory broker needs none.
CELERY_BROKER_TRANSPORT = "config.broker:RedisTransport" if REDIS_URL else None
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Without a broker, tasks run in-process so the embedded default still works.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
# An eager task's failure is logged, never raised into the request that
# enqueued it: a payment ack must not fail because an email did.
CELERY_TASK_EAGER_PROPAGATES = False
# In-process, a gateway task's retry is left to the janitor instead of
# running again at once inside the request (config/tasks.py).
TASK_EAGER_RETRY_INLINE = False
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Acknowledge after the task ran, so a worker killed mid-task hands the task
# to another worker; every task is written to be safe to run twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=120)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=180)
# Riding out a broker restart (Redis stopped, restarted empty): the worker
# retries the connection forever instead of exiting after 100 tries; a task
# running when the connection drops is cancelled and given back, since its
# late ack can no longer reach the broker (the outbox re-delivers whatever
# a restart without persistence lost, shop/outbox.py); sockets time out and
# are health-checked, so a half-open connection is noticed.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-settings
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers an unacknowledged task after this; longer than any task.
    "visibility_timeout": 3600,
    "socket_timeout": 10,
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 25,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# A publish (the outbox relay, retry=False) gives up after this many seconds.
CELERY_BROKER_CONNECTION_TIMEOUT = 4
# How often each worker writes its heartbeat (/healthz, shop/workers.py).
WORKER_HEARTBEAT_SECONDS = env.int("WORKER_HEARTBEAT_SECONDS", default=30)
CELERY_TIMEZONE = "Asia/Shanghai"

# The transactional outbox (shop/outbox.py): a follow-up task not completed
# this long after its delivery is delivered again by the periodic relay; one
# delivered this many times is given up with an alarm.
OUTBOX_LEASE_SECONDS = env.int("OUTBOX_LEASE_SECONDS", default=300)
OUTBOX_MAX_DELIVERIES = env.int("OUTBOX_MAX_DELIVERIES", default=10)

# ---------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out login before any password check
# (https://django-axes.readthedocs.io/en/latest/2_installation.html).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesBackend", "django.contrib.auth.backends.ModelBackend"]
# After this many failed sign-ins for one username from one address (shop
# and admin alike), that pair is locked out for LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "shop.client_ip.client_ip"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "shop:catalogue"
LOGOUT_REDIRECT_URL = "shop:catalogue"

# ---------------------------------------------------------------------------
# Languages and time
# ---------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

# ---------------------------------------------------------------------------
# Static files (served by WhiteNoise under gunicorn)
# ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where `collectstatic` puts them for WhiteNoise (production).
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))

# ---------------------------------------------------------------------------
# File storage (https://docs.djangoproject.com/en/5.2/ref/settings/#storages)
# ---------------------------------------------------------------------------
# `bills` keeps every downloaded gateway bill (reconciliation); `archive` the
# nightly archive of notifications and events (archive/services.py). Each is
# a folder under var/ by default; any Django storage backend may be named,
# e.g. django-storages' "storages.backends.s3.S3Storage" (installed
# separately) for several web nodes, with its options as JSON for bills
# (BILLS_STORAGE_OPTIONS='{"bucket_name": "shop-bills"}') and its own AWS_*
# variables.
_FILE_SYSTEM_STORAGE = "django.core.files.storage.FileSystemStorage"
BILLS_STORAGE_BACKEND = env("BILLS_STORAGE_BACKEND", default=_FILE_SYSTEM_STORAGE)
_BILLS_OPTIONS = env.json("BILLS_STORAGE_OPTIONS", default={})
if BILLS_STORAGE_BACKEND == _FILE_SYSTEM_STORAGE:
    _BILLS_OPTIONS = {"location": env("BILLS_DIR", default=str(VAR_DIR / "bills")), **_BILLS_OPTIONS}
ARCHIVE_STORAGE_BACKEND = env("ARCHIVE_STORAGE_BACKEND", default=_FILE_SYSTEM_STORAGE)
ARCHIVE_LOCATION = env("ARCHIVE_LOCATION", default=str(VAR_DIR / "archive"))
STORAGES = {
    "default": {"BACKEND": _FILE_SYSTEM_STORAGE},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "bills": {"BACKEND": BILLS_STORAGE_BACKEND, "OPTIONS": _BILLS_OPTIONS},
    "archive": {
        "BACKEND": ARCHIVE_STORAGE_BACKEND,
        "OPTIONS": {"location": ARCHIVE_LOCATION} if ARCHIVE_STORAGE_BACKEND == _FILE_SYSTEM_STORAGE else {},
    },
}

# ---------------------------------------------------------------------------
# Email
# ---------------------------------------------------------------------------
# EMAIL_URL as in django-environ (smtp+tls://user:pass@host:587); the demo
# prints mail on the console.
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="shop@example.com")

# ---------------------------------------------------------------------------
# Security (https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/)
# ---------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Content-Security-Policy (django-csp, https://django-csp.readthedocs.io/):
# scripts, styles and images from the shop itself only, no inline script or
# style anywhere. Forms may post to the gateways' payment pages (the
# auto-submitting redirect form, and the redirects that follow a cashier
# POST): the cashier adds the enabled gateways' URLs' origins, and
# CSP_FORM_ACTION_EXTRA names the providers' own cashier hosts they redirect to.
CSP_FORM_ACTION_EXTRA = env.list(
    "CSP_FORM_ACTION_EXTRA", default=["https://*.alipay.com", "https://*.tenpay.com", "https://*.95516.com"])

# /metrics (config/metrics.py): who may scrape it. An address in these
# CIDRs (through TRUSTED_PROXIES), or a request with this bearer token.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1/32", "::1/128"])
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# ---------------------------------------------------------------------------
# The shop
# ---------------------------------------------------------------------------
SHOP_CURRENCY = "CNY"
# An unpaid order is closed, and its stock released, after this many minutes.
ORDER_PAYMENT_TIMEOUT_MINUTES = env.int("ORDER_PAYMENT_TIMEOUT_MINUTES", default=30)
# A shipped order the shopper never confirmed completes by itself this many
# days after it shipped (the janitor's orders-complete-delivered job).
ORDER_AUTO_COMPLETE_DAYS = env.int("ORDER_AUTO_COMPLETE_DAYS", default=10)
# The most of one SKU a shopper may put on one order line.
CART_MAX_QUANTITY_PER_LINE = 99

# ---------------------------------------------------------------------------
# Payment gateways (docs/CONTRACT.md lists the variables)
# ---------------------------------------------------------------------------
# Enabled gateways, in the order the cashier shows them. One whose settings
# are incomplete is not offered and is named in a warning at start-up.
PAYMENT_GATEWAYS = env.list("PAYMENT_GATEWAYS", default=["alipay", "wechatpay", "unionpay"])
GATEWAY_CLASSES = {
    "alipay": "payments.gateways.alipay.AlipayGateway",
    "wechatpay": "payments.gateways.wechatpay.WechatPayGateway",
    "unionpay": "payments.gateways.unionpay.UnionPayGateway",
}

# The sandbox gateway (`python -m sandbox`) and the keys it generates are the
# default for every gateway, so a fresh clone pays end to end offline.
SANDBOX_URL = env("SANDBOX_URL", default="http://127.0.0.1:8001").rstrip("/")
SANDBOX_KEYS_DIR = Path(env("SANDBOX_KEYS_DIR", default=str(VAR_DIR / "sandbox-keys")))
# The sandbox's HTTPS listener (WeChat Pay API v2, whose refunds need mutual TLS).
SANDBOX_TLS_URL = env("SANDBOX_TLS_URL", default="https://127.0.0.1:8002").rstrip("/")

GATEWAY_HTTP_CONNECT_TIMEOUT = env.float("GATEWAY_HTTP_CONNECT_TIMEOUT", default=5.0)
GATEWAY_HTTP_READ_TIMEOUT = env.float("GATEWAY_HTTP_READ_TIMEOUT", default=15.0)

# The janitor asks the gateway about an open attempt this long after it was
# created (a notification may have been lost), then backs off exponentially
# up to the maximum interval.
PAYMENT_QUERY_AFTER_SECONDS = env.int("PAYMENT_QUERY_AFTER_SECONDS", default=180)
PAYMENT_QUERY_MAX_INTERVAL_SECONDS = env.int("PAYMENT_QUERY_MAX_INTERVAL_SECONDS", default=1800)

# Refunds above this (fen) need a second approval by a different reviewer.
REFUND_SECOND_APPROVAL_ABOVE_MINOR = env.int("REFUND_SECOND_APPROVAL_ABOVE_MINOR", default=100000)
# Refunds the gateway is still processing are polled this long after
# submission, then with exponential backoff up to the maximum interval; after
# this many polls the poller gives up and raises an alarm for staff.
REFUND_POLL_AFTER_SECONDS = env.int("REFUND_POLL_AFTER_SECONDS", default=60)
REFUND_POLL_MAX_INTERVAL_SECONDS = env.int("REFUND_POLL_MAX_INTERVAL_SECONDS", default=3600)
REFUND_POLL_GIVE_UP_AFTER = env.int("REFUND_POLL_GIVE_UP_AFTER", default=36)
# An approved refund not yet sent to its gateway this long after approval is
# sent again (then at this interval); still approved after the alarm limit,
# it shows under "needs attention", in the admin banner and in the metrics.
REFUND_RESUBMIT_AFTER_SECONDS = env.int("REFUND_RESUBMIT_AFTER_SECONDS", default=300)
REFUND_STALLED_ALARM_AFTER_SECONDS = env.int("REFUND_STALLED_ALARM_AFTER_SECONDS", default=1800)

# Notifications: a body above this many bytes is refused (recorded as
# rejected by its size, its content not stored); both providers send a few KB.
NOTIFICATION_MAX_BODY_BYTES = env.int("NOTIFICATION_MAX_BODY_BYTES", default=64 * 1024)
# Optional source allowlists for the notify endpoints, per gateway (comma
# CIDRs; unset: any source). Addresses are read through TRUSTED_PROXIES.
NOTIFY_ALLOWED_IPS = {
    code: env.list(f"{code.upper()}_NOTIFY_ALLOWED_IPS", default=[]) for code in ("alipay", "wechatpay", "unionpay")
}
# Proxies (comma CIDRs) whose X-Forwarded-For names the client
# (shop/client_ip.py): the notify allowlist, login throttling, the inbox.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# Reconciliation (docs/CONTRACT.md). Celery beat (or the janitor) runs the
# job on this crontab, in Beijing time (CELERY_TIMEZONE): every ten minutes
# from 10:00, after the providers publish yesterday's bills; each run does
# only what is due (a bill not out yet waits with backoff).
RECONCILIATION_CRONTAB = env("RECONCILIATION_CRONTAB", default="*/10 10-19 * * *")
# A day not reconciled by this time of the next day raises an alarm (log
# and admin banner).
RECONCILIATION_ALARM_AT = env("RECONCILIATION_ALARM_AT", default="12:00")
# A bill still not out at this time of the next day is recorded as no bill
# (an alarm too when we had transactions that day).
RECONCILIATION_NO_BILL_AFTER = env("RECONCILIATION_NO_BILL_AFTER", default="18:00")
# A success of ours this close to the end of a bill day that the bill lacks
# is carried to the next day's bill instead of being a discrepancy.
RECONCILIATION_CARRY_MINUTES = env.int("RECONCILIATION_CARRY_MINUTES", default=10)

GATEWAY_OPTIONS = {
    "alipay": {
        "app_id": env("ALIPAY_APP_ID", default="2021000149600001"),
        # The merchant PID (2088...) that must receive the money; checked on
        # every notification when set.
        "seller_id": env("ALIPAY_SELLER_ID", default="2088721000000001"),
        "app_private_key_path": env(
            "ALIPAY_APP_PRIVATE_KEY_PATH", default=str(SANDBOX_KEYS_DIR / "alipay" / "app_private_key.pem")
        ),
        "alipay_public_key_path": env(
            "ALIPAY_PUBLIC_KEY_PATH", default=str(SANDBOX_KEYS_DIR / "alipay" / "alipay_public_key.pem")
        ),
        "gateway_url": env("ALIPAY_GATEWAY_URL", default=f"{SANDBOX_URL}/alipay/gateway.do"),
        "connect_timeout": GATEWAY_HTTP_CONNECT_TIMEOUT,
        "read_timeout": GATEWAY_HTTP_READ_TIMEOUT,
    },
    "wechatpay": {
        "mchid": env("WECHATPAY_MCHID", default="1900000001"),
        "appid": env("WECHATPAY_APPID", default="wx8888888888888888"),
        # The 32-byte APIv3 key decrypts notifications. The default is the
        # sandbox's published throwaway value, never a real merchant's.
        "api_v3_key": env("WECHATPAY_API_V3_KEY", default="SandboxApiV3KeyNotASecret0000001"),
        "private_key_path": env(
            "WECHATPAY_PRIVATE_KEY_PATH", default=str(SANDBOX_KEYS_DIR / "wechatpay" / "merchant_private_key.pem")
        ),
        "cert_serial_no": env("WECHATPAY_CERT_SERIAL_NO", default="3775B6A45ACD588826D15E583A95F5DD00000001"),
        "public_key_path": env(
            "WECHATPAY_PUBLIC_KEY_PATH", default=str(SANDBOX_KEYS_DIR / "wechatpay" / "platform_public_key.pem")
        ),
        "public_key_id": env("WECHATPAY_PUBLIC_KEY_ID", default="PUB_KEY_ID_0119000000002025112200000000000001"),
        # Paths such as /v3/pay/transactions/native are appended; the signed
        # path includes this base's own path (e.g. /wechatpay/v3/...).
        "api_base": env("WECHATPAY_API_BASE", default=f"{SANDBOX_URL}/wechatpay"),
        "connect_timeout": GATEWAY_HTTP_CONNECT_TIMEOUT,
        "read_timeout": GATEWAY_HTTP_READ_TIMEOUT,
    },
    "unionpay": {
        "mer_id": env("UNIONPAY_MER_ID", default="898110000000001"),
        # The merchant's PKCS#12 signing certificate and its password. The
        # default password is the sandbox's published throwaway value.
        "sign_cert_path": env(
            "UNIONPAY_SIGN_KEY_PATH", default=str(SANDBOX_KEYS_DIR / "unionpay" / "merchant_sign.pfx")
        ),
        "sign_cert_password": env("UNIONPAY_SIGN_KEY_PASSWORD", default="000000"),
        # Optional: the certId; when set it must be the certificate's serial.
        "sign_cert_id": env("UNIONPAY_SIGN_CERT_ID", default=""),
        # UnionPay's middle and root certificates in one PEM file: every
        # answer's signPubKeyCert must chain to them.
        "verify_cert_path": env(
            "UNIONPAY_VERIFY_CERT_PATH", default=str(SANDBOX_KEYS_DIR / "unionpay" / "verify_chain.pem")
        ),
        # frontTransReq.do, backTransReq.do and queryTrans.do are appended
        # (production: https://gateway.95516.com/gateway/api).
        "gateway_base": env("UNIONPAY_GATEWAY_BASE", default=f"{SANDBOX_URL}/unionpay/gateway/api"),
        # The settlement file comes from another host (production:
        # https://filedownload.95516.com/).
        "file_transfer_url": env("UNIONPAY_FILE_TRANSFER_URL", default=f"{SANDBOX_URL}/unionpay/filetransfer/"),
        "connect_timeout": GATEWAY_HTTP_CONNECT_TIMEOUT,
        "read_timeout": GATEWAY_HTTP_READ_TIMEOUT,
    },
}

# WeChat Pay API v2, for merchants on legacy credentials (docs/gateways-wechatpay.md
# §10). The same gateway code and cashier entry: config/gateway_choice.py picks
# v2 or v3 from the variables set, and the start-up log says which and why.
WECHATPAY_API = wechatpay_api_choice(os.environ)
_WECHATPAY_V2_API_BASE = env("WECHATPAY_V2_API_BASE", default="")
_WECHATPAY_CLIENT_P12_PATH = env("WECHATPAY_CLIENT_P12_PATH", default="")
_SANDBOX_WECHATPAY_KEYS = SANDBOX_KEYS_DIR / "wechatpay"
WECHATPAY_V2_OPTIONS = {
    "mchid": GATEWAY_OPTIONS["wechatpay"]["mchid"],
    "appid": GATEWAY_OPTIONS["wechatpay"]["appid"],
    # The 32-character API v2 key signs every call and decrypts refund
    # notifications. The default is the sandbox's published throwaway value.
    "api_key": env("WECHATPAY_API_KEY", default="SandboxApiV2KeyNotASecret0000002"),
    "sign_type": env("WECHATPAY_SIGN_TYPE", default="MD5"),
    # Paths such as /pay/unifiedorder and /secapi/pay/refund are appended.
    "api_base": _WECHATPAY_V2_API_BASE or f"{SANDBOX_TLS_URL}/wechatpay",
    # The CA that signs the API's server certificate: the sandbox's own CA
    # for the sandbox, requests' bundle (certifi) for a real API base.
    "ca_bundle": env(
        "WECHATPAY_V2_CA_BUNDLE",
        default="" if _WECHATPAY_V2_API_BASE else str(_SANDBOX_WECHATPAY_KEYS / "sandbox_ca.pem"),
    ),
    # The merchant's client certificate for /secapi/ (mutual TLS): the PEM
    # pair, or the .p12 and its password.
    "client_cert_path": env(
        "WECHATPAY_CLIENT_CERT_PATH",
        default="" if _WECHATPAY_CLIENT_P12_PATH else str(_SANDBOX_WECHATPAY_KEYS / "apiclient_cert.pem"),
    ),
    "client_key_path": env(
        "WECHATPAY_CLIENT_KEY_PATH",
        default="" if _WECHATPAY_CLIENT_P12_PATH else str(_SANDBOX_WECHATPAY_KEYS / "apiclient_key.pem"),
    ),
    "client_p12_path": _WECHATPAY_CLIENT_P12_PATH,
    "client_p12_password": env("WECHATPAY_CLIENT_P12_PASSWORD", default=""),
    "connect_timeout": GATEWAY_HTTP_CONNECT_TIMEOUT,
    "read_timeout": GATEWAY_HTTP_READ_TIMEOUT,
}
WECHATPAY_V3_OPTIONS = GATEWAY_OPTIONS["wechatpay"]
if WECHATPAY_API.version == V2:
    GATEWAY_CLASSES["wechatpay"] = "payments.gateways.wechatpay_v2.WechatPayV2Gateway"
    GATEWAY_OPTIONS["wechatpay"] = WECHATPAY_V2_OPTIONS
# Why a code's adapter was chosen, for the start-up log.
GATEWAY_CHOICES = {"wechatpay": WECHATPAY_API.message}

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        # The cashier adds the enabled gateways' own origins (payments.views).
        "form-action": ["'self'", *CSP_FORM_ACTION_EXTRA],
    },
}
