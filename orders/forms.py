from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

phone_validator = RegexValidator(
    r"^\+?[0-9][0-9 \-]{5,19}$",
    message=_("Enter a phone number of digits, e.g. 13800138000."),
)


class CheckoutForm(forms.Form):
    consignee_name = forms.CharField(label=_("Consignee"), max_length=100)
    consignee_phone = forms.CharField(
        label=_("Phone"), max_length=32, validators=[phone_validator]
    )
    consignee_address = forms.CharField(
        label=_("Address"), max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )
    # One-time token: a second submit of the same form finds the first order.
    checkout_token = forms.UUIDField(widget=forms.HiddenInput)

    def clean_consignee_name(self) -> str:
        return self.cleaned_data["consignee_name"].strip()

    def clean_consignee_address(self) -> str:
        address = self.cleaned_data["consignee_address"].strip()
        if len(address) < 5:
            raise forms.ValidationError(_("Enter the full delivery address."))
        return address
