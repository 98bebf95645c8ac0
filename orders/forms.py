from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

phone_validator = RegexValidator(
    r"^\+?[0-9][0-9 \-]{5,19}$",
    message=_("Enter a phone number of digits, e.g. 13800138000."),
)
postal_code_validator = RegexValidator(r"^[0-9]{6}$", message=_("A postal code is six digits, e.g. 310013."))


def _text(label, *, autocomplete: str, max_length: int, required: bool = True, **attrs) -> forms.CharField:
    """A text field with the `autocomplete` token browsers fill addresses from (WHATWG autofill)."""
    return forms.CharField(label=label, max_length=max_length, required=required,
                           widget=forms.TextInput(attrs={"autocomplete": autocomplete, **attrs}))


class CheckoutForm(forms.Form):
    """Who receives the order and where, in the parts a Chinese address has."""

    consignee_name = _text(_("Recipient"), autocomplete="name", max_length=100)
    consignee_phone = forms.CharField(
        label=_("Mobile phone"), max_length=32, validators=[phone_validator],
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}),
    )
    address_province = _text(_("Province"), autocomplete="address-level1", max_length=50)
    address_city = _text(_("City"), autocomplete="address-level2", max_length=50)
    address_district = _text(_("District or county"), autocomplete="address-level3", max_length=50,
                             required=False)
    address_street = forms.CharField(
        label=_("Street address"), max_length=200,
        help_text=_("Street, number, building and room."),
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "street-address"}),
    )
    address_postal_code = _text(_("Postal code (optional)"), autocomplete="postal-code", max_length=12,
                                required=False, inputmode="numeric")
    # One-time token: a second submit of the same form finds the first order.
    checkout_token = forms.UUIDField(widget=forms.HiddenInput)

    def clean_consignee_name(self) -> str:
        return self.cleaned_data["consignee_name"].strip()

    def clean_address_street(self) -> str:
        street = " ".join(self.cleaned_data["address_street"].split())
        if len(street) < 4:
            raise forms.ValidationError(_("Enter the street, number and building."))
        return street

    def clean_address_postal_code(self) -> str:
        code = self.cleaned_data["address_postal_code"].strip()
        if code:
            postal_code_validator(code)
        return code
