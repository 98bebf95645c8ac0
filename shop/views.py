from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.db.models import Min, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from shop.cart import Cart
from shop.forms import AddToCartForm, CartLineForm, SignUpForm
from shop.models import Product


def catalogue(request):
    products = Product.objects.filter(is_active=True).annotate(
        min_price_minor=Min("skus__price_minor", filter=Q(skus__is_active=True))
    )
    return render(request, "shop/catalogue.html", {"products": products})


def product_detail(request, slug: str):
    product = get_object_or_404(Product, slug=slug, is_active=True)
    skus = product.skus.filter(is_active=True)
    return render(
        request,
        "shop/product.html",
        {"product": product, "skus": skus, "form": AddToCartForm()},
    )


def _cart_page(request, cart: Cart, *, line_errors: dict[str, str] | None = None, status: int = 200):
    """The cart, each line with what stops it from checking out (stock, sold out) beside it."""
    lines = cart.lines()
    problems = cart.line_problems(lines)
    errors = {**problems, **(line_errors or {})}
    return render(
        request,
        "shop/cart.html",
        {
            "lines": lines,
            "rows": [(line, errors.get(line.sku.code, "")) for line in lines],
            "total": cart.total(lines),
            "can_check_out": bool(lines) and not problems,
            "unknown_codes": cart.unknown_codes(),
        },
        status=status,
    )


def cart_detail(request):
    return _cart_page(request, Cart(request.session))


@require_POST
def cart_add(request):
    cart = Cart(request.session)
    form = AddToCartForm(request.POST, in_cart=dict(cart.items()))
    if not form.is_valid():
        code = request.POST.get("sku", "")
        product = Product.objects.filter(skus__code=code, is_active=True).first()
        if product is None:
            return render(request, "shop/cart_error.html", {"form": form}, status=400)
        return render(
            request,
            "shop/product.html",
            {"product": product, "skus": product.skus.filter(is_active=True), "form": form},
            status=400,
        )
    quantity = cart.add(code=form.cleaned_data["sku"], quantity=form.cleaned_data["quantity"])
    messages.success(request, _("Added to your cart (now %(quantity)d).") % {"quantity": quantity})
    return redirect("shop:cart")


@require_POST
def cart_update(request):
    form = CartLineForm(request.POST)
    cart = Cart(request.session)
    if not form.is_valid():
        code = request.POST.get("sku", "")
        errors = [str(error) for field in form for error in field.errors]
        if code in cart:
            # The error goes on the line; the quantity in the cart stays.
            return _cart_page(request, cart, line_errors={code: " ".join(errors)}, status=400)
        return _cart_page(request, cart, status=400)
    cart.set(code=form.cleaned_data["sku"], quantity=form.cleaned_data["quantity"])
    return redirect("shop:cart")


@require_POST
def cart_remove(request):
    Cart(request.session).remove(code=request.POST.get("sku", ""))
    return redirect("shop:cart")


def signup(request):
    if request.method == "POST":
        form = SignUpForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, _("Welcome! Your account has been created."))
            return redirect("shop:catalogue")
    else:
        form = SignUpForm()
    return render(request, "registration/signup.html", {"form": form})


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, with a plain-text email whose link starts at SITE_URL.

    The request's own Host is not trusted for a link sent by email. The
    email is in the language of the page the shopper asked from.
    """

    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form):
        self.extra_email_context = {"site_url": settings.SITE_URL}
        return super().form_valid(form)
