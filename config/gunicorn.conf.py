"""gunicorn settings for the shop's web tier.

    gunicorn -c config/gunicorn.conf.py

Threaded workers (gthread): cashier, return and refund pages wait on gateway
HTTP calls for up to several seconds; a thread blocked on a socket costs far
less than a process, and Django's ORM is thread-safe with one connection per
thread. Database connections persist between requests (CONN_MAX_AGE).
"""
import multiprocessing
import os

wsgi_app = "config.wsgi:application"
bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Above the slowest gateway call (connect + read timeouts) plus rendering.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
