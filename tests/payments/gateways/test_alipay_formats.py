"""Alipay yuan strings and Beijing times convert exactly (A7, A12)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from payments.gateways.alipay import fen_to_yuan, yuan_to_fen
from payments.gateways.alipay.formats import BEIJING, MAX_AMOUNT_FEN, format_beijing, parse_beijing


@pytest.mark.parametrize(
    ("fen", "yuan"),
    [(1, "0.01"), (10, "0.10"), (100, "1.00"), (8888, "88.88"), (100001, "1000.01"), (MAX_AMOUNT_FEN, "100000000.00")],
)
def test_fen_become_two_decimal_yuan(fen, yuan):
    assert fen_to_yuan(fen) == yuan
    assert yuan_to_fen(yuan) == fen


@pytest.mark.parametrize("fen", [0, -1, MAX_AMOUNT_FEN + 1, 88.88, 1.0, True, Decimal("1"), "100", None])
def test_only_integer_fen_within_alipay_range_convert(fen):
    with pytest.raises(ValueError):
        fen_to_yuan(fen)


@pytest.mark.parametrize(
    ("text", "fen"),
    [("0.01", 1), ("88.8", 8880), ("88", 8800), ("0", 0), ("-0.04", -4), ("-20.00", -2000), ("100000000.00", MAX_AMOUNT_FEN)],
)
def test_yuan_strings_become_fen(text, fen):
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    ["88.888", "88.880", "abc", "", " 1.00", "1.00 ", "1e3", "+1", "1,000.00", ".5", "5.", "01.00", "１.00", "NaN", "-"],
)
def test_malformed_yuan_strings_are_refused(text):
    with pytest.raises(ValueError):
        yuan_to_fen(text)


@pytest.mark.parametrize("value", [88.88, 1, Decimal("1.00"), None])
def test_yuan_must_be_text(value):
    with pytest.raises(ValueError):
        yuan_to_fen(value)


def test_every_fen_round_trips_in_a_sample():
    for fen in [*range(1, 1001), *range(MAX_AMOUNT_FEN - 1000, MAX_AMOUNT_FEN + 1)]:
        assert yuan_to_fen(fen_to_yuan(fen)) == fen


def test_times_are_written_and_read_in_beijing_time():
    moment = datetime(2024, 4, 30, 16, 30, 5, tzinfo=UTC)
    assert format_beijing(moment) == "2024-05-01 00:30:05"
    parsed = parse_beijing("2024-05-01 00:30:05")
    assert parsed == moment and parsed.utcoffset() == timedelta(hours=8)
    assert parsed.tzinfo is BEIJING


def test_naive_and_malformed_times_are_refused():
    with pytest.raises(ValueError):
        format_beijing(datetime(2024, 5, 1, 10, 0, 0))
    for text in ("2024-05-01T10:00:00", "2024-05-01", "", "2024-05-01 10:00:00+08:00"):
        with pytest.raises(ValueError):
            parse_beijing(text)
