"""/metrics in prometheus_client's multiprocess mode under a real gunicorn with two
workers: every scrape sees the sum over both, the worker's gauges included,
and only allowed scrapers get it."""
import os
import subprocess
import sys

import pytest
import requests

from tests.e2e.processes import free_port, gunicorn, shop_environment, wait_for_port
from tests.polling import wait_for
from tests.sandbox_process import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REJECTED = 'shop_gateway_notifications_total{gateway="alipay",outcome="rejected"}'


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture
def web(tmp_path, gateway_sandbox):
    multiproc = tmp_path / "prometheus"
    port = free_port()
    environment = shop_environment(
        tmp_path, PROMETHEUS_MULTIPROC_DIR=str(multiproc), WEB_CONCURRENCY="2", GUNICORN_THREADS="2",
        PAYMENT_GATEWAYS="alipay", SANDBOX_KEYS_DIR=str(gateway_sandbox.keys_dir))
    process = gunicorn(tmp_path, port, environment).start()
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", multiproc, environment, process
    finally:
        process.stop()


def test_metrics_sum_across_two_gunicorn_workers_and_export_the_workers_gauges(web):
    base, multiproc, environment, process = web
    for n in range(24):
        # A new connection each time, so both workers take some.
        response = requests.post(f"{base}/payments/alipay/notify/", data={"notify_id": f"forged-{n}"},
                                 headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 400
    pids = {path.name.split("_")[-1] for path in multiproc.glob("counter_*.db")}
    assert len(pids) == 2, f"one worker took every request: {sorted(multiproc.iterdir())}"

    scrapes = [requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
               for _ in range(6)]
    assert [metric(text, REJECTED) for text in scrapes] == [24.0] * 6

    # The Celery worker's periodic check sets gauges in its own process.
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from refunds.invariants import money_invariants_check; money_invariants_check()"],
                   cwd=REPO_ROOT, env=environment, check=True, capture_output=True, timeout=60)
    scraped = requests.get(f"{base}/metrics", timeout=10).text
    assert 'shop_money_invariant_violations{kind="refunds_exceed_paid"} 0.0' in scraped
    assert "shop_refunds_unsubmitted_minor 0.0" in scraped

    # Its own control socket, not the per-user default.
    wait_for(lambda: os.path.exists(environment["GUNICORN_CONTROL_SOCKET"]), what="the control socket")


def test_metrics_are_refused_to_strangers_and_given_with_the_token(client, settings):
    settings.METRICS_TOKEN = "scrape-token-1"
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.5",
                      HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    allowed = client.get("/metrics", REMOTE_ADDR="203.0.113.5", HTTP_AUTHORIZATION="Bearer scrape-token-1")
    assert allowed.status_code == 200 and b"shop_gateway_notifications_total" in allowed.content
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


def test_each_gunicorn_instance_gets_its_own_control_socket(monkeypatch):
    import runpy

    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    sockets = set()
    for bind in ("127.0.0.1:8000", "127.0.0.1:8001", "unix:/run/shop/web.sock"):
        monkeypatch.setenv("BIND", bind)
        sockets.add(runpy.run_path(str(REPO_ROOT / "config" / "gunicorn.conf.py"))["control_socket"])
    assert len(sockets) == 3
    assert all("/var/run/gunicorn-" in path for path in sockets)
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", "off")
    assert runpy.run_path(str(REPO_ROOT / "config" / "gunicorn.conf.py"))["control_socket_disable"] is True
