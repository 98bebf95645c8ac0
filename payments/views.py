import logging
from datetime import timedelta
from functools import wraps
from urllib.parse import urlsplit

import segno
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from orders.models import Order
from payments.cashier import DESKTOP, DEVICES, MOBILE, device_from_user_agent, gateway_name
from payments.exceptions import (
    GatewayError,
    GatewayNotConfigured,
    InvalidNotification,
    OrderNotPayable,
    UnsupportedMethod,
)
from payments.forms import CashierForm
from payments.gateways import enabled_gateways, get_gateway
from payments.gateways.base import ActionKind, PaymentAction, ReturnMethod
from payments.inbound import notification_response
from payments.models import NotificationKind, Payment, PaymentStatus
from payments.services import (
    payment_start,
    payment_sync_if_due,
)
from shop.actors import Actor
from shop.middleware import reads_raw_body, server_to_server

logger = logging.getLogger(__name__)

# How often pages that wait for a payment may ask the gateway.
POLL_QUERY_INTERVAL = timedelta(seconds=3)
# How long the "still confirming" page refreshes itself after the return.
CONFIRMING_WINDOW = timedelta(minutes=2)


def _shopper_payment(request, out_trade_no: str) -> Payment:
    # Another shopper's payment is a 404: do not confirm it exists.
    return get_object_or_404(
        Payment.objects.select_related("order"), out_trade_no=out_trade_no, order__shopper=request.user
    )


def _gateway_origins(codes) -> list[str]:
    """The origins of the enabled gateways' URLs, for the cashier's CSP form-action."""
    origins = set()
    for code in codes:
        for value in settings.GATEWAY_OPTIONS.get(code, {}).values():
            parts = urlsplit(value) if isinstance(value, str) else None
            if parts and parts.scheme in ("http", "https") and parts.netloc:
                origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)


def allows_gateway_forms(view):
    """The page's forms (and the redirects after them) may go to the gateways' pages."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        origins = _gateway_origins(settings.PAYMENT_GATEWAYS)
        if origins:
            response._csp_update = {"form-action": origins}
        return response

    return wrapped


def _device(request) -> str:
    """The shopper's device: from the User-Agent, unless the page's switch said otherwise."""
    asked = request.GET.get("device", "")
    return asked if asked in DEVICES else device_from_user_agent(request.headers.get("User-Agent", ""))


@login_required
@allows_gateway_forms
def cashier(request, order_no: str):
    gateways = enabled_gateways()
    device = _device(request)
    form = CashierForm(request.POST if request.method == "POST" else None, gateways=gateways, device=device)
    # A valid choice goes straight to payment_start, whose locking read is
    # the page's only read of the order; the page itself (a GET, a refused
    # choice, an error) reads the order to show it.
    if request.method == "POST" and form.is_valid():
        try:
            payment, action = payment_start(
                order_no=order_no,
                shopper_id=request.user.pk,
                gateway_code=form.cleaned_data["gateway_code"],
                method=form.cleaned_data["method"],
                actor=Actor.shopper(request.user),
                client_ip=request.META.get("REMOTE_ADDR", ""),
            )
        except Order.DoesNotExist as exc:
            # Another shopper's order is a 404 too: do not confirm it exists.
            raise Http404(order_no) from exc
        except OrderNotPayable:
            # Paid in another tab, or timed out while the page was open:
            # the page below says so.
            pass
        except (GatewayNotConfigured, UnsupportedMethod) as exc:
            form.add_error("choice", exc.user_message)
        except GatewayError as exc:
            # The attempt is recorded as failed; nothing was paid.
            form.add_error(None, exc.user_message)
        else:
            return _follow(request, payment, action)
    order = get_object_or_404(Order, order_no=order_no, shopper=request.user)
    if request.method == "POST" and not order.is_payable:
        form = CashierForm(gateways=gateways, device=device)
    return render(
        request,
        "payments/cashier.html",
        {"order": order, "lines": order.lines.all(), "form": form, "has_options": bool(form.options),
         "other_device": DESKTOP if form.for_device == MOBILE else MOBILE},
        status=400 if form.errors else 200,
    )


def _follow(request, payment: Payment, action: PaymentAction):
    if action.kind == ActionKind.QR:
        return redirect("payments:qr", out_trade_no=payment.out_trade_no)
    if action.kind == ActionKind.FORM:
        return render(request, "payments/redirect_form.html", {"payment": payment, "action": action})
    return redirect(action.url)


@login_required
def qr_page(request, out_trade_no: str):
    payment = _shopper_payment(request, out_trade_no)
    if payment.status == PaymentStatus.SUCCEEDED or not payment.qr_content:
        return redirect("payments:result", out_trade_no=out_trade_no)
    svg = segno.make(payment.qr_content, error="m").svg_inline(scale=6, border=2)
    seconds_left = max(0, int((payment.expires_at - timezone.now()).total_seconds()))
    return render(
        request,
        "payments/qr.html",
        {
            "payment": payment,
            "order": payment.order,
            "lines": payment.order.lines.all(),
            "gateway_name": gateway_name(payment.gateway),
            "qr_svg": mark_safe(svg),
            "seconds_left": seconds_left,
            # make run's demo: the code points at the sandbox's scan page,
            # which a person opens in another tab instead of a phone.
            "sandbox_scan_url": payment.qr_content
            if settings.DEBUG and payment.qr_content.startswith(f"{settings.SANDBOX_URL}/") else "",
        },
    )


@never_cache
@login_required
def payment_status(request, out_trade_no: str):
    """Polled by the QR page; asks the gateway itself now and then."""
    payment = _shopper_payment(request, out_trade_no)
    if payment.is_open:
        payment = payment_sync_if_due(
            payment_id=payment.pk, actor=Actor.system("status-poll"), min_interval=POLL_QUERY_INTERVAL
        )
    order = Order.objects.get(pk=payment.order_id)
    return JsonResponse(
        {
            "payment": payment.status,
            "order": order.status,
            "done": not payment.is_open,
            "result_url": reverse("payments:result", kwargs={"out_trade_no": out_trade_no}),
        }
    )


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def gateway_return(request, gateway: str):
    """The browser's return from a gateway: verified, but never trusted alone.

    It comes the way the gateway's capabilities say: a GET, or (UnionPay) a
    form the gateway's page posts. The other method is refused with a 405,
    so the CSRF exemption covers only a gateway whose return is a POST, and
    nothing in that post is believed before the adapter verified it; even
    then the page only shows what a query or a notification decided.
    """
    try:
        adapter = get_gateway(gateway)
    except GatewayNotConfigured as exc:
        raise Http404(gateway) from exc
    expected = adapter.capabilities.return_method
    if request.method != expected:
        return HttpResponseNotAllowed([expected])
    params = request.POST if expected == ReturnMethod.POST else request.GET
    try:
        out_trade_no = adapter.parse_return(params.dict())
    except InvalidNotification as exc:
        logger.warning("%s return rejected: %s", gateway, exc.reason)
        return render(request, "payments/return_invalid.html", status=400)
    payment = get_object_or_404(Payment, out_trade_no=out_trade_no, gateway=gateway)
    Payment.objects.filter(pk=payment.pk, returned_at__isnull=True).update(returned_at=timezone.now())
    if payment.is_open:
        # Anyone may replay a return URL: at most one gateway query per
        # attempt per interval, across all processes; a hit while one is in
        # flight (or just done) is answered from the database.
        payment_sync_if_due(payment_id=payment.pk, actor=Actor.system("return"), min_interval=POLL_QUERY_INTERVAL)
    return redirect("payments:result", out_trade_no=out_trade_no)


@never_cache
@login_required
def payment_result(request, out_trade_no: str):
    """The success, failure or still-confirming page, from the payment's real state."""
    payment = _shopper_payment(request, out_trade_no)
    if payment.is_open:
        payment = payment_sync_if_due(
            payment_id=payment.pk, actor=Actor.system("result-page"), min_interval=POLL_QUERY_INTERVAL
        )
    order = Order.objects.get(pk=payment.order_id)
    context: dict[str, object] = {"payment": payment, "order": order}
    if payment.status == PaymentStatus.SUCCEEDED:
        return render(request, "payments/success.html", context)
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CLOSED) or payment.gateway_status == "not_found":
        return render(request, "payments/failure.html", context)
    since = payment.returned_at or payment.created_at
    context["refresh"] = timezone.now() - since < CONFIRMING_WINDOW
    return render(request, "payments/confirming.html", context)


@server_to_server
@csrf_exempt
@require_POST
@reads_raw_body
def gateway_notify(request, gateway: str):
    """Asynchronous payment notifications. Bad input is a 4xx, never a 500."""
    return notification_response(request, gateway_code=gateway, kind=NotificationKind.PAYMENT)
