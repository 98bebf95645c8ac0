import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from orders.models import Order
from payments.inbound import notification_response
from payments.models import NotificationKind
from payments.selectors import payment_accepted_for_order
from refunds.exceptions import RefundError
from refunds.forms import RefundApplicationForm
from refunds.models import RefundStatus
from refunds.services import refund_request, refundable_minor
from shop.middleware import reads_raw_body, server_to_server


@login_required
def refund_apply(request, order_no: str):
    # Another shopper's order is a 404: do not confirm it exists.
    order = get_object_or_404(Order, order_no=order_no, shopper=request.user)
    payment = payment_accepted_for_order(order)
    available = refundable_minor(payment=payment) if payment else 0
    if available <= 0:
        messages.info(request, _("Nothing on this order can be refunded."))
        return redirect(order.get_absolute_url())
    if order.refunds.filter(status=RefundStatus.REQUESTED).exists():
        # One application at a time: the next waits for the decision on this one.
        messages.info(request, _("Your refund application is being reviewed; you can apply again once it is decided."))
        return redirect(order.get_absolute_url())
    if request.method == "POST":
        form = RefundApplicationForm(request.POST, refundable_minor=available)
        if form.is_valid():
            data = form.cleaned_data
            try:
                refund_request(
                    order_id=order.pk, shopper=request.user, amount_minor=data["amount"], reason=data["reason"],
                    reason_text=data["reason_text"], application_token=data["token"],
                )
            except RefundError as exc:
                form.add_error("amount", exc.user_message)
            else:
                messages.success(request, _("Your refund application was sent. We will email you the decision."))
                return redirect(order.get_absolute_url())
    else:
        form = RefundApplicationForm(
            refundable_minor=available, initial={"amount": f"{available // 100}.{available % 100:02d}",
                                                 "token": uuid.uuid4()})
    return render(request, "refunds/apply.html", {"order": order, "form": form, "refundable_minor": available},
                  status=400 if form.errors else 200)


@server_to_server
@csrf_exempt
@require_POST
@reads_raw_body
def gateway_refund_notify(request, gateway: str):
    """Asynchronous refund notifications (WeChat Pay, UnionPay). Bad input is a 4xx, never a 500.

    A gateway whose refunds never notify (Alipay answers synchronously) is a 404.
    """
    return notification_response(request, gateway_code=gateway, kind=NotificationKind.REFUND)
