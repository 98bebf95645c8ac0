"""Finance's forms: deciding a discrepancy, signing a day off, filtering the list."""
from django import forms
from django.utils.translation import gettext_lazy as _

from reconciliation.models import DiscrepancyKind, DiscrepancyStatus


class ResolveForm(forms.Form):
    note = forms.CharField(label=_("How was it resolved?"), widget=forms.Textarea(attrs={"rows": 3}),
                           max_length=2000)


class AcceptForm(forms.Form):
    note = forms.CharField(label=_("Note (optional)"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                           required=False)


class SignOffForm(forms.Form):
    note = forms.CharField(label=_("Note (optional)"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000,
                           required=False)


class DiscrepancyFilterForm(forms.Form):
    gateway = forms.ChoiceField(label=_("Gateway"), required=False)
    kind = forms.ChoiceField(label=_("Kind"), required=False,
                             choices=[("", _("Any kind")), *DiscrepancyKind.choices])
    status = forms.ChoiceField(label=_("State"), required=False,
                               choices=[("", _("Any state")), *DiscrepancyStatus.choices])
    older_than_days = forms.IntegerField(label=_("Open for at least (days)"), required=False, min_value=0,
                                         max_value=3650)
    day = forms.DateField(label=_("Bill day"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, gateways: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        gateway = self.fields["gateway"]
        assert isinstance(gateway, forms.ChoiceField)
        gateway.choices = [("", _("Any gateway")), *((code, code) for code in gateways)]
