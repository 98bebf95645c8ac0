"""A reconciled yesterday for `make run`: real payments through the sandbox gateway, and one of each discrepancy.

Run by `manage.py demo_reconciliation` (scripts/run.py starts it once the
sandbox answers). Everything goes the real way: orders placed by the demo
shopper, paid at the sandbox on its clock set to yesterday, applied by the
payment services; the discrepancies are put into the sandbox's bills
through its /_control/ API (HTTP only: the shop imports nothing of the
sandbox); then each gateway's day is reconciled like the daily job does.
Running it again for the same day changes nothing.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import requests
from django.contrib.auth import get_user_model
from django.db import transaction

from orders.services import Consignee, order_close, order_place
from payments.gateways.base import BEIJING, PayMethod
from payments.lock_objects import payment_and_order_for_update
from payments.models import Payment, PaymentStatus
from payments.services import payment_move, payment_start, payment_sync
from reconciliation.models import FINISHED_STATUSES, Statement
from reconciliation.services import statement_reconcile
from refunds.models import Refund, RefundStatus
from refunds.services import refund_approve, refund_poll, refund_request
from shop.actors import Actor
from shop.models import Sku

logger = logging.getLogger(__name__)

DEMO = Actor.system("demo")
CONSIGNEE = Consignee(name="Han Meimei", phone="13900139000", address="88 Wensan Road, Hangzhou")
# The demo catalogue's cheapest SKUs, one per order.
SKUS = ["NOTE-A5", "CUP-WHITE", "CUP-BLUE", "TEA-LJ-250"]


class SandboxControl:
    """The sandbox's /_control/ API, over HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()

    def __call__(self, method: str, path: str, payload: Any = None) -> Any:
        response = self.http.request(method, f"{self.base_url}/_control/{path}", json=payload, timeout=10)
        response.raise_for_status()
        return response.json()

    def healthy(self) -> bool:
        try:
            return bool(self("GET", "health") == {"status": "ok"})
        except requests.RequestException:
            return False


@dataclass
class Seeded:
    day: date
    gateways: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join(f"{code}: {outcome}" for code, outcome in self.gateways.items())


def reconciliation_demo(*, sandbox_url: str, day: date | None = None, gateways: tuple[str, ...] = (
        "alipay", "wechatpay"), wait: float = 60.0) -> Seeded:
    """Seed and reconcile `day` (yesterday in Beijing) for each gateway not done yet."""
    sandbox = SandboxControl(sandbox_url)
    deadline = time.monotonic() + wait
    while not sandbox.healthy():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox at {sandbox_url} does not answer")
        time.sleep(0.5)
    day = day or datetime.now(BEIJING).date() - timedelta(days=1)
    seeded = Seeded(day=day)
    for code in gateways:
        done = Statement.objects.filter(gateway=code, day=day, status__in=FINISHED_STATUSES,
                                        discrepancies__isnull=False).exists()
        if done:
            seeded.gateways[code] = "already reconciled"
            continue
        _seed(sandbox, code, day)
        run = statement_reconcile(gateway_code=code, day=day, actor=DEMO, force=True)
        seeded.gateways[code] = f"{run.outcome}, {run.found} discrepancies"
    return seeded


def _seed(sandbox: SandboxControl, code: str, day: date) -> None:
    moment = datetime.combine(day, clock_time(11, 30), tzinfo=BEIJING)
    sandbox("POST", "settings", {"clock_offset_seconds": (moment - datetime.now(BEIJING)).total_seconds()})
    try:
        clean = [_paid(sandbox, code) for _ in range(3)]
        if code == "alipay":
            # Alipay dates a refund by the gateway's own completion time (the
            # sandbox's clock, set to yesterday); WeChat Pay by when we asked,
            # which is today on our side whatever the sandbox's clock says.
            _refunded(sandbox, clean[0], amount_minor=500)
        omitted, altered, doubled, other_currency = (_paid(sandbox, code) for _ in range(4))
        lost = _paid(sandbox, code, notify=False)
        late = _paid(sandbox, code, notify=False)
    finally:
        sandbox("POST", "settings", {"clock_offset_seconds": 0})
    # We closed this one when it timed out; the money reached the gateway anyway.
    with transaction.atomic():
        locked, _order = payment_and_order_for_update(payment_id=late.pk)
        payment_move(locked, to_status=PaymentStatus.CLOSED, actor=DEMO, reason="timed out here (demo)")
    order_close(order_id=late.order_id, actor=DEMO, reason="timed out (demo)")
    content = f"{code}.bill_content"
    rules: list[dict[str, Any]] = [
        {"mode": "omit", "out_trade_no": omitted.out_trade_no},
        {"mode": "alter_amount", "out_trade_no": altered.out_trade_no, "delta_minor": 100},
        {"mode": "duplicate", "out_trade_no": doubled.out_trade_no},
        {"mode": "extra_line", "amount_minor": 6600, "bill_date": day.isoformat(),
         "out_trade_no": f"STRANGER{day:%Y%m%d}{code[0].upper()}"},
    ]
    if code == "wechatpay":
        rules.append({"mode": "alter_currency", "out_trade_no": other_currency.out_trade_no, "currency": "USD"})
    for rule in rules:
        sandbox("POST", "faults", {"target": content, **rule})
    logger.info("demo: %s %s seeded (%s still open here: its notification was lost)", code, day.isoformat(),
                lost.out_trade_no)


def _paid(sandbox: SandboxControl, code: str, *, notify: bool = True) -> Payment:
    shopper = get_user_model().objects.get(username="shopper")
    sku = Sku.objects.filter(code__in=SKUS, stock__gt=0).order_by("price_minor").first()
    if sku is None:
        raise RuntimeError("the demo catalogue is sold out: run manage.py demo_setup on a fresh database")
    order = order_place(shopper=shopper, items=[(sku.code, 1)], consignee=CONSIGNEE, checkout_token=uuid.uuid4())
    payment, _action = payment_start(order_no=order.order_no, gateway_code=code, method=PayMethod.QR,
                                     actor=Actor.shopper(shopper))
    if not notify:
        sandbox("POST", "faults", {"target": f"{code}.notify", "mode": "drop", "out_trade_no": payment.out_trade_no})
    sandbox("POST", f"{code}/trades/{payment.out_trade_no}/scan")
    sandbox("POST", f"{code}/trades/{payment.out_trade_no}/pay")
    if notify:
        # As the janitor would, should the notification be slow to arrive.
        payment_sync(payment_id=payment.pk, actor=DEMO)
    return Payment.objects.get(pk=payment.pk)


def _refunded(sandbox: SandboxControl, payment: Payment, *, amount_minor: int) -> Refund:
    refund = refund_request(order_id=payment.order_id, shopper=payment.order.shopper, amount_minor=amount_minor,
                            reason="changed_mind", application_token=uuid.uuid4())
    reviewer = get_user_model().objects.get(username="service")
    refund_approve(refund_id=refund.pk, reviewer=reviewer)
    refund = Refund.objects.get(pk=refund.pk)
    if refund.status == RefundStatus.PROCESSING and payment.gateway == "wechatpay":
        sandbox("POST", f"wechatpay/refunds/{refund.out_refund_no}/settle", {"status": "SUCCESS"})
        refund_poll(refund_id=refund.pk)
    return Refund.objects.get(pk=refund.pk)
