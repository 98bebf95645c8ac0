"""scripts/supervise.py, `make run`'s worker supervisor: a child that dies is started again."""
import signal
import subprocess
import sys

from tests.polling import wait_for
from tests.sandbox_process import REPO_ROOT

# Dies the first two times, then stays up: each start leaves a line.
CHILD = """
import pathlib, sys, time
log = pathlib.Path(sys.argv[1])
starts = log.read_text().count("start") if log.exists() else 0
log.write_text(log.read_text() + "start\\n" if log.exists() else "start\\n")
if starts < 2:
    sys.exit(3)
while True:
    time.sleep(0.05)
"""


def test_a_child_that_dies_is_started_again_and_a_sigterm_stops_both(tmp_path):
    log = tmp_path / "starts.log"
    supervisor = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "supervise.py"), "--max-delay", "0.2", "--",
         sys.executable, "-c", CHILD, str(log)], stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: log.exists() and log.read_text().count("start") == 3, timeout=30,
                 what="the third start")
        assert supervisor.poll() is None
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=10)
    assert "exited with 3; starting it again" in supervisor.stderr.read()
    assert log.read_text().count("start") == 3
