from django import forms
from django.utils.translation import gettext_lazy as _

from payments.cashier import DESKTOP, DEVICES, MOBILE, PayOption, pay_options
from payments.gateways.base import Gateway


class CashierForm(forms.Form):
    """One of the ways to pay offered on the shopper's device (payments.cashier)."""

    choice = forms.ChoiceField(
        label=_("Payment method"), widget=forms.RadioSelect,
        error_messages={"invalid_choice": _("This way to pay is not offered on this device; choose another.")},
    )
    # The device the options were offered for, so the post is checked
    # against the same list the shopper saw.
    device = forms.ChoiceField(choices=[(DESKTOP, DESKTOP), (MOBILE, MOBILE)], widget=forms.HiddenInput)

    def __init__(self, *args, gateways: list[Gateway], device: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            posted = self.data.get("device")
            device = posted if posted in DEVICES else device
        self.for_device = device
        self.options: list[PayOption] = pay_options(gateways, device)
        choice_field = self.fields["choice"]
        assert isinstance(choice_field, forms.ChoiceField)
        choice_field.choices = [(option.value, option.label) for option in self.options]
        self.initial.setdefault("device", device)
        if self.options and not self.is_bound:
            self.initial.setdefault("choice", self.options[0].value)

    def clean(self):
        cleaned = super().clean()
        chosen = {option.value: option for option in self.options}.get(cleaned.get("choice", ""))
        if chosen is not None:
            cleaned["gateway_code"] = chosen.gateway.code
            cleaned["method"] = chosen.method
        return cleaned

    def option_rows(self):
        """(option, radio) pairs for the template: the mark and hint beside each radio."""
        radios = {radio.data["value"]: radio for radio in self["choice"]}
        return [(option, radios[option.value]) for option in self.options]
