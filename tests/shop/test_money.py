import pytest

from shop.money import CurrencyMismatch, Money
from shop.templatetags.money import yuan


def test_format_has_symbol_separators_and_two_decimals():
    assert Money(123456).format() == "¥1,234.56"
    assert Money(5).format() == "¥0.05"
    assert Money(-1999).format() == "-¥19.99"


def test_arithmetic_stays_in_integer_fen():
    assert Money(1999) * 3 == Money(5997)
    assert Money(100) + Money(1) == Money(101)
    assert Money(100) - Money(1) == Money(99)


def test_floats_are_refused():
    with pytest.raises(TypeError):
        Money(19.99)
    with pytest.raises(TypeError):
        Money(100) * 1.5


def test_mixed_currencies_are_refused():
    with pytest.raises(CurrencyMismatch):
        Money(100, "CNY") + Money(100, "USD")


def test_template_filter_renders_fen_as_yuan():
    assert yuan(8800) == "¥88.00"
    assert yuan(Money(1)) == "¥0.01"
    assert yuan(None) == ""
