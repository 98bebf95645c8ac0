"""`make run`: the shop and its helpers side by side; Ctrl-C stops them all.

Processes (honcho runs them and stops the whole group together):
- web:     Django's development server on 127.0.0.1:8000
- sandbox: the sandbox payment gateway on 127.0.0.1:8001, and its HTTPS
           listener on 127.0.0.1:8002 (WeChat Pay API v2) (its own process)
- worker:  a Celery worker, started again } only when REDIS_URL is set; without
           whenever it dies (supervise.py)  } it
- beat:    Celery beat (the schedule)     } tasks run inside the web process, and
- janitor: the periodic payment work (query stale attempts, close expired
           orders) runs in a small loop instead of beat.

Once the sandbox answers, `manage.py demo_reconciliation` runs once in the
background (a reconciled yesterday with one of each discrepancy for the
finance user). It is not a honcho process: honcho stops everything when
any one of its processes ends.
"""
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

from honcho.manager import Manager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.env import env  # noqa: E402  (reads .env like the settings do)


def processes() -> dict[str, list[str]]:
    python = sys.executable
    found = {
        "web": [python, "manage.py", "runserver", os.environ.get("SHOP_ADDR", "127.0.0.1:8000")],
        "sandbox": [
            python, "-m", "sandbox", "serve",
            "--port", os.environ.get("SANDBOX_PORT", "8001"),
            "--tls-port", os.environ.get("SANDBOX_TLS_PORT", "8002"),
        ],  # fmt: skip
    }
    if env("REDIS_URL", default=""):
        # A crashed worker must not stop the shop (honcho stops everything
        # when one process exits): supervise.py starts it again.
        found["worker"] = [python, str(ROOT / "scripts" / "supervise.py"), "--", python, "-m", "celery", "-A",
                           "config", "worker", "-l", "info", "--concurrency", "2"]
        found["beat"] = [
            python, "-m", "celery", "-A", "config", "beat", "-l", "info",
            "--schedule", str(ROOT / "var" / "celerybeat-schedule"),
        ]
    else:
        found["janitor"] = [python, "manage.py", "run_janitor", "--interval", "30"]
    return found


def seed_reconciliation_demo(environment: dict[str, str]) -> None:
    """Yesterday reconciled for the demo, once the sandbox is up (the command waits for it)."""
    finished = subprocess.run([sys.executable, "manage.py", "demo_reconciliation", "--wait", "120"],
                              cwd=ROOT, env=environment, check=False)
    if finished.returncode:
        print("demo_reconciliation failed (see above); the shop runs on without it", file=sys.stderr)


def main() -> int:
    manager = Manager()
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, argv in processes().items():
        manager.add_process(name, shlex.join(argv), env=environment, cwd=str(ROOT))
    threading.Thread(target=seed_reconciliation_demo, args=(environment,), daemon=True).start()
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
