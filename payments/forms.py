from django import forms
from django.utils.translation import gettext_lazy as _

from payments.gateways.base import Gateway, PayMethod

# How the shopper wants to pay; the device picks the redirect flavour.
REDIRECT = "redirect"
QR = "qr"
DESKTOP = "desktop"
MOBILE = "mobile"

MOBILE_MARKERS = ("mobile", "android", "iphone", "ipad", "ipod", "harmonyos", "micromessenger")


def device_from_user_agent(user_agent: str) -> str:
    lowered = user_agent.lower()
    return MOBILE if any(marker in lowered for marker in MOBILE_MARKERS) else DESKTOP


def choice_label(gateway: Gateway, way: str) -> str:
    if way == QR:
        return _("%(gateway)s: scan a QR code") % {"gateway": gateway.display_name}
    return _("%(gateway)s: pay on the %(gateway)s page") % {"gateway": gateway.display_name}


class CashierForm(forms.Form):
    choice = forms.ChoiceField(label=_("Payment method"), widget=forms.RadioSelect)
    device = forms.ChoiceField(
        label=_("I am paying on"),
        choices=[(DESKTOP, _("a computer")), (MOBILE, _("a phone"))],
        widget=forms.RadioSelect,
    )

    def __init__(self, *args, gateways: list[Gateway], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gateways = {gateway.code: gateway for gateway in gateways}
        choices = []
        for gateway in gateways:
            if gateway.methods & {PayMethod.PAGE, PayMethod.WAP}:
                choices.append((f"{gateway.code}:{REDIRECT}", choice_label(gateway, REDIRECT)))
            if PayMethod.QR in gateway.methods:
                choices.append((f"{gateway.code}:{QR}", choice_label(gateway, QR)))
        choice_field = self.fields["choice"]
        assert isinstance(choice_field, forms.ChoiceField)
        choice_field.choices = choices
        if choices and not self.is_bound:
            self.initial.setdefault("choice", choices[0][0])

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("choice")
        if not choice:
            return cleaned
        code, way = choice.split(":", 1)
        gateway = self.gateways[code]
        cleaned["gateway_code"] = code
        if way == QR:
            cleaned["method"] = PayMethod.QR
        elif cleaned.get("device") == MOBILE and PayMethod.WAP in gateway.methods:
            cleaned["method"] = PayMethod.WAP
        elif PayMethod.PAGE in gateway.methods:
            cleaned["method"] = PayMethod.PAGE
        else:
            # WeChat Pay's H5 page only works in a phone's browser.
            self.add_error(
                "choice",
                _("%(gateway)s can only be paid this way on a phone: scan the QR code instead, "
                  "or choose \"a phone\" if you are on one.") % {"gateway": gateway.display_name},
            )
        return cleaned
