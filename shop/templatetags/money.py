from django import template

from shop.money import Money

register = template.Library()


@register.filter
def yuan(value, currency: str = "CNY") -> str:
    """Render integer fen (or a Money) as `¥88.88`."""
    if value is None or value == "":
        return ""
    if isinstance(value, Money):
        return value.format()
    return Money(int(value), currency).format()
