"""Run a command and start it again whenever it dies: `make run`'s worker.

    python scripts/supervise.py [--max-delay SECONDS] -- celery -A config worker ...

A worker that exits (a crash, a broker error it could not ride out, a kill)
is started again after a delay that doubles from 1 s up to --max-delay and
resets once the child has stayed up for a minute. SIGINT and SIGTERM are
passed on to the child and end the supervision. In production systemd does
this job (deploy/systemd/, `Restart=always`).
"""
from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-delay", type=float, default=30.0)
    parser.add_argument("--healthy-after", type=float, default=60.0,
                        help="seconds up after which the restart delay resets")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to supervise")

    stopping = threading.Event()
    child: list[subprocess.Popen] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        if child and child[0].poll() is None:
            child[0].send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    delay = min(1.0, args.max_delay)
    while True:
        started = time.monotonic()
        child[:] = [subprocess.Popen(command)]
        code = child[0].wait()
        if stopping.is_set():
            return code
        if time.monotonic() - started >= args.healthy_after:
            delay = min(1.0, args.max_delay)
        print(f"supervise: {command[0]} exited with {code}; starting it again in {delay:.0f} s",
              file=sys.stderr, flush=True)
        if stopping.wait(delay):
            return code
        delay = min(delay * 2, args.max_delay)


if __name__ == "__main__":
    sys.exit(main())
