"""Numbers, money, shares and dates as a Dutch or an English reader writes them.

Dutch (Taalunie, "getallen"): a comma before the decimals and a point between thousands (1.234,5), a (no-break)
space after the euro sign (€ 1,2 mln), no space before the per-cent sign (12%), month names in lower case
(1 december 2026). English: 1,234.5; €1.2M; 12%; 1 December 2026. The minus sign is U+2212, which reads better
than a hyphen and is in the report's font.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

from fedsim.errors import FedsimError

Lang = Literal["nl", "en"]
LANGS: tuple[Lang, ...] = ("nl", "en")
MINUS = "\u2212"
NBSP = "\u00a0"  # the space in "€ 1,2 mln": a line never breaks between the euro sign and the amount

_MONTHS = {
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "en": "January February March April May June July August September October November December",
}
# Large euro amounts: (threshold, English suffix, Dutch word).
_SCALES = ((1e9, "bn", "mld"), (1e6, "M", "mln"))


def number(x: float, lang: Lang, decimals: int = 0, *, signed: bool = False) -> str:
    """``x`` rounded to ``decimals`` with the language's separators: 1234.5 → "1.234,5" (nl), "1,234.5" (en).

    signed: prefix "+" for positive values (for differences). Non-finite values read "∞", "−∞" or "–".
    """
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else MINUS + "∞"
    text = f"{abs(x):,.{decimals}f}"
    if lang == "nl":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    if round(abs(x), decimals) == 0:  # −0.0 reads as 0, without a sign
        return text
    if x < 0:
        return MINUS + text
    return "+" + text if signed else text


def percent(share: float, lang: Lang, decimals: int = 1, *, signed: bool = False) -> str:
    """A share (0.123) as per cent: "12,3%" (nl), "12.3%" (en)."""
    return number(100 * share, lang, decimals, signed=signed) + "%"


def euros(x: float, lang: Lang, *, signed: bool = False) -> str:
    """Euros for a reader: whole euros below a million (€ 9.600 / €9,600), then one decimal with the scale word
    (€ 1,2 mln / €1.2M, € 3,4 mld / €3.4bn)."""
    if not math.isfinite(x):
        return number(x, lang)
    body = number(abs(x), lang, 0)
    for threshold, en_word, nl_word in _SCALES:
        if abs(x) >= threshold:
            scaled = number(abs(x) / threshold, lang, 1)
            body = f"{scaled}{NBSP}{nl_word}" if lang == "nl" else f"{scaled}{en_word}"
            break
    nonzero = round(abs(x)) > 0
    sign = MINUS if x < 0 and nonzero else ("+" if signed and nonzero and x > 0 else "")
    return f"{sign}€{NBSP}{body}" if lang == "nl" else f"{sign}€{body}"


def count(x: float, lang: Lang, *, signed: bool = False, scale: float | None = None) -> str:
    """A number of cases (an average over seeds, so not always whole): whole from 10 on, one decimal below.

    scale: decide the decimals by this magnitude instead of ``x``'s, so the ends of a range read alike.
    """
    return number(x, lang, 0 if abs(x if scale is None else scale) >= 10 else 1, signed=signed)


_BIG_WORDS = ((1e9, "billion", "miljard"), (1e6, "million", "miljoen"))


def odds(multiplier: float, lang: Lang) -> str:
    """An odds multiplier e^ε: "×7,4" (nl), "×7.4" (en); whole numbers from 100 on, and in words from a million
    ("×10,3 miljoen", "×10.3 million"): a large ε gives numbers no reader can take in digit by digit."""
    if not math.isfinite(multiplier):  # e^ε beyond floating point (fedsim.privacy.odds_factor)
        return "meer dan ×1.000 miljard" if lang == "nl" else "more than ×1,000 billion"
    for threshold, en_word, nl_word in _BIG_WORDS:
        if multiplier >= threshold and math.isfinite(multiplier):
            return f"×{number(multiplier / threshold, lang, 1)} {nl_word if lang == 'nl' else en_word}"
    return "×" + number(multiplier, lang, 0 if multiplier >= 100 else 1)


def epsilon(eps: float, lang: Lang) -> str:
    """ε with two decimals below 10 and one above."""
    return number(eps, lang, 2 if abs(eps) < 10 else 1)


def day(when: date | datetime | str, lang: Lang) -> str:
    """A date in words: "1 december 2026" (nl), "1 December 2026" (en). Takes ISO 8601 text too."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return f"{when.day} {_MONTHS[lang].split()[when.month - 1]} {when.year}"


def check_lang(lang: str) -> Lang:
    """``lang`` if it is a report language, else a ValueError naming the value and the choices."""
    if lang not in LANGS:
        raise FedsimError(f"language {lang!r} is not a report language; allowed: {', '.join(LANGS)}")
    return lang
