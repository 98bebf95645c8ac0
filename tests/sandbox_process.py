"""Run the sandbox gateway (`python -m sandbox serve`) as a real process for tests.

    sandbox = SandboxProcess(tmp_path, time_scale=0.001)
    sandbox.start()                      # free port chosen by the OS; waits for health
    sandbox.control("POST", "reset")
    sandbox.wait_for(lambda: sandbox.control("GET", "alipay/trades/X")["status"] == "paid")
    sandbox.stop()

Each instance has its own keys directory and database under `workdir`; the
process log is `workdir/sandbox.log`. Refunds do not settle by time unless
asked (`refund_settle_after`: seconds for WeChat Pay; None, the default, passes
`none`, so a refund stays processing until queried or settled through the
control API; SERVE_DEFAULT leaves the option and its environment variable out,
so `serve`'s own default applies). Nothing here sleeps for a fixed time:
readiness and conditions are polled with a deadline.
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import requests

from tests.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# refund_settle_after=SERVE_DEFAULT: start with `serve`'s own default.
SERVE_DEFAULT = "default"


class SandboxError(RuntimeError):
    pass


class SandboxControlError(SandboxError):
    def __init__(self, method: str, path: str, status: int, body: str):
        super().__init__(f"{method} /_control/{path} answered {status}: {body}")
        self.status = status
        self.body = body


class SandboxProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        time_scale: float = 0.001,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_port: int = 0,
        keys_dir: Path | None = None,
        startup_timeout: float = 60.0,
        extra_env: dict[str, str] | None = None,
        refund_settle_after: float | str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.time_scale = time_scale
        self.host = host
        # 0: let the OS pick a free port (the sandbox reports it back).
        self.port = port
        self.tls_port = tls_port
        self.keys_dir = Path(keys_dir) if keys_dir else self.workdir / "sandbox-keys"
        self.db_path = self.workdir / "sandbox.sqlite3"
        self.log_path = self.workdir / "sandbox.log"
        self.ready_file = self.workdir / "sandbox.ready"
        self.startup_timeout = startup_timeout
        self.extra_env = extra_env or {}
        self.refund_settle_after = refund_settle_after
        self.base_url = ""
        self.process: subprocess.Popen | None = None
        self._http = requests.Session()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> SandboxProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        self._http = requests.Session()
        command = [
            sys.executable, "-m", "sandbox", "serve",
            "--host", self.host,
            "--port", str(self.port),
            "--tls-port", str(self.tls_port),
            "--keys-dir", str(self.keys_dir),
            "--db", str(self.db_path),
            "--time-scale", repr(self.time_scale),
            "--ready-file", str(self.ready_file),
        ]  # fmt: skip
        inherited = dict(os.environ)
        if self.refund_settle_after == SERVE_DEFAULT:
            # serve's own default, or what extra_env says, not the shell's.
            inherited.pop("SANDBOX_REFUND_SETTLE_AFTER", None)
        else:
            settle_after = "none" if self.refund_settle_after is None else str(self.refund_settle_after)
            command += ["--refund-settle-after", settle_after]
        environment = {**inherited, "PYTHONUNBUFFERED": "1", **self.extra_env}
        # The child picks its own settings module; don't hand it the shop's.
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=environment
            )
        try:
            self.base_url = self.wait_for(self._read_ready_file, timeout=self.startup_timeout, what="the bound port")
            self.wait_for(self._healthy, timeout=self.startup_timeout, what="/_control/health")
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise SandboxError(f"the sandbox exited with {self.process.returncode}; log:\n{self.log_text()}")

    def _read_ready_file(self) -> str:
        self._check_alive()
        return self.ready_file.read_text().strip() if self.ready_file.exists() else ""

    def _healthy(self) -> bool:
        self._check_alive()
        try:
            return self._http.get(self.url("/_control/health"), timeout=2).json() == {"status": "ok"}
        except (requests.RequestException, ValueError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.process = None
        self._http.close()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- talking to it -----------------------------------------------------------

    def url(self, path: str) -> str:
        return self.base_url + "/" + path.lstrip("/")

    @property
    def alipay_gateway_url(self) -> str:
        return self.url("/alipay/gateway.do")

    def alipay_key_path(self, owner: str, kind: str) -> Path:
        """owner "app" (the merchant's) or "alipay" (the gateway's); kind "private" or "public"."""
        return self.keys_dir / "alipay" / f"{owner}_{kind}_key.pem"

    def control(self, method: str, path: str, json: Any = None, *, timeout: float = 10.0) -> dict:
        """Call /_control/<path>; returns the JSON answer, raises SandboxControlError on 4xx/5xx."""
        response = self._http.request(method, self.url("/_control/" + path.lstrip("/")), json=json, timeout=timeout)
        if response.status_code >= 400:
            raise SandboxControlError(method, path, response.status_code, response.text)
        return response.json()

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.02, what: str = ""
    ) -> T:
        """Poll `predicate` until it returns something truthy; return that value."""
        return wait_for(predicate, timeout=timeout, interval=interval, what=what)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
