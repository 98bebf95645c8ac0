"""Starting a payment: a new attempt, committed before the gateway hears of it."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from orders.models import Order
from payments.exceptions import GatewayError, OrderNotPayable, UnsupportedMethod
from payments.gateways import get_gateway
from payments.gateways.base import PaymentAction, PaymentRequest, PayMethod
from payments.lock_objects import payment_and_order_for_update
from payments.models import Payment, PaymentEvent, PaymentStatus
from payments.selectors import OPEN_STATUSES
from payments.services.lifecycle import payment_move, payment_move_from
from payments.services.sync import payment_query_delay
from shop.actors import Actor
from shop.outbox import Intent, outbox_enqueue_many

logger = logging.getLogger(__name__)

HANDED_OVER = "handed to the gateway"


def out_trade_no_for(order: Order, attempt_no: int) -> str:
    # Letters and digits only: UnionPay forbids "-" and "_", WeChat wants 6-32
    # characters, Alipay up to 64.
    return f"{order.order_no}P{attempt_no:02d}"


def payment_start(
    *, order_no: str, gateway_code: str, method: PayMethod, actor: Actor, shopper_id: int | None = None,
    client_ip: str = "",
) -> tuple[Payment, PaymentAction]:
    """Create a new attempt for a payable order and ask the gateway how to pay.

    The order is named by its number, as the cashier's URL names it, and
    with `shopper_id` only that shopper's order is found: the lock's SELECT
    is the only read of the order, so a page that starts a payment does
    not read the order once to check it and again to lock it.

    The attempt (with its out_trade_no) is committed before the gateway call.
    When the gateway refuses or cannot be reached, the attempt is marked
    failed and the error re-raised. Earlier open attempts of the order are
    closed at their gateways afterwards, so only the newest can be paid.

    Raises Order.DoesNotExist, OrderNotPayable, UnsupportedMethod,
    GatewayNotConfigured, GatewayError.
    """
    gateway = get_gateway(gateway_code)
    if method not in gateway.methods:
        raise UnsupportedMethod(f"{gateway_code} cannot pay by {method}")
    payment = _attempt_create(order_no=order_no, shopper_id=shopper_id, gateway_code=gateway_code, method=method,
                              actor=actor)
    try:
        action = gateway.start_payment(_payment_request(payment, client_ip=client_ip))
    except GatewayError as exc:
        with transaction.atomic():
            locked, _ = payment_and_order_for_update(payment_id=payment.pk)
            payment_move(locked, to_status=PaymentStatus.FAILED, actor=Actor.gateway(gateway_code),
                         reason=f"could not start: {exc}")
        raise
    handed_over = {"qr_content": action.qr_content}
    with transaction.atomic():
        # The first attempt of an order supersedes nothing, so it needs no
        # lock: a conditional UPDATE moves it unless something (a fast
        # notification, the janitor) moved it first.
        if payment.attempt_no == 1 and payment_move_from(
                payment, from_status=PaymentStatus.CREATED, to_status=PaymentStatus.PENDING, actor=actor,
                reason=HANDED_OVER, extra_fields=handed_over):
            return payment, action
        locked, _ = payment_and_order_for_update(payment_id=payment.pk)
        # A notification may have come before the gateway's own answer: the
        # attempt stays as it moved (succeeded, say), and the page follows it.
        if locked.status == PaymentStatus.CREATED:
            payment_move(locked, to_status=PaymentStatus.PENDING, actor=actor, reason=HANDED_OVER,
                         extra_fields=handed_over)
        if payment.attempt_no > 1:
            _close_superseded_later(order_id=payment.order_id, keep_payment_id=payment.pk)
    return locked, action


def _attempt_create(*, order_no: str, shopper_id: int | None, gateway_code: str, method: PayMethod,
                    actor: Actor) -> Payment:
    """The next attempt of a payable order, numbered under the order's lock."""
    orders = Order.objects.filter(order_no=order_no)
    if shopper_id is not None:
        orders = orders.filter(shopper_id=shopper_id)
    with transaction.atomic():
        # The order's lock and its last attempt number in one SELECT.
        last_attempt = Payment.objects.filter(order=OuterRef("pk")).order_by("-attempt_no").values("attempt_no")[:1]
        order = orders.select_for_update(of=("self",)).annotate(last_attempt=Subquery(last_attempt)).get()
        if not order.is_payable or order.expires_at <= timezone.now():
            raise OrderNotPayable(order)
        last = order.last_attempt or 0
        payment = Payment.objects.create(
            order=order,
            attempt_no=last + 1,
            gateway=gateway_code,
            method=method,
            out_trade_no=out_trade_no_for(order, last + 1),
            amount_minor=order.total_minor,
            currency=order.currency,
            expires_at=order.expires_at,
            # Whole seconds: the finest any provider's wire time carries.
            requested_at=timezone.now().replace(microsecond=0),
            next_query_at=timezone.now() + payment_query_delay(0),
        )
        PaymentEvent.objects.create(
            payment=payment, from_status="", to_status=PaymentStatus.CREATED,
            **actor.stamp(),
            reason=f"{gateway_code} {method}",
        )
    return payment


def _payment_request(payment: Payment, *, client_ip: str) -> PaymentRequest:
    order = payment.order
    site, code = settings.SITE_URL, payment.gateway
    return PaymentRequest(
        out_trade_no=payment.out_trade_no,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        subject=_subject(order),
        method=PayMethod(payment.method),
        notify_url=f"{site}/payments/{code}/notify/",
        return_url=f"{site}/payments/{code}/return/",
        quit_url=f"{site}/orders/{order.order_no}/pay/",
        expires_at=payment.expires_at,
        client_ip=client_ip,
        description=f"Order {order.order_no}",
        requested_at=payment.requested_at,
    )


def _subject(order: Order) -> str:
    names = list(order.lines.values_list("name", flat=True)[:3])
    subject = ", ".join(names)
    return subject[:120] or order.order_no


def _close_superseded_later(*, order_id: int, keep_payment_id: int) -> None:
    """Under the order's lock: an outbox intent to close each older open attempt."""
    superseded = (
        Payment.objects.filter(order_id=order_id, status__in=OPEN_STATUSES)
        .exclude(pk=keep_payment_id)
        .values_list("pk", flat=True)
    )
    outbox_enqueue_many(Intent("payments.tasks.payment_close_superseded_task", (payment_id,))
                        for payment_id in superseded)
