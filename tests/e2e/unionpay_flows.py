"""A shopper paying with UnionPay through the live shop and the sandbox, without a browser.

The cashier answers with the auto-submitting form; `to_unionpay` posts it to
the sandbox as the browser would and lands on UnionPay's cashier page; the
buttons there answer with UnionPay's page that posts the shopper back to
the shop (`back_to_shop`), cookies and all, on the shopper's own session.
"""
from __future__ import annotations

from dataclasses import dataclass

import lxml.html
import requests

from orders.models import Order, OrderStatus
from payments.models import GatewayNotification, NotificationKind, NotificationOutcome, Payment, PaymentStatus
from tests.e2e.shop_client import ShopClient
from tests.polling import wait_for
from tests.sandbox.shopper import SandboxPage
from tests.sandbox_process import SandboxProcess


@dataclass
class AtUnionPay:
    order: Order
    payment: Payment
    cashier: SandboxPage


def to_unionpay(shop: ShopClient, order: Order, *, device: str = "desktop") -> AtUnionPay:
    """Choose UnionPay at the cashier and follow the form to UnionPay's cashier page."""
    before = set(Payment.objects.filter(order=order).values_list("pk", flat=True))
    form_page = shop.choose(order, "unionpay:wap" if device == "mobile" else "unionpay:page", device=device)
    assert form_page.status_code == 200, form_page.text[:500]
    payment = Payment.objects.filter(order=order).exclude(pk__in=before).get()
    cashier = shop.sandbox.arrive(shop.submit_gateway_form(form_page))
    return AtUnionPay(order, payment, cashier)


def return_form(page: requests.Response) -> tuple[str, dict[str, str]]:
    form = lxml.html.fromstring(page.text).get_element_by_id("sandbox-return-form")
    return form.action, {field.name: field.value for field in form.inputs if field.name}


def back_to_shop(shop: ShopClient, page: requests.Response) -> requests.Response:
    """What UnionPay's page does in a browser: post the signed fields to frontUrl; follow the shop."""
    action, fields = return_form(page)
    return shop.http.post(action, data=fields, timeout=20)


def press_and_return(shop: ShopClient, at: AtUnionPay, button: str) -> requests.Response:
    return back_to_shop(shop, shop.sandbox.press(at.cashier, button))


def notification_applied(payment: Payment) -> bool:
    return GatewayNotification.objects.filter(out_trade_no=payment.out_trade_no, kind=NotificationKind.PAYMENT,
                                              outcome=NotificationOutcome.APPLIED).exists()


def unionpay_paid_order(shop: ShopClient, sandbox: SandboxProcess, items: dict[str, int]) -> tuple[Order, Payment]:
    """An order of the demo shopper paid on UnionPay's page, its back notification applied."""
    order = shop.place_order(items)
    at = to_unionpay(shop, order)
    result = press_and_return(shop, at, "sandbox-pay")
    assert shop.result_of(result) == "success", result.text[:500]
    wait_for(lambda: GatewayNotification.objects.filter(
        out_trade_no=at.payment.out_trade_no, kind=NotificationKind.PAYMENT).exclude(
        outcome=NotificationOutcome.RECEIVED).exists(), what="the back notification")
    payment = Payment.objects.get(pk=at.payment.pk)
    order.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED and order.status == OrderStatus.PAID
    return order, payment


def sandbox_trade(sandbox: SandboxProcess, payment: Payment) -> dict:
    return sandbox.control("GET", f"unionpay/trades/{payment.out_trade_no}")
