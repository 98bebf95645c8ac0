from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

from shop.cart import stock_message
from shop.models import Sku


class QuantityField(forms.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", settings.CART_MAX_QUANTITY_PER_LINE)
        kwargs.setdefault("initial", 1)
        kwargs.setdefault("label", _("Quantity"))
        super().__init__(**kwargs)


class AddToCartForm(forms.Form):
    """What the browser may say about a purchase: which SKU and how many.

    There is deliberately no price field; anything else posted is ignored.
    """

    sku = forms.CharField(max_length=64, widget=forms.HiddenInput)
    quantity = QuantityField()

    def __init__(self, *args, in_cart: dict[str, int] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # What the cart already holds of each SKU: the stock check adds it.
        self.in_cart = in_cart or {}

    def clean_sku(self) -> str:
        code = self.cleaned_data["sku"]
        sku = Sku.objects.filter(code=code, is_active=True, product__is_active=True).first()
        if sku is None:
            raise forms.ValidationError(_("This product is not available."), code="unknown_sku")
        self.sku_row = sku
        return code

    def clean(self):
        cleaned = super().clean()
        quantity = cleaned.get("quantity")
        if quantity and "sku" in cleaned:
            already = self.in_cart.get(self.sku_row.code, 0)
            if already + quantity > self.sku_row.stock:
                message = stock_message(self.sku_row.stock)
                if already:
                    message = _("You already have %(already)d in your cart. %(stock)s") % {
                        "already": already, "stock": message}
                self.add_error("quantity", forms.ValidationError(message, code="stock"))
        return cleaned


class CartLineForm(forms.Form):
    """A new quantity for one line of the cart, checked against the stock."""

    sku = forms.CharField(max_length=64, widget=forms.HiddenInput)
    quantity = QuantityField(min_value=0)

    def clean(self):
        cleaned = super().clean()
        quantity = cleaned.get("quantity")
        if quantity:
            sku = Sku.objects.filter(code=cleaned.get("sku", "")).first()
            if sku is not None and quantity > sku.stock:
                self.add_error("quantity", forms.ValidationError(stock_message(sku.stock), code="stock"))
        return cleaned


class SignUpForm(UserCreationForm):
    email = forms.EmailField(label=_("Email"), required=True)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
