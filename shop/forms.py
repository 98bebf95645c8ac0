from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy as _

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

    def clean_sku(self) -> str:
        code = self.cleaned_data["sku"]
        if not Sku.objects.filter(code=code, is_active=True, product__is_active=True).exists():
            raise forms.ValidationError(_("This product is not available."), code="unknown_sku")
        return code


class CartLineForm(forms.Form):
    sku = forms.CharField(max_length=64, widget=forms.HiddenInput)
    quantity = QuantityField(min_value=0)


class SignUpForm(UserCreationForm):
    email = forms.EmailField(label=_("Email"), required=True)

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
