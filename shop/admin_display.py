"""Money in admin: always yuan with two decimals (¥1,234.56), never raw fen.

`yuan_column` makes a list or detail column of an integer-fen field (a
method of the ModelAdmin, named in list_display or readonly_fields), and
`YuanField` lets staff type a price in yuan for a `*_minor` field: the form
cleans "88.8" to 8880 fen exactly, refusing a third decimal.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from shop.money import Money


def yuan_column(field: str, description: Any) -> Callable[[Any, Any], str]:
    """An admin column of `field` in yuan, sortable by it:

        total = yuan_column("total_minor", _("total"))   # in the ModelAdmin class
        list_display = ("order_no", "total")
    """

    @admin.display(description=description, ordering=field)
    def column(model_admin: Any, obj: Any) -> str:
        value = getattr(obj, field)
        return "" if value is None else Money(int(value), getattr(obj, "currency", "CNY")).format()

    return column


class YuanField(forms.DecimalField):
    """Yuan in the form, integer fen in the model."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 2)
        kwargs.setdefault("min_value", Decimal("0.01"))
        kwargs.setdefault("help_text", _("In yuan, e.g. 88.00."))
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            major, minor = divmod(value, 100)
            return f"{major}.{minor:02d}"
        return value

    def clean(self, value: Any) -> int | None:
        amount = super().clean(value)
        return None if amount is None else int(amount * 100)

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.clean(data) != initial
        except forms.ValidationError:
            return True
