"""gunicorn settings for the shop's web tier.

    gunicorn -c config/gunicorn.conf.py

Worker model: threaded workers (gthread), WEB_CONCURRENCY processes (CPU
count x 2 + 1) of GUNICORN_THREADS threads (8). Why:

- The cashier, return and refund pages wait on gateway HTTP calls (200 ms
  is ordinary, seconds happen). A thread blocked on a socket costs far less
  than a process, and Django's ORM is thread-safe with one connection per
  thread. Starting 100 payments/s behind a 200 ms gateway needs 20 requests
  in flight at once; 5 x 8 = 40 threads on two cores leave room for the
  CPU each start needs, and several processes let both cores run Python
  (one process holds one GIL). gevent would also overlap the waits, but
  would need psycopg, requests and the cryptography calls to cooperate with
  its monkey-patching, for no gain at this concurrency.
- Connections spread across the workers. A gthread worker accepts new
  connections until it holds `worker_connections` of them (gunicorn's
  default: 1000) and queues the requests behind its own threads, so one
  worker was seen holding 50 of 64 keep-alive connections while others
  sat idle. Here a worker holds at most two connections per thread (half
  of them may idle in keep-alive): a full worker stops accepting and the
  shared listening socket hands new connections to the others. Keep-alive
  lasts 2 seconds, long enough for a client's next request, short enough
  that a connection does not stay tied to one busy worker. One shared
  socket rather than `reuse_port` (a socket per worker, spread by the
  kernel's hash): the kernel would not move a connection from a busy
  worker to an idle one, and the connections queued on a recycled worker's
  socket (max_requests) would be reset.
- Database connections persist per thread (CONN_MAX_AGE, checked before
  reuse: CONN_HEALTH_CHECKS), so one instance holds up to workers x
  threads connections (40 by default), logged at start. Keep that, plus
  the Celery workers and beat, under PostgreSQL's max_connections (100 by
  default).
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
# See the docstring: connections spread across workers.
keepalive = 2
worker_connections = threads * 2
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


def when_ready(server):
    server.log.info("web tier: %d workers x %d threads: up to %d database connections",
                    server.cfg.workers, server.cfg.threads, server.cfg.workers * server.cfg.threads)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
