from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from refunds.models import SHOPPER_REASONS
from shop.money import Money


class RefundApplicationForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount (¥)"), max_digits=12, decimal_places=2, min_value=Decimal("0.01"),
        help_text=_("At most what is still refundable."),
    )
    reason = forms.ChoiceField(label=_("Reason"), choices=[(r.value, r.label) for r in SHOPPER_REASONS])
    reason_text = forms.CharField(label=_("Details"), widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
                                  required=False)
    # One-time token: a double submit finds the first application.
    token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, refundable_minor: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.refundable_minor = refundable_minor

    def clean_amount(self) -> int:
        # Yuan with at most two decimals → exact integer fen.
        amount_minor = int(self.cleaned_data["amount"] * 100)
        if amount_minor > self.refundable_minor:
            raise forms.ValidationError(
                _("At most %(max)s can be refunded.") % {"max": Money(self.refundable_minor).format()})
        return amount_minor

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("reason") == "other" and not cleaned.get("reason_text", "").strip():
            self.add_error("reason_text", _("Tell us what happened."))
        return cleaned
