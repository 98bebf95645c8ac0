from django.contrib import messages
from django.contrib.auth import login
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


def cart_detail(request):
    cart = Cart(request.session)
    lines = cart.lines()
    return render(
        request,
        "shop/cart.html",
        {
            "lines": lines,
            "total": cart.total(lines),
            "unknown_codes": cart.unknown_codes(),
        },
    )


@require_POST
def cart_add(request):
    form = AddToCartForm(request.POST)
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
    quantity = Cart(request.session).add(
        code=form.cleaned_data["sku"], quantity=form.cleaned_data["quantity"]
    )
    messages.success(request, _("Added to your cart (now %(quantity)d).") % {"quantity": quantity})
    return redirect("shop:cart")


@require_POST
def cart_update(request):
    form = CartLineForm(request.POST)
    cart = Cart(request.session)
    if not form.is_valid():
        lines = cart.lines()
        return render(
            request,
            "shop/cart.html",
            {
                "lines": lines,
                "total": cart.total(lines),
                "line_form": form,
                "unknown_codes": cart.unknown_codes(),
            },
            status=400,
        )
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
