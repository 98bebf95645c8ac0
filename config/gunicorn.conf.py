"""gunicorn settings for the shop's web tier.

    gunicorn -c config/gunicorn.conf.py

Threaded workers (gthread): cashier, return and refund pages wait on gateway
HTTP calls for up to several seconds; a thread blocked on a socket costs far
less than a process, and Django's ORM is thread-safe with one connection per
thread. Database connections persist between requests (CONN_MAX_AGE).
"""
import multiprocessing
import os
import re
from pathlib import Path

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

# The control socket (gunicornc) of this instance, not the per-user default
# ($XDG_RUNTIME_DIR/gunicorn.ctl) that every gunicorn of the same user would
# share: named after the bind address, or GUNICORN_CONTROL_SOCKET (a path,
# or "off" to have none).
_control = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
if _control.lower() == "off":
    control_socket_disable = True
else:
    _instance = re.sub(r"[^A-Za-z0-9]+", "-", bind).strip("-") or "default"
    control_socket = _control or str(Path(__file__).resolve().parent.parent / "var" / "run" / f"gunicorn-{_instance}.ctl")
control_socket_mode = 0o600


# Prometheus multiprocess mode (config/metrics.py): the directory starts
# empty with each gunicorn (stale files of dead processes would be summed
# in), and a worker that exits is marked dead so its live gauges go.
def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
