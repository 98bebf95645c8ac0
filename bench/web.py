"""`make bench`: the money paths over HTTP, side by side with a minimal baseline.

What it starts, each in a session of its own and all stopped at the end (also
on an error or Ctrl-C): the sandbox gateway (fresh keys and database under a
temporary folder), the shop under gunicorn as configured in
config/gunicorn.conf.py, and the baseline (bench/baseline/, a Django project
doing only the essential work) under the very same gunicorn settings. All of
it runs against a PostgreSQL database of its own, `<name>_bench_web`, dropped
at the end, and a Redis database whose new keys are deleted at the end.

The scenarios, each in rounds alternating shop and baseline:

- notifications (Alipay RSA2 form, WeChat Pay v3 signed headers and AES-GCM
  resource): distinct pending payments seeded (bulk_create of the shop's
  models; one INSERT ... SELECT for the baseline's table), distinct
  notifications signed on the gateway's side with the sandbox's keys, replayed
  by wrk (one thread) against 2 sync workers on each side; afterwards the
  database must show every answered notification applied, none twice, and no
  5xx;
- checkout: distinct signed-in sessions with a cart, each POSTing the form
  once; then N racing checkouts on a SKU with stock K must place exactly K
  orders;
- payment start behind a gateway answering in 200 ms (the sandbox's `slow`
  fault mode on alipay.precreate), the shop with its own production worker
  configuration (the baseline under the same); halfway through, the
  established connections are counted per worker process;
- pages, in this process through Django's test client: the admin
  changelists (refunds, payments, orders, notifications) with 10,000 rows and
  the shopper's order list with 200 orders, p50 and SQL statement count, the
  count compared with the same page over 10 rows.

It prints one table: the shop's figure, the baseline's, their ratio, the
goal (issue 12), whether it is met, the load average at the end of the
rounds, and the spread of the rounds. The reconciliation bench
(bench/reconcile.py) is separate; `make bench` runs both.

    python bench/web.py [--rounds 3] [--seconds 8] [--only notify,checkout,start,pages] [--smoke] [--keep-logs]

`--smoke` (tests/bench/test_web_bench_smoke.py) runs everything with tiny
counts in seconds, so the harness cannot rot; its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402 (the project root first)
    VENV_BIN,
    Row,
    Stack,
    WrkResult,
    answers,
    bench_database_url,
    connections_by_pid,
    database_drop,
    database_recreate,
    raw_request,
    redis_database_pick,
    redis_keys_forget_new,
    requests_write,
    spread_text,
    table_print,
    wait_until,
    wrk_ensure,
    wrk_run,
)

BEIJING = dt_timezone(timedelta(hours=8))
AMOUNT_MINOR = 8800
SCENARIOS = ("notify", "checkout", "start", "pages")
# Issue 12's goals.
NOTIFY_GOAL = 0.70
CHECKOUT_GOAL = 0.70
START_GOAL_PER_SECOND = 100.0
PAGE_GOAL_MS = 150.0
GATEWAY_DELAY_SECONDS = 0.2
# A Redis database for the shop's broker and cache during the run: the first
# empty one of these, or BENCH_REDIS_DB; only the keys the run creates are
# deleted afterwards.
REDIS_DBS = [int(os.environ["BENCH_REDIS_DB"])] if os.environ.get("BENCH_REDIS_DB") else [13, 14, 15]


@dataclass(frozen=True)
class Plan:
    """How long and how much: the full run, or the smoke run's tiny counts."""

    rounds: int
    seconds: float
    warm_seconds: float
    # Requests per second guessed for sizing each side's warm-up; the
    # warm-up's own rate then sizes the rounds (1.8 times what a round
    # would use), and a round that still runs out is run again, larger.
    expected_rate: dict[str, float]
    # At most this many requests prepared for one run (the smoke run's
    # runs out on purpose: its figures mean nothing).
    most_prepared: int
    connections: int = 16
    start_connections: int = 64
    racers: int = 50
    stock: int = 20
    page_rows: int = 10_000
    page_samples: int = 15
    order_list_rows: int = 200
    small_rows: int = 10


FULL = Plan(rounds=3, seconds=8.0, warm_seconds=2.0, most_prepared=40_000,
            expected_rate={"shop": 300.0, "baseline": 800.0, "start-shop": 150.0, "start-baseline": 300.0})
SMOKE = Plan(rounds=1, seconds=1.0, warm_seconds=1.0, most_prepared=60, connections=4, start_connections=8, racers=6, stock=3,
             page_rows=30, page_samples=2, order_list_rows=12, small_rows=3,
             expected_rate={"shop": 40.0, "baseline": 40.0, "start-shop": 20.0, "start-baseline": 20.0})


@dataclass
class Round:
    side: str
    result: WrkResult
    # What the database shows done: notifications applied, orders placed, payments started.
    applied: int
    checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sampled: dict[str, Any] = field(default_factory=dict)


# -- the processes ------------------------------------------------------------------


class Servers:
    """The sandbox, and the shop's and the baseline's gunicorns as each scenario needs them."""

    def __init__(self, stack: Stack, work: Path, database_url: str, redis_url: str) -> None:
        self.stack = stack
        self.work = work
        self.keys_dir = work / "sandbox-keys"
        self.database_url = database_url
        self.redis_url = redis_url
        self.sandbox_url = ""
        self._sandbox: subprocess.Popen[bytes] | None = None
        self._gunicorns: dict[str, tuple[subprocess.Popen[bytes], int]] = {}

    def env(self, **extra: str) -> dict[str, str]:
        environment = {name: value for name, value in os.environ.items()
                       if name not in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "DJANGO_SETTINGS_MODULE")}
        environment.update(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, SECRET_KEY="bench-only-" + "x" * 40,
            ALLOWED_HOSTS="127.0.0.1,localhost,testserver", SANDBOX_URL=self.sandbox_url or "http://127.0.0.1:9",
            SANDBOX_KEYS_DIR=str(self.keys_dir), LOG_LEVEL="WARNING", GUNICORN_CONTROL_SOCKET="off",
            STATIC_ROOT=str(self.work / "static"),
            PYTHONPATH=str(ROOT),
        )
        environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
        environment.update(extra)
        return environment

    def sandbox_start(self) -> None:
        subprocess.run([sys.executable, "-m", "sandbox", "keys", "--keys-dir", str(self.keys_dir)], cwd=ROOT,
                       check=True, capture_output=True)
        ready = self.work / "sandbox.ready"
        log = self.work / "sandbox.log"
        process = self.stack.start("the sandbox", [
            sys.executable, "-m", "sandbox", "serve", "--port", "0", "--tls-port", "0", "--keys-dir",
            str(self.keys_dir), "--db", str(self.work / "sandbox.sqlite3"), "--ready-file", str(ready),
            "--refund-settle-after", "none"], env=self.env(), log=log)
        self.sandbox_url = wait_until(lambda: ready.exists() and ready.read_text().strip(), timeout=60,
                                      what="the sandbox", process=process, log=log)
        self._sandbox = process

    def sandbox_cpu_seconds(self) -> float:
        """CPU time (user + system) the sandbox process has used so far."""
        assert self._sandbox is not None
        fields = Path(f"/proc/{self._sandbox.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sandbox_control(self, method: str, path: str, body: Any = None) -> Any:
        import requests

        answer = requests.request(method, f"{self.sandbox_url}/_control/{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def gunicorn(self, name: str, *, app: str | None = None, sync_workers: int | None = None,
                 settings: str = "config.settings.production") -> int:
        """Start (or reuse) a gunicorn with config/gunicorn.conf.py; returns its port.

        `sync_workers`: that many sync workers instead of the configured
        worker model; `app`: another WSGI application (the baseline's).
        """
        if name in self._gunicorns:
            return self._gunicorns[name][1]
        from bench.common import free_port

        port = free_port()
        argv = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "config" / "gunicorn.conf.py"),
                "--bind", f"127.0.0.1:{port}"]
        if sync_workers:
            # One thread each: with the configuration's threads above one,
            # gunicorn would quietly run gthread instead of sync workers.
            argv += ["--workers", str(sync_workers), "--worker-class", "sync", "--threads", "1"]
        if app:
            argv.append(app)
        log = self.work / f"gunicorn-{name}.log"
        process = self.stack.start(f"gunicorn {name}", argv, env=self.env(
            BIND=f"127.0.0.1:{port}", DJANGO_SETTINGS_MODULE=settings), log=log)
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/bench-ready/"), timeout=90, what=f"gunicorn {name}",
                   process=process, log=log)
        self._gunicorns[name] = (process, port)
        return port

    def serve(self, spec: ServerSpec) -> tuple[int, bool]:
        """The port of `spec`'s gunicorn, started if it is not running; and whether it just was."""
        fresh = spec.name not in self._gunicorns
        return self.gunicorn(spec.name, app=spec.app, sync_workers=spec.sync_workers, settings=spec.settings), fresh

    def gunicorn_stop(self, name: str) -> None:
        if name not in self._gunicorns:
            return
        process, _ = self._gunicorns.pop(name)
        from bench.common import _stop

        _stop(process, open(os.devnull, "wb"))  # noqa: SIM115 (closed by _stop)

    def worker_pids(self, name: str) -> list[int]:
        master = self._gunicorns[name][0].pid
        children = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            if f"\nPPid:\t{master}\n" in text:
                children.append(int(status.parent.name))
        return sorted(children)


@dataclass(frozen=True)
class ServerSpec:
    """A gunicorn with config/gunicorn.conf.py: the shop's, or the baseline's app under the same settings."""

    name: str
    sync_workers: int | None = None
    app: str | None = None
    settings: str = "config.settings.production"


BASELINE_APP = "bench.baseline.wsgi:application"
BASELINE_SETTINGS = "bench.baseline.settings"
# The notification and checkout comparison: 2 sync workers on each side (issue 12).
SYNC_SIDES = {"shop": ServerSpec("shop-sync", sync_workers=2),
              "baseline": ServerSpec("baseline-sync", sync_workers=2, app=BASELINE_APP, settings=BASELINE_SETTINGS)}
# The payment start: the shop's own production configuration, the baseline under the same.
PRODUCTION_SIDES = {"shop": ServerSpec("shop-production"),
                    "baseline": ServerSpec("baseline-production", app=BASELINE_APP, settings=BASELINE_SETTINGS)}


# -- keys and signatures (the gateway's side) ------------------------------------------


class GatewaySigner:
    """Notifications as the sandbox sends them, signed with its keys (sandbox/*/notifications.py)."""

    def __init__(self, keys_dir: Path) -> None:
        from sandbox.alipay.signing import load_private_key as alipay_key
        from sandbox.wechatpay.signing import load_private_key as wechat_key

        self.alipay_key = alipay_key((keys_dir / "alipay" / "alipay_private_key.pem").read_bytes())
        self.wechat_key = wechat_key((keys_dir / "wechatpay" / "platform_private_key.pem").read_bytes())

    def alipay(self, out_trade_no: str, trade_no: str, amount_minor: int, paid_at: datetime) -> tuple[bytes, dict]:
        from sandbox import config
        from sandbox.alipay.formats import beijing_text, yuan_text
        from sandbox.alipay.signing import NOTIFICATION_UNSIGNED, canonical_string, rsa2_sign

        amount = yuan_text(amount_minor)
        fields = {
            "notify_type": "trade_status_sync", "notify_id": secrets.token_hex(16),
            "notify_time": beijing_text(datetime.now(BEIJING)), "app_id": config.ALIPAY_APP_ID,
            "auth_app_id": config.ALIPAY_APP_ID, "charset": "utf-8", "version": "1.0", "sign_type": "RSA2",
            "trade_no": trade_no, "out_trade_no": out_trade_no, "buyer_id": config.ALIPAY_BUYER_ID,
            "buyer_logon_id": config.ALIPAY_BUYER_LOGON_ID, "seller_id": config.ALIPAY_SELLER_ID,
            "seller_email": config.ALIPAY_SELLER_EMAIL, "trade_status": "TRADE_SUCCESS", "total_amount": amount,
            "receipt_amount": amount, "invoice_amount": amount, "buyer_pay_amount": amount, "point_amount": "0.00",
            "subject": "Bench tea", "gmt_create": beijing_text(paid_at), "gmt_payment": beijing_text(paid_at),
            "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")),
        }  # fmt: skip
        sign = rsa2_sign(canonical_string(fields, unsigned=NOTIFICATION_UNSIGNED), self.alipay_key)
        body = urlencode({**fields, "sign": sign}).encode("utf-8")
        return body, {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}

    def wechatpay(self, out_trade_no: str, trade_no: str, amount_minor: int, paid_at: datetime) -> tuple[bytes, dict]:
        from sandbox import config
        from sandbox.wechatpay.formats import new_notification_id, new_request_id, rfc3339
        from sandbox.wechatpay.signing import (
            AEAD_ALGORITHM,
            SCHEME,
            aes_gcm_encrypt,
            answer_message,
            new_nonce,
            new_resource_nonce,
            rsa_sign,
        )

        resource = {
            "appid": config.WECHATPAY_APPID, "mchid": config.WECHATPAY_MCHID, "out_trade_no": out_trade_no,
            "transaction_id": trade_no, "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
            "bank_type": config.WECHATPAY_BANK_TYPE, "success_time": rfc3339(paid_at), "attach": "",
            "payer": {"openid": config.WECHATPAY_PAYER_OPENID},
            "amount": {"total": amount_minor, "payer_total": amount_minor, "currency": "CNY", "payer_currency": "CNY"},
            "promotion_detail": [],
        }  # fmt: skip
        resource_nonce = new_resource_nonce()
        envelope = {
            "id": new_notification_id(), "create_time": rfc3339(paid_at), "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": AEAD_ALGORITHM, "ciphertext": aes_gcm_encrypt(
                config.WECHATPAY_API_V3_KEY.encode(), resource_nonce, _json_bytes(resource), "transaction"),
                "associated_data": "transaction", "nonce": resource_nonce},
        }  # fmt: skip
        body = _json_bytes(envelope)
        timestamp, nonce = str(int(time.time())), new_nonce()
        return body, {
            "Content-Type": "application/json", "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(answer_message(timestamp, nonce, body), self.wechat_key),
            "Wechatpay-Serial": config.WECHATPAY_PUBLIC_KEY_ID, "Wechatpay-Signature-Type": SCHEME,
            "Request-ID": new_request_id(),
        }  # fmt: skip


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- seeding (in this process, the shop's models) --------------------------------------


def django_setup(servers: Servers) -> None:
    os.environ.update(servers.env(DJANGO_SETTINGS_MODULE="config.settings.production"))
    import django

    django.setup()
    import logging

    logging.getLogger().setLevel(logging.WARNING)


def migrate(servers: Servers) -> None:
    """The schema, and the static files' manifest production settings render with (as a deployment has)."""
    environment = servers.env(DJANGO_SETTINGS_MODULE="config.settings.production")
    for command in (["collectstatic", "--noinput"], ["migrate", "--noinput"]):
        subprocess.run([sys.executable, "manage.py", *command, "-v", "0"], cwd=ROOT, check=True, env=environment)


@dataclass
class Catalogue:
    shopper: Any
    sku: Any


def catalogue_create() -> Catalogue:
    from django.contrib.auth import get_user_model

    from shop.models import Product, Sku

    shopper = get_user_model().objects.create_user("bench-shopper", "bench@example.com", secrets.token_hex(16))
    product = Product.objects.create(name="Bench tea", slug="bench-tea")
    sku = Sku.objects.create(product=product, code="BENCH-TEA", name="50 g", price_minor=AMOUNT_MINOR,
                             stock=10_000_000)
    return Catalogue(shopper=shopper, sku=sku)


def pending_orders_seed(catalogue: Catalogue, *, prefix: str, count: int) -> list[str]:
    """`count` orders awaiting payment with one line each: bulk_create of the shop's models."""
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order, OrderLine, OrderStatus

    now = timezone.now()
    order_nos = [f"{prefix}{index:07d}" for index in range(count)]
    with transaction.atomic():
        orders = Order.objects.bulk_create([Order(
            order_no=order_no, shopper=catalogue.shopper, status=OrderStatus.PENDING_PAYMENT, total_minor=AMOUNT_MINOR,
            consignee_name="Bench", consignee_phone="13800138000", consignee_address="1 Bench Road, Shanghai",
            address_province="上海市", address_city="上海市", address_street="1 Bench Road", language="en",
            expires_at=now + timedelta(minutes=30)) for order_no in order_nos], batch_size=2000)  # fmt: skip
        OrderLine.objects.bulk_create([OrderLine(
            order=order, sku=catalogue.sku, sku_code=catalogue.sku.code, name="Bench tea 50 g",
            unit_price_minor=AMOUNT_MINOR, quantity=1) for order in orders], batch_size=2000)  # fmt: skip
    return order_nos


def pending_payments_seed(catalogue: Catalogue, *, gateway: str, prefix: str, count: int) -> list[str]:
    """`count` pending QR payments, one per fresh order; returns their out_trade_nos."""
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order
    from payments.models import Payment, PaymentStatus

    order_nos = pending_orders_seed(catalogue, prefix=prefix, count=count)
    now = timezone.now()
    with transaction.atomic():
        Payment.objects.bulk_create([Payment(
            order_id=order_id, attempt_no=1, gateway=gateway, method="qr", out_trade_no=f"{order_no}P01",
            amount_minor=AMOUNT_MINOR, status=PaymentStatus.PENDING, expires_at=now + timedelta(minutes=30),
            requested_at=now, qr_content="https://qr.example/bench")
            for order_id, order_no in Order.objects.filter(order_no__in=order_nos).values_list("pk", "order_no")],
            batch_size=2000)  # fmt: skip
    return [f"{order_no}P01" for order_no in order_nos]


def baseline_payments_seed(*, prefix: str, count: int) -> list[str]:
    from django.db import connection

    from bench.baseline.schema import pending_payments_seed as seed

    with connection.cursor() as cursor:
        seed(cursor, prefix=prefix, count=count, amount_minor=AMOUNT_MINOR)
    return [f"{prefix}{index:07d}" for index in range(1, count + 1)]


def baseline_schema_create() -> None:
    from django.db import connection

    from bench.baseline.schema import schema_create

    with connection.cursor() as cursor:
        schema_create(cursor)


@dataclass
class Browser:
    """What a signed-in shopper's browser sends: cookies and the CSRF token."""

    cookie: str
    csrf: str


def sessions_create(catalogue: Catalogue, count: int, *, cart: dict[str, int] | None) -> list[Browser]:
    """`count` signed-in sessions of the bench shopper (database sessions, as the shop keeps them)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from shop.cart import SESSION_KEY as CART_KEY

    data: dict[str, Any] = {SESSION_KEY: str(catalogue.shopper.pk),
                            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                            HASH_SESSION_KEY: catalogue.shopper.get_session_auth_hash()}
    if cart:
        data[CART_KEY] = cart
    encoded = SessionStore().encode(data)
    expires = timezone.now() + timedelta(days=1)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    keys = [get_random_string(32, alphabet) for _ in range(count)]
    Session.objects.bulk_create([Session(session_key=key, session_data=encoded, expire_date=expires) for key in keys],
                                batch_size=2000)
    browsers = []
    for key in keys:
        csrf = get_random_string(32)
        browsers.append(Browser(cookie=f"{settings.SESSION_COOKIE_NAME}={key}; {settings.CSRF_COOKIE_NAME}={csrf}",
                                csrf=csrf))
    return browsers


def form_post(path: str, port: int, fields: dict[str, str], browser: Browser | None = None) -> bytes:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if browser is not None:
        headers["Cookie"] = browser.cookie
        fields = {"csrfmiddlewaretoken": browser.csrf, **fields}
    return raw_request("POST", path, host=f"127.0.0.1:{port}", body=urlencode(fields).encode(), headers=headers)


# -- the measurements -----------------------------------------------------------------


@dataclass
class Batch:
    """Requests prepared for one run, and how to check in the database what they did."""

    requests: list[bytes]
    # (wrk's result) -> (what the database shows done, problems found)
    check: Callable[[WrkResult], tuple[int, list[str]]]


class Bench:
    def __init__(self, plan: Plan, servers: Servers, catalogue: Catalogue, report: Callable[[str], None]) -> None:
        self.plan = plan
        self.servers = servers
        self.catalogue = catalogue
        self.report = report
        self.signer = GatewaySigner(servers.keys_dir)
        self._batch = 0

    def _prefix(self, code: str) -> str:
        self._batch += 1
        return f"{code}{self._batch:03d}"

    def _run(self, port: int, requests: list[bytes], *, connections: int, seconds: float,
             during: Callable[[], None] | None = None) -> WrkResult:
        path = self.servers.work / "requests.bin"
        requests_write(path, requests)
        try:
            return wrk_run(f"http://127.0.0.1:{port}/", path, connections=connections, seconds=seconds,
                           during=during)
        finally:
            path.unlink()

    def _rounds(self, label: str, sides: dict[str, ServerSpec], prepare: Callable[[str, int, int], Batch], *,
                connections: int, guess: dict[str, float], one_at_a_time: bool = False,
                during: Callable[[str, int], Callable[[], dict[str, Any]]] | None = None) -> dict[str, list[Round]]:
        """`rounds` rounds alternating the sides, each server warmed up once it is started.

        The warm-up run (not recorded) pays for what only the first requests
        do (imports, connections, keys) and tells how many requests a round
        needs. `one_at_a_time`: each side's server runs only for its own
        round (their persistent database connections would not fit in
        PostgreSQL's max_connections together, beside other users').
        """
        plan = self.plan
        expected = dict(guess)
        warmed: set[str] = set()

        def serve(side: str) -> int:
            port, fresh = self.servers.serve(sides[side])
            if fresh:
                count = min(math.ceil(expected[side] * plan.warm_seconds * 1.5) + 2 * connections,
                            plan.most_prepared)
                warm = self._run(port, prepare(side, port, count).requests, connections=connections,
                                 seconds=plan.warm_seconds)
                rate = max(warm.rate * (2 if warm.exhausted else 1), 1.0)
                expected[side] = max(expected[side], rate) if side in warmed else rate
                warmed.add(side)
            return port

        rounds: dict[str, list[Round]] = {side: [] for side in sides}
        for _ in range(plan.rounds):
            for side in sides:
                port = serve(side)
                carried: list[str] = []
                while True:
                    count = min(math.ceil(expected[side] * plan.seconds * 1.8) + 2 * connections,
                                plan.most_prepared)
                    batch = prepare(side, port, count)
                    sampled: dict[str, Any] = {}
                    sampler = during(side, port) if during else None

                    def sample(sampler: Callable[[], dict[str, Any]] | None = sampler,
                               sampled: dict[str, Any] = sampled) -> None:
                        if sampler is not None:
                            sampled.update(sampler())

                    result = self._run(port, batch.requests, connections=connections, seconds=plan.seconds,
                                       during=sample)
                    expected[side] = max(expected[side], result.rate * (2 if result.exhausted else 1))
                    done, checks = batch.check(result)
                    checks = _answer_checks(result) + checks
                    if not result.ok <= done <= result.sent:
                        # Every answered request is done; at most those still in
                        # flight when wrk stopped were done without an answer seen.
                        checks.append(f"{done} done in the database for {result.ok} answered of {result.sent} sent")
                    if not result.exhausted or count >= plan.most_prepared:
                        break
                    # Too few prepared: the figure would be a floor. Run the round
                    # again, larger; what it found wrong still counts.
                    carried += checks
                    self.report(f"  {label} {side}: {result.sent} requests were not enough, again with more")
                checks = carried + checks
                warnings = [f"ran out of prepared requests ({result.sent} sent): the figure is a floor"
                            ] if result.exhausted else []
                measured = Round(side=side, result=result, applied=done, checks=checks, warnings=warnings,
                                 sampled=sampled)
                rounds[side].append(measured)
                self.report(f"  {label} {side}: {result.rate:.0f}/s, {done} done ({result.ok} answered of "
                            f"{result.sent} sent, {result.requests} responses), "
                            f"p50 {result.p50_us / 1000:.1f} ms, load {result.load:.2f}"
                            f"{_problems(checks + warnings)}{' ' + str(sampled) if sampled else ''}")
                if one_at_a_time:
                    self.servers.gunicorn_stop(sides[side].name)
        return rounds

    # notifications

    def notify(self, gateway: str) -> Row:
        sign = self.signer.alipay if gateway == "alipay" else self.signer.wechatpay
        path = f"/payments/{gateway}/notify/"

        def prepare(side: str, port: int, count: int) -> Batch:
            prefix = self._prefix("N" if side == "shop" else "B")
            if side == "shop":
                references = pending_payments_seed(self.catalogue, gateway=gateway, prefix=prefix, count=count)
            else:
                references = baseline_payments_seed(prefix=prefix, count=count)
            # Signed just before the run: WeChat Pay's timestamps are checked within 5 minutes.
            now = datetime.now(BEIJING)
            requests = []
            for index, reference in enumerate(references):
                body, headers = sign(reference, f"4200{now:%Y%m%d}{self._batch:04d}{index:010d}", AMOUNT_MINOR, now)
                requests.append(raw_request("POST", path, host=f"127.0.0.1:{port}", body=body, headers=headers))
            return Batch(requests=requests, check=lambda result: _notify_check(side, prefix))

        rounds = self._rounds(f"{gateway} notify", SYNC_SIDES, prepare,
                              connections=self.plan.connections, guess=self.plan.expected_rate)
        name = f"notification {'Alipay' if gateway == 'alipay' else 'WeChat Pay v3'} (req/s)"
        return _ratio_row(name, rounds, NOTIFY_GOAL, extra=_applied_note(rounds))

    # checkout

    def checkout(self) -> Row:
        from orders.models import OrderLine
        from shop.models import Sku

        stock = 10_000_000

        def prepare(side: str, port: int, count: int) -> Batch:
            if side == "baseline":
                before = _baseline_orders()
                return Batch(requests=[form_post("/checkout/", port, ADDRESS) for _ in range(count)],
                             check=lambda result: (_baseline_orders() - before, []))
            sku = self._sku(self._prefix("K"), stock=stock)
            browsers = sessions_create(self.catalogue, count, cart={sku.code: 1})
            tokens = [uuid.uuid4() for _ in browsers]

            def check(result: WrkResult) -> tuple[int, list[str]]:
                # One statement, one snapshot: checkouts wrk gave up on may still be committing.
                with connection_cursor() as cursor:
                    cursor.execute(f"""SELECT (SELECT count(DISTINCT order_id) FROM {OrderLine._meta.db_table}
                                                WHERE sku_id = %(sku)s),
                                              (SELECT stock FROM {Sku._meta.db_table} WHERE id = %(sku)s)""",
                                   {"sku": sku.pk})
                    placed, left = cursor.fetchone()
                sold = stock - left
                return placed, [f"stock went down by {sold} for {placed} orders"] if sold != placed else []

            return Batch(requests=[form_post("/checkout/", port, {**ADDRESS, "checkout_token": str(token)}, browser)
                                   for browser, token in zip(browsers, tokens, strict=True)], check=check)

        rounds = self._rounds("checkout", SYNC_SIDES, prepare, connections=self.plan.connections,
                              guess=self.plan.expected_rate)
        row = _ratio_row("checkout (req/s)", rounds, CHECKOUT_GOAL)
        held, note = self._oversell(self.servers.serve(SYNC_SIDES["shop"])[0])
        row.notes.append(note)
        if not held:
            row.met = row.correct = False
        return row

    def _sku(self, code: str, *, stock: int) -> Any:
        from shop.models import Sku

        return Sku.objects.create(product=self.catalogue.sku.product, code=f"BENCH-{code}", name=code,
                                  price_minor=AMOUNT_MINOR, stock=stock)

    def _oversell(self, port: int) -> tuple[bool, str]:
        """`racers` sessions check out at once on a SKU with `stock` left: exactly `stock` orders."""
        import requests

        from orders.models import OrderLine
        from shop.models import Sku

        plan = self.plan
        sku = self._sku(self._prefix("R"), stock=plan.stock)
        browsers = sessions_create(self.catalogue, plan.racers, cart={sku.code: 1})
        start = threading.Barrier(plan.racers)

        def race(browser: Browser) -> int:
            cookies = dict(part.split("=", 1) for part in browser.cookie.split("; "))
            with requests.Session() as session:
                start.wait()
                answer = session.post(f"http://127.0.0.1:{port}/checkout/", cookies=cookies, allow_redirects=False,
                                      timeout=60, data={"csrfmiddlewaretoken": browser.csrf,
                                                        "checkout_token": str(uuid.uuid4()), **ADDRESS})
                return answer.status_code

        with ThreadPoolExecutor(max_workers=plan.racers) as pool:
            statuses = list(pool.map(race, browsers))
        orders = OrderLine.objects.filter(sku=sku).values("order").distinct().count()
        left = Sku.objects.get(pk=sku.pk).stock
        errors = sum(status >= 500 for status in statuses)
        held = orders == plan.stock and left == 0 and not errors
        return held, (f"{plan.racers} racing checkouts on stock {plan.stock}: "
                      f"{'exactly' if held else 'NOT exactly'} {orders} orders, stock left {left}, "
                      f"{errors} answers 5xx")

    # payment start

    def start(self) -> Row:
        from django.db.models import Count

        from orders.models import Order
        from payments.models import Payment

        self.servers.sandbox_control("POST", "faults", {"target": "alipay.precreate", "mode": "slow",
                                                        "seconds": GATEWAY_DELAY_SECONDS, "count": 10_000_000})
        # Their connections would crowd the payment start's out of PostgreSQL.
        for spec in SYNC_SIDES.values():
            self.servers.gunicorn_stop(spec.name)
        names = {side: spec.name for side, spec in PRODUCTION_SIDES.items()}
        workers: list[int] = []
        browser = sessions_create(self.catalogue, 1, cart=None)[0]
        # The sandbox shares the machine: what it spends per call is not the shop's.
        gateway_cpu: dict[str, list[float]] = {"shop": [], "baseline": []}

        def prepare(side: str, port: int, count: int) -> Batch:
            prefix = self._prefix("P" if side == "shop" else "Q")
            cpu_before = self.servers.sandbox_cpu_seconds()

            def gateway_cost(calls: int) -> None:
                if calls:
                    gateway_cpu[side].append((self.servers.sandbox_cpu_seconds() - cpu_before) / calls * 1000)

            if side == "baseline":
                def baseline_check(result: WrkResult) -> tuple[int, list[str]]:
                    started = _baseline_payments(prefix)
                    gateway_cost(started)
                    return started, []

                return Batch(requests=[form_post(f"/orders/{prefix}{index:07d}/pay/", port, {})
                                       for index in range(count)], check=baseline_check)
            order_nos = pending_orders_seed(self.catalogue, prefix=prefix, count=count)

            def check(result: WrkResult) -> tuple[int, list[str]]:
                started = Payment.objects.filter(out_trade_no__startswith=prefix).exclude(qr_content="").count()
                gateway_cost(started)
                twice = (Order.objects.filter(order_no__startswith=prefix).annotate(attempts=Count("payments"))
                         .filter(attempts__gt=1).count())
                return started, [f"{twice} orders with more than one attempt"] if twice else []

            return Batch(requests=[form_post(f"/orders/{order_no}/pay/", port,
                                             {"choice": "alipay:qr", "device": "desktop"}, browser)
                                   for order_no in order_nos], check=check)

        def spread(side: str, port: int) -> Callable[[], dict[str, Any]]:
            def sample() -> dict[str, Any]:
                by_pid = connections_by_pid(port)
                pids = self.servers.worker_pids(names[side])
                if side == "shop":
                    workers.append(len(pids))
                return {"connections per worker": [by_pid.get(pid, 0) for pid in pids]}

            return sample

        guess = {"shop": self.plan.expected_rate["start-shop"], "baseline": self.plan.expected_rate["start-baseline"]}
        rounds = self._rounds("payment start", PRODUCTION_SIDES, prepare, connections=self.plan.start_connections,
                              guess=guess, during=spread, one_at_a_time=True)
        row = _ratio_row(f"payment start, {GATEWAY_DELAY_SECONDS * 1000:.0f} ms gateway (req/s)", rounds, None)
        shop_rates = [measured.result.rate for measured in rounds["shop"]]
        row.goal = f">= {START_GOAL_PER_SECOND:.0f}/s"
        row.met = statistics.median(shop_rates) >= START_GOAL_PER_SECOND and row.correct
        spreads = ["/".join(str(n) for n in measured.sampled.get("connections per worker", []))
                   for measured in rounds["shop"]]
        row.notes.append(f"the shop's {max(workers, default=0)} workers held these of {self.plan.start_connections} wrk connections "
                         f"halfway through each round: {', '.join(spreads)}")
        costs = [cost for side in gateway_cpu.values() for cost in side]
        if costs:
            per_call = statistics.median(costs)
            row.notes.append(f"the sandbox gateway spent {per_call:.1f} ms of CPU per call (median of the rounds): "
                             f"at {START_GOAL_PER_SECOND:.0f}/s that is {per_call * START_GOAL_PER_SECOND / 10:.0f}% "
                             f"of one of the machine's {os.cpu_count()} cores, taken from the shop and the baseline")
        return row

    # pages

    def pages(self) -> list[Row]:
        from django.contrib.auth import get_user_model

        from orders.models import Order
        from payments.models import GatewayNotification, Payment
        from refunds.models import Refund

        staff = get_user_model().objects.create_superuser("bench-admin", "admin@example.com", secrets.token_hex(16))
        shopper = get_user_model().objects.create_user("bench-page-shopper", "page@example.com", secrets.token_hex(16))
        # The admin's rows belong to the bench shopper; the order list is another shopper's.
        own = Catalogue(shopper=shopper, sku=self.catalogue.sku)
        pages = {
            "admin refunds": ("/admin/refunds/refund/", Refund),
            "admin payments": ("/admin/payments/payment/", Payment),
            "admin orders": ("/admin/orders/order/", Order),
            "admin notifications": ("/admin/payments/gatewaynotification/", GatewayNotification),
        }
        small_rows = self.plan.small_rows
        page_rows_seed(self.catalogue, small_rows, prefix=self._prefix("S"))
        order_list_seed(own, small_rows, prefix=self._prefix("O"))
        small = {name: page_measure(staff, url, samples=1) for name, (url, _) in pages.items()}
        small_list = page_measure(shopper, "/orders/", samples=1)
        page_rows_seed(self.catalogue, self.plan.page_rows - small_rows, prefix=self._prefix("L"))
        order_list_seed(own, self.plan.order_list_rows - small_rows, prefix=self._prefix("O"))
        rows = []
        for name, (url, model) in pages.items():
            large = page_measure(staff, url, samples=self.plan.page_samples)
            # The other scenarios' rows are there too.
            rows.append(_page_row(f"{name} ({model._default_manager.count():,} rows)", large, small[name],
                                  PAGE_GOAL_MS))
        large_list = page_measure(shopper, "/orders/", samples=self.plan.page_samples)
        rows.append(_page_row(f"shopper's order list ({Order.objects.filter(shopper=shopper).count()} orders)",
                              large_list, small_list,
                              None))
        return rows


ADDRESS = {"consignee_name": "Bench", "consignee_phone": "13800138000", "address_province": "上海市",
           "address_city": "上海市", "address_district": "黄浦区", "address_street": "1 Bench Road, Room 2"}


def _answer_checks(result: WrkResult) -> list[str]:
    problems = []
    if result.s5xx:
        problems.append(f"{result.s5xx} answers 5xx")
    if result.s4xx > result.exhausted:
        problems.append(f"{result.s4xx - result.exhausted} answers 4xx")
    if result.connect_errors or result.read_errors or result.write_errors or result.timeouts:
        problems.append(f"socket errors: connect {result.connect_errors}, read {result.read_errors}, "
                        f"write {result.write_errors}, timeout {result.timeouts}")
    return problems


def _notify_check(side: str, prefix: str) -> tuple[int, list[str]]:
    """What the database shows applied, read in one statement (one snapshot: requests
    wrk gave up on may still be committing)."""
    from payments.models import Payment, PaymentEvent, PaymentStatus

    with connection_cursor() as cursor:
        if side == "baseline":
            cursor.execute("SELECT count(*) FROM bench_baseline_payment WHERE out_trade_no LIKE %s "
                           "AND status = 'succeeded'", [prefix + "%"])
            return int(cursor.fetchone()[0]), []
        cursor.execute(f"""
            WITH moves AS (
                SELECT e.payment_id, count(*) AS n FROM {PaymentEvent._meta.db_table} e
                  JOIN {Payment._meta.db_table} p ON p.id = e.payment_id
                 WHERE p.out_trade_no LIKE %(prefix)s AND e.to_status = %(succeeded)s GROUP BY e.payment_id)
            SELECT (SELECT count(*) FROM {Payment._meta.db_table}
                     WHERE out_trade_no LIKE %(prefix)s AND status = %(succeeded)s),
                   (SELECT count(*) FROM moves), (SELECT count(*) FROM moves WHERE n > 1)
        """, {"prefix": prefix + "%", "succeeded": PaymentStatus.SUCCEEDED.value})
        applied, moved, twice = cursor.fetchone()
    checks = []
    if twice:
        checks.append(f"{twice} payments moved to succeeded more than once")
    if moved != applied:
        checks.append(f"{moved} payments with a success event, {applied} succeeded")
    return int(applied), checks


def connection_cursor() -> Any:
    from django.db import connection

    return connection.cursor()


def _ratio_row(scenario: str, rounds: dict[str, list[Round]], goal: float | None, extra: str = "") -> Row:
    shop = [measured.result.rate for measured in rounds["shop"]]
    baseline = [measured.result.rate for measured in rounds["baseline"]]
    shop_median, baseline_median = statistics.median(shop), statistics.median(baseline)
    ratio = shop_median / baseline_median if baseline_median else 0.0
    problems = [f"{side} round {index + 1}: {check}" for side in ("shop", "baseline")
                for index, measured in enumerate(rounds[side]) for check in measured.checks]
    warnings = sorted({f"{side}: {warning}" for side in ("shop", "baseline")
                       for measured in rounds[side] for warning in measured.warnings})
    loads = [measured.result.load for side in rounds.values() for measured in side]
    row = Row(scenario=scenario, shop=f"{shop_median:.0f}", baseline=f"{baseline_median:.0f}", ratio=f"{ratio:.2f}x",
              goal=f">= {goal:.2f}x" if goal is not None else "",
              met=(ratio >= goal and not problems) if goal is not None else None,
              load=f"{min(loads):.2f}–{max(loads):.2f}", spread=f"{spread_text(shop)}; {spread_text(baseline)}")
    if extra:
        row.notes.append(extra)
    row.notes.extend(problems + warnings)
    row.correct = not problems
    return row


def _baseline_orders() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_baseline_order")
        return int(cursor.fetchone()[0])


def _baseline_payments(prefix: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_baseline_payment WHERE out_trade_no LIKE %s", [prefix + "%"])
        return int(cursor.fetchone()[0])


def _problems(checks: list[str]) -> str:
    return f" — {'; '.join(checks)}" if checks else ""


def _applied_note(rounds: dict[str, list[Round]]) -> str:
    every = [measured for side in rounds.values() for measured in side]
    held = all(not measured.checks for measured in every)
    applied = sum(measured.applied for measured in rounds["shop"])
    answered = sum(measured.result.ok for measured in rounds["shop"])
    verdict = ("every answered notification applied, none twice, no 5xx" if held
               else "NOT every notification applied exactly once (below)")
    return f"{verdict}; the shop's rounds: {applied} applied, {answered} answered"


# -- pages -------------------------------------------------------------------------------


@dataclass
class PageMeasure:
    p50_ms: float
    queries: int
    status: int


def page_measure(user: Any, url: str, *, samples: int) -> PageMeasure:
    """p50 over `samples` GETs after one warm-up, and the SQL statements of one."""
    from django.db import connection
    from django.test import Client

    client = Client()
    client.force_login(user)
    client.get(url)
    statements = 0

    def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        answer = client.get(url)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return PageMeasure(p50_ms=statistics.median(times), queries=statements, status=answer.status_code)


def _page_row(scenario: str, large: PageMeasure, small: PageMeasure, goal_ms: float | None) -> Row:
    constant = large.queries == small.queries
    row = Row(scenario=scenario, shop=f"{large.p50_ms:.0f} ms p50, {large.queries} queries",
              baseline=f"{small.queries} queries with few rows",
              goal=(f"< {goal_ms:.0f} ms, " if goal_ms else "") + "constant queries",
              met=constant and large.status == 200 and (goal_ms is None or large.p50_ms < goal_ms))
    if large.status != 200:
        row.notes.append(f"answered {large.status}")
        row.correct = False
    return row


def page_rows_seed(catalogue: Catalogue, count: int, *, prefix: str) -> int:
    """`count` paid orders, each with its payment, a received notification and a refund application."""
    from django.db import transaction
    from django.utils import timezone

    from orders.models import Order, OrderStatus
    from payments.models import (
        GatewayNotification,
        NotificationKind,
        NotificationOutcome,
        Payment,
        PaymentStatus,
    )
    from refunds.models import Refund, RefundReason

    if count <= 0:
        return 0
    out_trade_nos = pending_payments_seed(catalogue, gateway="alipay", prefix=prefix, count=count)
    now = timezone.now()
    with transaction.atomic():
        Order.objects.filter(order_no__startswith=prefix).update(status=OrderStatus.PAID, paid_at=now)
        Payment.objects.filter(out_trade_no__in=out_trade_nos).update(status=PaymentStatus.SUCCEEDED, paid_at=now,
                                                                     gateway_trade_no="T" + prefix)
        payments = list(Payment.objects.filter(out_trade_no__in=out_trade_nos).values_list("pk", "order_id",
                                                                                            "out_trade_no"))
        GatewayNotification.objects.bulk_create([GatewayNotification(
            gateway="alipay", kind=NotificationKind.PAYMENT, body=b"bench", received_at=now, verified=True,
            dedupe_key=f"bench:{out_trade_no}", out_trade_no=out_trade_no, payment_id=payment_id,
            outcome=NotificationOutcome.APPLIED, processed_at=now)
            for payment_id, _, out_trade_no in payments], batch_size=2000)  # fmt: skip
        Refund.objects.bulk_create([Refund(
            order_id=order_id, payment_id=payment_id, out_refund_no=f"{out_trade_no}R1", amount_minor=100,
            reason=next(iter(RefundReason)), requested_by=catalogue.shopper)
            for payment_id, order_id, out_trade_no in payments], batch_size=2000)  # fmt: skip
    return count


def order_list_seed(catalogue: Catalogue, count: int, *, prefix: str) -> None:
    if count > 0:
        pending_orders_seed(catalogue, prefix=prefix, count=count)


# -- orchestration ------------------------------------------------------------------------


def run(plan: Plan, *, only: tuple[str, ...] = SCENARIOS, keep_logs: bool = False,
        report: Callable[[str], None] = print) -> list[Row]:
    """Start everything, measure, stop everything, drop the data; returns the table's rows."""
    database_url = bench_database_url("bench_web")
    redis_url = redis_database_pick(REDIS_DBS)
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    rows: list[Row] = []
    with Stack() as stack:
        stack.callback("the work folder", lambda: None if keep_logs else shutil.rmtree(work, ignore_errors=True))
        wrk_ensure()
        database_recreate(database_url)
        stack.callback("the bench database", lambda: database_drop(database_url))
        stack.callback("the bench's Redis keys", redis_keys_forget_new(redis_url))
        servers = Servers(stack, work, database_url, redis_url)
        report(f"sandbox, migrations of {database_url.rpartition('/')[2]}…")
        servers.sandbox_start()
        migrate(servers)
        django_setup(servers)
        stack.callback("this process's database connections", _connections_close)
        baseline_schema_create()
        catalogue = catalogue_create()
        bench = Bench(plan, servers, catalogue, report)
        if "notify" in only:
            rows.append(bench.notify("alipay"))
            rows.append(bench.notify("wechatpay"))
        if "checkout" in only:
            rows.append(bench.checkout())
        if "start" in only:
            rows.append(bench.start())
        if "pages" in only:
            rows.extend(bench.pages())
        if keep_logs:
            report(f"logs kept in {work}")
    return rows


def _connections_close() -> None:
    from django.db import connections

    connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, help="rounds per side and scenario (default 3)")
    parser.add_argument("--seconds", type=float, help="length of one round (default 8)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"some of {','.join(SCENARIOS)}")
    parser.add_argument("--smoke", action="store_true", help="tiny counts: that it runs, not how fast")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (the path is printed)")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    overrides = {name: value for name, value in (("rounds", args.rounds), ("seconds", args.seconds)) if value}
    if overrides:
        plan = Plan(**{**plan.__dict__, **overrides})
    only = tuple(name for name in args.only.split(",") if name)
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {','.join(SCENARIOS)}")
    started = time.monotonic()
    rows = run(plan, only=only, keep_logs=args.keep_logs)
    print()
    print(f"make bench (web): {plan.rounds} round(s) of {plan.seconds:.0f} s per side, wrk 1 thread; "
          f"{os.cpu_count()} cores; {time.monotonic() - started:.0f} s in all")
    table_print(rows)
    print(f"load average at the end: {' '.join(f'{value:.2f}' for value in os.getloadavg())} "
          "(other work on the machine lowers every figure)")
    if not all(row.correct for row in rows):
        print("FAILED: a correctness check did not hold (see the notes above)")
        return 2
    if args.smoke:
        return 0
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

