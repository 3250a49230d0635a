"""Dutch and English number, money, share and date formats: known values plus the properties that matter."""

from __future__ import annotations

import math
from datetime import date

import pytest

from fedsim.errors import FedsimError
from fedsim.report import format as fmt


@pytest.mark.parametrize(
    ("x", "decimals", "nl", "en"),
    [
        (1234.5, 1, "1.234,5", "1,234.5"),
        (1234567.891, 2, "1.234.567,89", "1,234,567.89"),
        (-0.04, 1, "0,0", "0.0"),  # rounds to zero: no minus sign
        (-12.0, 0, "−12", "−12"),
        (math.inf, 0, "∞", "∞"),
    ],
)
def test_number(x: float, decimals: int, nl: str, en: str) -> None:
    assert fmt.number(x, "nl", decimals) == nl
    assert fmt.number(x, "en", decimals) == en


def test_signed_and_percent() -> None:
    assert fmt.number(3.0, "en", 0, signed=True) == "+3"
    assert fmt.number(0.0, "en", 0, signed=True) == "0"
    assert fmt.percent(0.123, "nl") == "12,3%" and fmt.percent(0.123, "en") == "12.3%"
    assert fmt.percent(0.12, "nl", 0) == "12%"
    assert fmt.percent(-0.031, "en", signed=True) == "−3.1%"


@pytest.mark.parametrize(
    ("x", "nl", "en"),
    [
        (9600.0, "€ 9.600", "€9,600"),
        (1.2e6, "€ 1,2 mln", "€1.2M"),
        (3.46e9, "€ 3,5 mld", "€3.5bn"),
        (-9600.4, "−€ 9.600", "−€9,600"),
        (0.3, "€ 0", "€0"),
    ],
)
def test_euros(x: float, nl: str, en: str) -> None:
    assert fmt.euros(x, "nl").replace(fmt.NBSP, " ") == nl
    assert fmt.euros(x, "en") == en


def test_euros_signed_only_when_nonzero() -> None:
    assert fmt.euros(1500.0, "en", signed=True) == "+€1,500"
    assert fmt.euros(0.2, "en", signed=True) == "€0"


def test_round_trip_of_dutch_numbers() -> None:
    """Property: reading a Dutch number back (drop the points, comma → point) gives the rounded value."""
    for x in (0.5, 12.25, 999.95, 1000.0, 123456.789, 7e6):
        text = fmt.number(x, "nl", 2)
        assert float(text.replace(".", "").replace(",", ".")) == pytest.approx(round(x, 2))
        assert "," in text and text.count(",") == 1


def test_dates_and_odds() -> None:
    assert fmt.day(date(2026, 12, 1), "nl") == "1 december 2026"
    assert fmt.day("2026-12-01T02:50:00Z", "en") == "1 December 2026"
    assert fmt.day("2027-03-15T23:00:00+00:00", "nl") == "15 maart 2027"
    assert fmt.odds(math.exp(2.0), "nl") == "×7,4" and fmt.odds(math.exp(8.0), "en") == "×2,981"
    assert fmt.odds(math.exp(16.15), "nl") == "×10,3 miljoen" and fmt.odds(2.5e9, "en") == "×2.5 billion"
    assert fmt.count(12.4, "en") == "12" and fmt.count(2.45, "nl") == "2,5"
    assert fmt.count(5.0, "en", scale=20.0) == "5" and fmt.count(12.0, "nl", scale=2.0) == "12,0"


def test_check_lang_names_value_and_choices() -> None:
    assert fmt.check_lang("nl") == "nl"
    with pytest.raises(FedsimError, match=r"'de'.*allowed: nl, en"):
        fmt.check_lang("de")
