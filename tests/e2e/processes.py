"""Real processes of the shop for end-to-end tests: gunicorn, a Celery worker,
a private redis-server. Each runs on a free loopback port with its log in the
test's temporary directory; nothing waits a fixed time (tests/polling.py)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from django.db import connection

from tests.polling import wait_for
from tests.sandbox_process import REPO_ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """The test database this pytest worker uses, for processes of its own."""
    settings = connection.settings_dict
    return f"postgres://{settings['USER'] or 'postgres'}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"


_COLLECTED: dict[str, str] = {}


def collected_static(workdir: Path) -> str:
    """Production settings serve the manifest of `collectstatic`: collect once per session."""
    if "root" not in _COLLECTED:
        root = workdir / "static"
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO_ROOT,
                       env={**_base_environment(), "DJANGO_SETTINGS_MODULE": "config.settings.production",
                            "SECRET_KEY": "collect-only", "STATIC_ROOT": str(root)}, check=True, timeout=120)
        _COLLECTED["root"] = str(root)
    return _COLLECTED["root"]


def _base_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("PYTEST", "DJANGO_SETTINGS_MODULE", "REDIS_URL", "PROMETHEUS"))}


def shop_environment(workdir: Path, **extra: str) -> dict[str, str]:
    environment = _base_environment()
    environment.update(
        STATIC_ROOT=collected_static(workdir.parent),
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY="e2e-only-secret-key",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=test_database_url(),
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
        CONN_MAX_AGE="0",
        PYTHONUNBUFFERED="1",
        GUNICORN_CONTROL_SOCKET=str(workdir / "gunicorn.ctl"),
        ARCHIVE_LOCATION=str(workdir / "archive"),
    )
    environment.update(extra)
    return environment


class Process:
    def __init__(self, name: str, command: list[str], workdir: Path, environment: dict[str, str]) -> None:
        self.name = name
        self.command = command
        self.workdir = workdir
        self.environment = environment
        self.log_path = workdir / f"{name}.log"
        self.popen: subprocess.Popen | None = None

    def start(self) -> Process:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.environment, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a worker's pool children too)."""
        if self.alive():
            os.killpg(self.popen.pid, sig)
            self.popen.wait(timeout=30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


def gunicorn(workdir: Path, port: int, environment: dict[str, str]) -> Process:
    return Process("gunicorn", [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"], workdir,
                   {**environment, "BIND": f"127.0.0.1:{port}"})


def redis_server(workdir: Path, port: int) -> Process:
    """A private Redis without persistence, like a cache node restarted empty."""
    return Process(f"redis-{port}", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(workdir)], workdir, dict(os.environ))


def wait_for_port(port: int, process: Process, timeout: float = 30) -> None:
    def accepting() -> bool:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(accepting, timeout=timeout, interval=0.05, what=f"{process.name} on port {port}")
