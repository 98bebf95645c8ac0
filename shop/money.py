"""Money as integer minor units (fen) with a currency; never a float.

Conversions to a provider's format (yuan strings, fen integers) live in the
gateway adapters, not here.
"""
from __future__ import annotations

from dataclasses import dataclass

CURRENCY_SYMBOLS = {"CNY": "¥"}
MINOR_UNITS_PER_MAJOR = {"CNY": 100}


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, order=False)
class Money:
    minor: int
    currency: str = "CNY"

    def __post_init__(self) -> None:
        if not isinstance(self.minor, int) or isinstance(self.minor, bool):
            raise TypeError(f"Money needs integer minor units, got {self.minor!r}")

    def _same_currency(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {other!r}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __mul__(self, quantity: int) -> Money:
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise TypeError("Money can only be multiplied by an integer")
        return Money(self.minor * quantity, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.minor >= other.minor

    def format(self) -> str:
        """`¥1,234.56`: the symbol, thousands separators, two decimals."""
        per_major = MINOR_UNITS_PER_MAJOR.get(self.currency, 100)
        sign = "-" if self.minor < 0 else ""
        major, minor = divmod(abs(self.minor), per_major)
        symbol = CURRENCY_SYMBOLS.get(self.currency, self.currency + " ")
        return f"{sign}{symbol}{major:,}.{minor:02d}"

    def __str__(self) -> str:
        return self.format()
