import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from orders.exceptions import CheckoutAlreadyPlaced, CheckoutError, EmptyCart, InvalidOrderTransition
from orders.forms import CheckoutForm
from orders.models import REASON_RECEIPT_CONFIRMED, Order
from orders.services import Consignee, order_complete, order_place
from shop.actors import Actor
from shop.cart import Cart

ADDRESS_FIELDS = ("consignee_name", "consignee_phone", "address_province", "address_city", "address_district",
                  "address_street", "address_postal_code")


def _last_address(user) -> dict[str, str]:
    """The structured address of the shopper's last order, to fill the form with."""
    last = user.orders.exclude(address_street="").order_by("-created_at").first()
    if last is None:
        return {}
    return {name: getattr(last, name) for name in ADDRESS_FIELDS}


def _consignee(data: dict) -> Consignee:
    return Consignee(name=data["consignee_name"], phone=data["consignee_phone"],
                     province=data["address_province"], city=data["address_city"],
                     district=data["address_district"], street=data["address_street"],
                     postal_code=data["address_postal_code"])


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
                    consignee=_consignee(data),
                    checkout_token=data["checkout_token"],
                    language=get_language() or "",
                )
            except CheckoutAlreadyPlaced as exc:
                # The same form came twice (double click, reload): the first
                # order stands, and the shopper continues paying it.
                return redirect("payments:cashier", order_no=exc.order_no)
            except EmptyCart as exc:
                messages.info(request, exc.user_message)
                return redirect("shop:cart")
            except CheckoutError as exc:
                form.add_error(None, exc.user_message)
            else:
                cart.clear()
                return redirect("payments:cashier", order_no=order.order_no)
        # Priced from the database only when the form is shown again: a
        # placed order read its prices under the SKU locks.
        lines = cart.lines()
        status = 400
    else:
        lines = cart.lines()
        # The form is for a cart that can be ordered: an empty one, or one
        # with a line over the stock, goes back to the cart, which says why.
        if not lines:
            messages.info(request, _("Your cart is empty."))
            return redirect("shop:cart")
        if cart.line_problems(lines):
            messages.error(request, _("Some lines of your cart cannot be ordered as they are."))
            return redirect("shop:cart")
        form = CheckoutForm(initial={"checkout_token": uuid.uuid4(), **_last_address(request.user)})
        status = 200
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


def _staff_may_view(user) -> bool:
    return user.is_active and user.is_staff and user.has_perm("orders.view_order")


ORDERS_PER_PAGE = 20


@login_required
def order_list(request):
    # A page at a time, newest first (index order_shopper_newest): the
    # queries are the same for a shopper with five orders or five thousand.
    orders = request.user.orders.order_by("-created_at", "-pk").prefetch_related("lines")
    page = Paginator(orders, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "orders/order_list.html", {"orders": page.object_list, "page": page})


@login_required
def order_detail(request, order_no: str):
    """The shopper's order page; staff who may view orders see it read-only ("View on site")."""
    order = Order.objects.filter(order_no=order_no).select_related("shopper").first()
    is_shopper = order is not None and order.shopper_id == request.user.pk
    if order is None or not (is_shopper or _staff_may_view(request.user)):
        raise Http404(order_no)
    return render(
        request,
        "orders/order_detail.html",
        {"order": order, "lines": order.lines.all(), "events": order.events.all(), "is_shopper": is_shopper},
    )


@login_required
@require_POST
def order_confirm_receipt(request, order_no: str):
    """The shopper says the goods arrived: shipped → completed."""
    order = _shopper_order(request, order_no)
    try:
        order_complete(order_id=order.pk, actor=Actor.shopper(request.user), reason=REASON_RECEIPT_CONFIRMED)
    except InvalidOrderTransition as exc:
        messages.error(request, exc.user_message)
    else:
        messages.success(request, _("Thank you: the order is complete."))
    return redirect(order.get_absolute_url())
