import uuid

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from orders.exceptions import CheckoutAlreadyPlaced, CheckoutError
from orders.forms import CheckoutForm
from orders.models import Order
from orders.services import Consignee, order_place
from shop.cart import Cart


@login_required
def checkout(request):
    cart = Cart(request.session)
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                order = order_place(
                    shopper=request.user,
                    items=cart.items(),
                    consignee=Consignee(
                        name=data["consignee_name"],
                        phone=data["consignee_phone"],
                        address=data["consignee_address"],
                    ),
                    checkout_token=data["checkout_token"],
                )
            except CheckoutAlreadyPlaced as exc:
                # The same form came twice (double click, reload): the first
                # order stands, and the shopper continues paying it.
                return redirect("payments:cashier", order_no=exc.order_no)
            except CheckoutError as exc:
                form.add_error(None, exc.user_message)
            else:
                cart.clear()
                return redirect("payments:cashier", order_no=order.order_no)
        status = 400
    else:
        last = request.user.orders.order_by("-created_at").first()
        initial = {"checkout_token": uuid.uuid4()}
        if last is not None:
            initial.update(
                consignee_name=last.consignee_name,
                consignee_phone=last.consignee_phone,
                consignee_address=last.consignee_address,
            )
        form = CheckoutForm(initial=initial)
        status = 200
    lines = cart.lines()
    return render(
        request,
        "orders/checkout.html",
        {"form": form, "lines": lines, "total": cart.total(lines)},
        status=status,
    )


def _shopper_order(request, order_no: str) -> Order:
    # Another shopper's order number is a 404, not a 403: do not confirm
    # that the order exists.
    return get_object_or_404(Order, order_no=order_no, shopper=request.user)


@login_required
def order_list(request):
    orders = request.user.orders.prefetch_related("lines")
    return render(request, "orders/order_list.html", {"orders": orders})


@login_required
def order_detail(request, order_no: str):
    order = _shopper_order(request, order_no)
    return render(
        request,
        "orders/order_detail.html",
        {"order": order, "lines": order.lines.all(), "events": order.events.all()},
    )
