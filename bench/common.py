"""What bench/web.py needs around the measurement: processes it starts and
always stops, a database of its own, wrk replaying prepared requests, the
load average, and the one table it prints.

Everything started here is registered with a `Stack`; leaving the `with`
block (normally, on an error, on Ctrl-C or SIGTERM) stops the processes,
newest first, and runs the clean-ups (dropping the database, deleting the
Redis keys the run created).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REPLAY_LUA = Path(__file__).resolve().parent / "wrk" / "replay.lua"


# -- processes and clean-ups ----------------------------------------------------------


class Stack:
    """Processes started and clean-ups registered, undone in reverse order on exit."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], None]]] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Stack:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._interrupted)
        return self

    @staticmethod
    def _interrupted(number: int, frame: FrameType | None) -> None:
        # Unwind through every `finally` and this stack's __exit__.
        raise KeyboardInterrupt(signal.Signals(number).name)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        # A second Ctrl-C must not interrupt the clean-up itself.
        for number in self._previous:
            signal.signal(number, signal.SIG_IGN)
        try:
            while self._undo:
                what, undo = self._undo.pop()
                try:
                    undo()
                except Exception as failure:  # noqa: BLE001 (every clean-up runs whatever one raises)
                    print(f"clean-up of {what} failed: {failure}", file=sys.stderr)
        finally:
            for number, previous in self._previous.items():
                signal.signal(number, previous)

    def callback(self, what: str, undo: Callable[[], None]) -> None:
        self._undo.append((what, undo))

    def start(self, name: str, argv: list[str], *, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start a process in a session of its own (its children are stopped with it)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        output = open(log, "ab")  # noqa: SIM115 (closed when the process is stopped)
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.callback(name, lambda: _stop(process, output))
        return process


def _stop(process: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    try:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    except ProcessLookupError:
        pass
    finally:
        output.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str,
               process: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> Any:
    """Poll `predicate` until truthy; a process that died meanwhile fails at once, with its log."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise SystemExit(f"{what}: the process exited with {process.returncode}\n{tail}")
        if time.monotonic() >= deadline:
            raise SystemExit(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(0.1)


def answers(url: str) -> bool:
    import requests

    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


# -- the database --------------------------------------------------------------------


def bench_database_url(suffix: str) -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/shop")
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("make bench needs PostgreSQL: set DATABASE_URL to a postgres:// URL")
    base, _, name = url.rpartition("/")
    return f"{base}/{name.split('?')[0]}_{suffix}"


def database_recreate(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')


def database_drop(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_database_pick(candidates: Iterable[int], host: str = "127.0.0.1:6379") -> str:
    """The URL of the first empty Redis database among `candidates` (else the first):
    others share this Redis, and their keys must not meet the run's."""
    import redis

    numbers = list(candidates)
    for number in numbers:
        client = redis.Redis.from_url(f"redis://{host}/{number}")
        try:
            if client.dbsize() == 0:
                return f"redis://{host}/{number}"
        finally:
            client.close()
    return f"redis://{host}/{numbers[0]}"


def redis_keys_forget_new(url: str) -> Callable[[], None]:
    """A clean-up deleting the keys of this Redis database that were not there before."""
    import redis

    client = redis.Redis.from_url(url)
    before = set(client.scan_iter(count=1000))

    def forget() -> None:
        created = [key for key in client.scan_iter(count=1000) if key not in before]
        for start in range(0, len(created), 500):
            client.delete(*created[start:start + 500])
        client.close()

    return forget


# -- wrk -----------------------------------------------------------------------------


def wrk_ensure() -> str:
    """wrk from Debian, installed when missing (scripts/ensure-debian-packages.sh)."""
    if not shutil.which("wrk"):
        subprocess.run([str(ROOT / "scripts" / "ensure-debian-packages.sh"), "wrk"], check=True)
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed and could not be installed")
    return path


def raw_request(method: str, path: str, *, host: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request as wrk sends it."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "", ""]
    raw = "\r\n".join(lines).encode("utf-8") + body
    if b"\0" in raw:
        raise ValueError("a request may not contain a NUL byte (the record separator)")
    return raw


def requests_write(path: Path, requests: Iterable[bytes]) -> int:
    count = 0
    with open(path, "wb") as file:
        for raw in requests:
            file.write(raw + b"\0")
            count += 1
    return count


@dataclass
class WrkResult:
    duration_us: int
    requests: int
    sent: int
    exhausted: int
    ok: int
    s4xx: int
    s5xx: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    p50_us: int
    p99_us: int
    load: float = 0.0

    @property
    def rate(self) -> float:
        """Answered requests (2xx/3xx) per second."""
        return self.ok / (self.duration_us / 1e6) if self.duration_us else 0.0


def wrk_run(url: str, requests_file: Path, *, connections: int, seconds: float, threads: int = 1,
            during: Callable[[], None] | None = None) -> WrkResult:
    """Replay the prepared requests against `url` for `seconds`; `during` runs once halfway."""
    argv = [wrk_ensure(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
            "-s", str(REPLAY_LUA), url, "--", str(requests_file)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if during is not None:
        try:
            process.wait(timeout=max(1, round(seconds)) / 2)
        except subprocess.TimeoutExpired:
            during()
    stdout, stderr = process.communicate(timeout=seconds + 120)
    load = os.getloadavg()[0]
    if process.returncode != 0:
        raise SystemExit(f"wrk failed ({process.returncode}): {stderr}{stdout}")
    match = re.search(r"^BENCH-WRK (\{.*\})$", stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"wrk printed no result:\n{stdout}\n{stderr}")
    return WrkResult(**json.loads(match.group(1)), load=load)


def connections_by_pid(port: int) -> Counter[int]:
    """Established connections on a listening port, by the pid of the process holding them."""
    listing = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=False).stdout
    return Counter(int(pid) for pid in re.findall(r"pid=(\d+)", listing))


# -- the table -----------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    shop: str
    baseline: str = ""
    ratio: str = ""
    goal: str = ""
    met: bool | None = None
    load: str = ""
    spread: str = ""
    notes: list[str] = field(default_factory=list)
    # False when a correctness check failed (applied twice, a 5xx, oversold).
    correct: bool = True


def spread_text(values: list[float]) -> str:
    """min–max of the rounds, and the relative spread around their median."""
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.0f} (1 round)"
    middle = statistics.median(values)
    relative = (max(values) - min(values)) / middle * 100 if middle else 0.0
    return f"{min(values):.0f}–{max(values):.0f} (±{relative / 2:.0f}%)"


def table_print(rows: list[Row], *, out: Callable[[str], None] = print) -> None:
    headers = ("scenario", "shop", "baseline", "ratio", "goal", "met", "load avg", "spread (shop; baseline)")
    cells = [(row.scenario, row.shop, row.baseline, row.ratio, row.goal,
              "" if row.met is None else ("yes" if row.met else "NO"), row.load, row.spread) for row in rows]
    widths = [max(len(header), *(len(cell[index]) for cell in cells)) for index, header in enumerate(headers)]
    line = "  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))
    out(line)
    out("-" * len(line))
    for cell in cells:
        out("  ".join(text.ljust(width) for text, width in zip(cell, widths, strict=True)))
    for row in rows:
        for note in row.notes:
            out(f"  {row.scenario}: {note}")
