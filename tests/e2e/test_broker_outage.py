"""The whole stack through a Redis outage: gunicorn, a Celery worker and a
private redis-server as real processes, the sandbox gateway, PostgreSQL.

Redis is stopped (SIGKILL, no persistence: a restart comes back empty) while
staff approve refunds, notifications arrive, a duplicate payment needs its
automatic refund and a shopper checks out; then it is started again. Nobody
restarts anything: the worker reconnects by itself, the outbox relay (the
janitor, `manage.py run_janitor --once`, standing in for beat) delivers what
could not be sent, and every refund executes exactly once at the sandbox,
every email is sent once, every notification was answered 200 and applied,
and no request anywhere answered 5xx.
"""
from __future__ import annotations

import email
import email.header
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from orders.models import Order
from payments.models import (
    GatewayNotification,
    NotificationKind,
    NotificationOutcome,
    Payment,
    RefundRequired,
)
from refunds.models import Refund, RefundStatus
from shop.models import OutboxMessage, WorkerHeartbeat
from tests.e2e.processes import Process, free_port, gunicorn, redis_server, shop_environment, wait_for_port
from tests.e2e.refund_support import STAFF_PASSWORDS, apply, pay_at_sandbox, start, start_attempt, trade
from tests.e2e.shop_client import ShopClient
from tests.polling import wait_for
from tests.sandbox_process import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class Stack:
    def __init__(self, workdir: Path, sandbox) -> None:
        self.workdir = workdir
        self.sandbox = sandbox
        self.redis_port = free_port()
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.mail_dir = workdir / "mail"
        self.environment = shop_environment(
            workdir,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/4",
            SITE_URL=self.web_url,
            SANDBOX_URL=sandbox.base_url,
            SANDBOX_KEYS_DIR=str(sandbox.keys_dir),
            PAYMENT_GATEWAYS="alipay,wechatpay",
            EMAIL_URL=f"filemail:///{self.mail_dir}",
            OUTBOX_LEASE_SECONDS="2",
            WEB_CONCURRENCY="1",
            GUNICORN_THREADS="8",
            WORKER_HEARTBEAT_SECONDS="1",
        )
        self.redis = redis_server(workdir / "redis", self.redis_port)
        self.web = gunicorn(workdir, self.web_port, self.environment)
        self.worker = self.new_worker()

    def new_worker(self) -> Process:
        return Process("worker", [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info",
                                  "--concurrency", "2", "-n", f"e2e{self.web_port}@localhost"],
                       self.workdir, self.environment)

    def start(self) -> Stack:
        self.start_redis()
        self.web.start()
        wait_for_port(self.web_port, self.web)
        self.start_worker()
        return self

    def start_redis(self) -> None:
        self.redis.start()
        wait_for_port(self.redis_port, self.redis)

    def start_worker(self) -> None:
        WorkerHeartbeat.objects.all().delete()
        self.worker.start()
        wait_for(lambda: WorkerHeartbeat.objects.exists() or self._dead(self.worker), timeout=60,
                 what="the worker's first heartbeat")

    def _dead(self, process: Process) -> bool:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
        return False

    def janitor(self) -> str:
        """One round of the periodic jobs, the outbox relay first (what beat would enqueue)."""
        done = subprocess.run([sys.executable, "manage.py", "run_janitor", "--once"], cwd=REPO_ROOT,
                              env=self.environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def stop(self) -> None:
        for process in (self.worker, self.web, self.redis):
            process.stop()

    def server_errors(self) -> list[str]:
        return [line for line in self.web.log().splitlines() if re.search(r'" 5\d\d ', line)]

    def emails(self) -> list[tuple[str, str]]:
        """(subject, recipient) of every email the processes sent."""
        sent = []
        for path in sorted(self.mail_dir.glob("*.log")) if self.mail_dir.exists() else []:
            for chunk in path.read_bytes().split(b"-" * 79):
                if chunk.strip():
                    message = email.message_from_bytes(chunk.strip())
                    subject = str(email.header.make_header(email.header.decode_header(message["Subject"])))
                    sent.append((subject, message["To"]))
        return sent


@pytest.fixture
def stack(tmp_path, gateway_sandbox, transactional_db):
    from shop.demo import demo_setup

    gateway_sandbox.control("POST", "reset", {"settings": True})
    gateway_sandbox.control("POST", "settings", {"refund_processing_queries": {"wechatpay": 0}})
    demo_setup()
    # The test settings hash with MD5, which production does not accept.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"]):
        for username, password in (("shopper", "shopper-demo-1"), ("service", STAFF_PASSWORDS["service"])):
            user = get_user_model().objects.get(username=username)
            user.set_password(password)
            user.save(update_fields=["password"])
    running = Stack(tmp_path, gateway_sandbox).start()
    yield running
    running.stop()
    gateway_sandbox.control("POST", "reset")


def signed_in(base_url: str, username: str, password: str) -> ShopClient:
    client = ShopClient(base_url)
    client.http.headers["Accept-Language"] = "en"  # production's default language is Chinese
    client.sign_in(username, password)
    return client


def deliveries_to_the_shop(sandbox) -> list[int]:
    notes = sandbox.control("GET", "notifications")["notifications"]
    return [delivery["status_code"] for note in notes for delivery in note["deliveries"]]


def test_redis_stopped_during_approvals_notifications_and_checkouts_then_started(stack):
    sandbox = stack.sandbox
    shopper = signed_in(stack.web_url, "shopper", "shopper-demo-1")
    staff = signed_in(stack.web_url, "service", STAFF_PASSWORDS["service"])
    answers: list[int] = []

    # Before the outage: two Alipay orders paid and applied for, one order
    # with two open attempts (WeChat's close waits five minutes), one unpaid.
    paid = []
    for sku in ("TEA-LJ-250", "NOTE-A5"):
        order, payment = start(shopper, {sku: 1}, "alipay:qr")
        paid.append((order, pay_at_sandbox(sandbox, payment)))
    refunds = [apply(order, payment.amount_minor) for order, payment in paid]
    double, wechat = start(shopper, {"NOTE-A5": 1}, "wechatpay:qr")
    alipay = start_attempt(shopper, double, "alipay:qr")
    pay_at_sandbox(sandbox, alipay)
    late_order, late_payment = start(shopper, {"CUP-WHITE": 1}, "alipay:qr")
    worker_pid = stack.worker.popen.pid

    stack.redis.kill()  # SIGKILL: no persistence, it comes back empty

    for refund in refunds:
        answer = staff.post(f"/admin/refunds/refund/{refund.pk}/decide/", {"decision": "approve", "note": "ok", "confirm": "yes"},
                            allow_redirects=False)
        answers.append(answer.status_code)
        assert answer.status_code == 302, answer.text[:300]
    pay_at_sandbox(sandbox, late_payment)  # a notification, answered while Redis is down
    wechat = pay_at_sandbox(sandbox, wechat)  # a duplicate payment: an automatic refund
    assert wechat.refund_required == RefundRequired.DUPLICATE
    checkout, first = start(shopper, {"TEA-LJ-250": 1}, "alipay:qr")
    start_attempt(shopper, checkout, "wechatpay:qr")  # supersedes the first: a close to do
    answers.append(shopper.get(f"/payments/{first.out_trade_no}/status/").status_code)
    answers.append(shopper.get(f"/orders/{checkout.order_no}/").status_code)
    assert Refund.objects.filter(status=RefundStatus.APPROVED).count() == 2  # nothing could be sent
    assert OutboxMessage.objects.filter(completed_at__isnull=True).exists()

    stack.start_redis()  # the same port, empty

    # The worker reconnects by itself: the same process, beating again.
    seen = WorkerHeartbeat.objects.get().seen_at
    wait_for(lambda: WorkerHeartbeat.objects.filter(seen_at__gt=seen, consuming=True).exists(), timeout=60,
             what="the worker's heartbeat, taking tasks again")
    assert stack.worker.popen.pid == worker_pid and stack.worker.alive()
    assert "Unrecoverable error" not in stack.worker.log()

    def everything_done() -> bool:
        stack.janitor()
        # Done: nothing due any more (a close WeChat refuses for five minutes
        # waits, leased past its retry's countdown) and the refunds settled.
        return (not OutboxMessage.objects.filter(completed_at__isnull=True, due_at__lte=timezone.now()).exists()
                and Refund.objects.filter(status=RefundStatus.SUCCEEDED).count() == 3)

    wait_for(everything_done, timeout=90, interval=0.5, what="the outbox to drain and the refunds to settle")

    for (_order, payment), refund in zip(paid, refunds, strict=True):
        assert Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED
        at_sandbox = trade(sandbox, payment)
        assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, payment.amount_minor)
    automatic = Refund.objects.get(payment=wechat, automatic=True)
    assert automatic.status == RefundStatus.SUCCEEDED
    assert trade(sandbox, wechat)["refund_count"] == 1
    assert trade(sandbox, alipay)["refund_count"] == 0
    assert Payment.objects.get(pk=first.pk).status == "closed"  # the superseded attempt

    # Every email once: a confirmation per accepted payment, approved and
    # refunded per reviewed refund, refunded for the automatic one.
    per_order: dict[str, int] = {}
    for subject, _to in stack.emails():
        (number,) = re.findall(r"\d{16}", subject)
        per_order[number] = per_order.get(number, 0) + 1
    expected = {order.order_no: 3 for order, _ in paid}
    expected.update({double.order_no: 2, late_order.order_no: 1})
    assert per_order == expected

    # Every notification answered 200 and applied; no 5xx anywhere.
    assert deliveries_to_the_shop(sandbox) and set(deliveries_to_the_shop(sandbox)) == {200}
    outcomes = set(GatewayNotification.objects.filter(kind=NotificationKind.PAYMENT)
                   .values_list("outcome", flat=True))
    assert outcomes <= {NotificationOutcome.APPLIED, NotificationOutcome.UNCHANGED, NotificationOutcome.DUPLICATE}
    assert not GatewayNotification.objects.filter(
        outcome__in=[NotificationOutcome.FAILED, NotificationOutcome.REJECTED]).exists()
    assert all(code < 500 for code in answers)
    assert stack.server_errors() == []
    assert Order.objects.get(pk=late_order.pk).status == "paid"


def test_worker_killed_right_after_an_approval_the_refund_executes_once(stack):
    sandbox = stack.sandbox
    shopper = signed_in(stack.web_url, "shopper", "shopper-demo-1")
    staff = signed_in(stack.web_url, "service", STAFF_PASSWORDS["service"])
    order, payment = start(shopper, {"TEA-LJ-250": 1}, "alipay:qr")
    payment = pay_at_sandbox(sandbox, payment)
    refund = apply(order, payment.amount_minor)

    answer = staff.post(f"/admin/refunds/refund/{refund.pk}/decide/", {"decision": "approve", "note": "ok", "confirm": "yes"},
                        allow_redirects=False)
    stack.worker.kill()  # SIGKILL, 0 ms after the approval's answer
    assert answer.status_code == 302

    # The supervisor (systemd, supervise.py) starts a worker again; the
    # outbox relay delivers the submission again once its lease ran out.
    stack.worker = stack.new_worker()
    stack.start_worker()

    def refunded() -> bool:
        stack.janitor()
        return Refund.objects.get(pk=refund.pk).status == RefundStatus.SUCCEEDED

    wait_for(refunded, timeout=60, interval=0.5, what="the refund after the worker's death")
    at_sandbox = trade(sandbox, payment)
    assert (at_sandbox["refund_count"], at_sandbox["refunded_minor"]) == (1, payment.amount_minor)
    assert stack.server_errors() == []
