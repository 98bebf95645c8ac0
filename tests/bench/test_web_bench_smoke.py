"""`make bench`'s web half in miniature (bench/web.py --smoke), so that it cannot rot: it
starts the sandbox, the shop and the baseline under gunicorn, replays requests with wrk,
checks in the database that every answered notification was applied exactly once and that
racing checkouts do not oversell, and prints the table. Correctness only; no time is asserted."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("web-bench")]


def test_the_web_bench_runs_checks_and_prints_its_table():
    finished = subprocess.run([sys.executable, str(ROOT / "bench" / "web.py"), "--smoke"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600, env=dict(os.environ))

    output = finished.stdout
    assert finished.returncode == 0, output + finished.stderr
    for scenario in ("notification Alipay", "notification WeChat Pay v3", "checkout", "payment start",
                     "admin refunds", "admin payments", "admin orders", "admin notifications",
                     "shopper's order list"):
        assert f"\n{scenario}" in output, output
    assert output.count("every answered notification applied, none twice, no 5xx") == 2, output
    assert "racing checkouts on stock 3: exactly 3 orders, stock left 0, 0 answers 5xx" in output, output
    assert "wrk connections halfway through each round" in output, output
    assert "FAILED" not in output
