"""Calibration of a realistic world against Dutch figures (world.md §6), per fraud type and nationally.

* :func:`fraud_type_table` — per fraud type: cases, reporting, loss, multiplier, prevalence and the
  national extrapolation (multiplier divided out, scaled to :data:`NL_PERSONS_15PLUS`).
* :func:`calibration_table` — generated vs target for every row of :data:`CALIBRATION_TARGETS`, each with
  its source.

Everything here reads a finished :class:`~synthetic.world_data.World`; nothing is written back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthetic.schema import FRAUD_TYPES, HOUR
from synthetic.world_data import World

NL_PERSONS_15PLUS = 14_500_000
"""People aged 15+ in the Netherlands (CBS StatLine, 2022–2023: ≈ 14.5 million); national figures scale to it."""


@dataclass(frozen=True)
class CalibrationTarget:
    """One calibration row. ``low``/``high`` bound the pass range (inclusive; None = open).

    ``target`` is the central value when the source gives one (the range is then ±25 %). Context rows
    (``context=True``) are shown for orientation but never pass or fail.
    """

    key: str
    quantity: str
    unit: str
    target: float | None
    low: float | None
    high: float | None
    source: str
    note: str = ""
    context: bool = False
    ref: str = ""
    """Short citation for tables (e.g. "CBS 2022"); ``source`` holds the full one."""

    @property
    def target_text(self) -> str:
        if self.target is not None and self.low is not None and self.high is not None:
            return f"≈ {format_value(self.target, self.unit)} (±25%)"
        if self.low is not None and self.high is not None:
            return f"{format_value(self.low, self.unit)} – {format_value(self.high, self.unit)}"
        if self.high is not None:
            return f"< {format_value(self.high, self.unit)}"
        if self.low is not None:
            return f"≥ {format_value(self.low, self.unit)}"
        return "—" if self.target is None else f"≈ {format_value(self.target, self.unit)}"


def _pm25(target: float) -> tuple[float, float, float]:
    return target, 0.75 * target, 1.25 * target


_CBS_2022 = (
    "CBS, Online veiligheid en criminaliteit 2022 (2023), §4.1, table 4.1.1: % of people aged 15+ victim in 2022"
)
_NVB_2024 = "NVB, 11 March 2024: bank-helpdesk fraud in 2023 — almost 10,000 victims, €28M damage"
_PAYMENT_MAPPING = (
    "CBS 'fraude in het betalingsverkeer' = criminal got access to the victim's account (bancaire fraude) or "
    "the victim transferred money after spoofing (niet-bancaire, e.g. bank-helpdesk and WhatsApp fraud). "
    "fedsim maps it to helpdesk + whatsapp (persons as victims). Not included: invoice fraud (its victims are "
    "businesses, outside a survey of persons) and sale fraud's phishing link (counted under verkoopfraude)."
)

_T = CalibrationTarget
CALIBRATION_TARGETS: tuple[CalibrationTarget, ...] = (
    _T(
        "purchase_victims_pct",
        "purchase fraud victims per year",
        "%",
        *_pm25(5.6),
        ref="CBS 2022",
        source=f"{_CBS_2022} — aankoopfraude 5.6%",
    ),
    _T(
        "sale_victims_pct",
        "sale fraud victims per year",
        "%",
        *_pm25(1.3),
        ref="CBS 2022",
        source=f"{_CBS_2022} — verkoopfraude 1.3%",
    ),
    _T(
        "payment_victims_pct",
        "payment fraud victims per year (helpdesk + whatsapp)",
        "%",
        *_pm25(1.0),
        ref="CBS 2022",
        source=f"{_CBS_2022} — fraude betalingsverkeer 1.0%",
        note=_PAYMENT_MAPPING,
    ),
    _T(
        "purchase_loss_median",
        "purchase fraud loss, median",
        "EUR",
        None,
        None,
        50.0,
        ref="CBS 2022",
        source="CBS 2022: half of purchase-fraud victims lost < €50",
    ),
    _T(
        "purchase_loss_p75",
        "purchase fraud loss, 75th percentile",
        "EUR",
        None,
        None,
        100.0,
        ref="CBS 2022",
        source="CBS 2022: three quarters lost < €100",
    ),
    _T(
        "helpdesk_victims_nl",
        "bank-helpdesk victims per year, NL",
        "persons",
        *_pm25(10_000),
        ref="NVB 2024",
        source=_NVB_2024,
    ),
    _T("helpdesk_eur_nl", "bank-helpdesk loss per year, NL", "EUR", *_pm25(28e6), ref="NVB 2024", source=_NVB_2024),
    _T(
        "helpdesk_share_70plus",
        "share of bank-helpdesk victims aged 70+",
        "share",
        None,
        0.5,
        1.0,
        ref="BVN / police",
        note="'mostly' read as more than half",
        source="Betaalvereniging Nederland / police (2021–2023): victims are mostly elderly (70+)",
    ),
    _T(
        "whatsapp_loss_mean",
        "WhatsApp fraud loss, mean",
        "EUR",
        *_pm25(3_000),
        ref="Fraudehelpdesk",
        source="Fraudehelpdesk: average WhatsApp ('hi mum') fraud damage ≈ €3,000",
    ),
    _T(
        "whatsapp_loss_median",
        "WhatsApp fraud loss, median",
        "EUR",
        *_pm25(2_000),
        ref="Fraudehelpdesk / CBS",
        source="Fraudehelpdesk / CBS: half of the victims lose ≥ €2,000",
    ),
    _T(
        "victims_per_mule",
        "victims per mule account (all types)",
        "victims",
        None,
        1.0,
        3.0,
        ref="NVB 2024",
        source="NVB 2024: a mule account typically receives money of 1–3 victims",
    ),
    _T(
        "helpdesk_mules_nl",
        "mule accounts per year, NL (bank-helpdesk mules)",
        "accounts",
        *_pm25(5_300),
        ref="NVB / J&V 2024",
        source="NVB figures to the Minister of Justice and Security, Dec 2024: ≈5,300 accounts blocked for fraud "
        "in 2023, 'often mules used for WhatsApp and bank-helpdesk fraud'",
        note="counts bank-helpdesk mules (multiplier divided out): the 5,300 are accounts banks *blocked*, a "
        "subset of all mules. All types together cannot match it: ≈1% of persons are payment-fraud victims "
        "(≈140k a year), which at ≤ 3 victims per mule needs ≥ 45k accounts (see the all-types context row)",
    ),
    _T(
        "helpdesk_contact_to_loss_h",
        "bank-helpdesk call → first money-out, median",
        "hours",
        None,
        1.0,
        2.0,
        ref="press",
        source="press reports (anecdotal): the money is gone within 1–2 hours of the call",
    ),
    # ---- context rows: shown for orientation, never pass/fail
    _T(
        "online_crime_pct",
        "victims of any modelled online fraud per year",
        "%",
        15.0,
        None,
        None,
        ref="CBS VM 2022–23",
        context=True,
        source="CBS Veiligheidsmonitor 2022–2023: ≈15–16% of people aged 15+ victim of online crime (≈2.2M)",
        note="NOT MODELLED FULLY: CBS counts hacking, online threats, identity fraud and more, which fedsim "
        "does not generate; not pass/fail",
    ),
    _T(
        "online_fraud_pct",
        "victims of any modelled online fraud per year (fraud only)",
        "%",
        7.6,
        None,
        None,
        ref="CBS 2022",
        context=True,
        source=f"{_CBS_2022} — online oplichting en fraude totaal 7.6%",
        note="CBS also counts phishing and identity fraud, which fedsim does not model separately",
    ),
    _T(
        "helpdesk_loss_mean",
        "bank-helpdesk loss per victim, mean",
        "EUR",
        None,
        8_000,
        10_000,
        ref="police 2021",
        context=True,
        source="police / Betaalvereniging press 2021: '≈€8–10k per victim'",
        note="inconsistent with NVB 2023 (€28M / 10,000 ≈ €2,800); fedsim follows NVB",
    ),
    _T(
        "all_mules_nl",
        "mule accounts per year, NL (all types)",
        "accounts",
        None,
        None,
        None,
        ref="—",
        context=True,
        source="no public figure",
        note="every type's mules, multiplier divided out",
    ),
)
"""Every calibration target with its source; :func:`calibration_table` compares a world against them."""


def format_value(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "share":
        return f"{100 * value:.0f}%"
    if unit == "EUR":
        if abs(value) >= 1e6:
            return f"€{value / 1e6:.1f}M"
        return f"€{value / 1e3:.0f}k" if abs(value) >= 1e5 else f"€{value:,.0f}"
    if unit == "hours":
        return f"{value:.2f} h"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


# ------------------------------------------------------------------------------------------------
# Per fraud type, with the national extrapolation
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scale:
    persons: int
    years: float

    def per_person_year(self, count: float, multiplier: float) -> float:
        """Share of persons per year with the study multiplier divided out."""
        return count / multiplier / self.persons / self.years

    def national(self, count: float, multiplier: float) -> float:
        """Count per year in the Netherlands: per person-year × people aged 15+."""
        return self.per_person_year(count, multiplier) * NL_PERSONS_15PLUS


def _scale(world: World) -> _Scale:
    return _Scale(persons=world.config.population.persons, years=world.config.population.days / 365.0)


def _mules(world: World) -> pd.DataFrame:
    """Mule accounts at partner banks per fraud type: cases paying into them and distinct accounts.

    A mule entity is the mule's customer at its bank; every mule person serves one account (assign_mules
    never recruits a person twice), so distinct customers = distinct mule accounts.
    """
    cases = world.truth_table("cases")[["case_id", "fraud_type"]]
    ce = world.truth_table("case_entities")
    mule = ce[ce["role"] == "mule"].merge(cases, on="case_id")
    mule = mule.assign(account=mule["partner"] + ":" + mule["entity_id"].astype(str))
    return (
        mule.groupby("fraud_type")
        .agg(cases=("case_id", "nunique"), accounts=("account", "nunique"))
        .reindex(list(FRAUD_TYPES))
        .fillna(0)
    )


def fraud_type_table(world: World) -> list[dict[str, Any]]:
    """One row per fraud type: cases, reporting, loss, multiplier, prevalence and national extrapolation.

    ``per_100k_year`` = cases ÷ multiplier ÷ persons ÷ years × 100,000; ``nl_victims_year`` scales it to
    :data:`NL_PERSONS_15PLUS`; ``nl_eur_year`` = national victims × mean loss. ``victims_per_mule`` = cases
    paying into a mule at a partner bank ÷ those mule accounts.
    """
    cases = world.truth_table("cases")
    sc, mules = _scale(world), _mules(world)
    out = []
    for ft in FRAUD_TYPES:
        c = cases[cases["fraud_type"] == ft]
        lost = c[c["t_loss"] >= 0]["loss_eur"]
        mult = world.config.fraud[ft].multiplier
        m_cases, m_accts = float(mules.loc[ft, "cases"]), float(mules.loc[ft, "accounts"])
        out.append(
            {
                "fraud_type": ft,
                "cases": len(c),
                "victims": int(c["victim_person_id"].nunique()),
                "reported_share": float(c["reported"].mean()) if len(c) else None,
                "loss_total_eur": float(lost.sum()),
                "loss_mean_eur": _stat(lost, "mean"),
                "loss_median_eur": _stat(lost, "median"),
                "multiplier": mult,
                "per_100k_year": sc.per_person_year(len(c), mult) * 1e5,
                "nl_victims_year": sc.national(len(c), mult),
                "nl_eur_year": sc.national(len(c), mult) * (_stat(lost, "mean") or 0.0),
                "victims_per_mule": m_cases / m_accts if m_accts else None,
                "mule_accounts_partner_banks": int(m_accts),
            }
        )
    return out


def _stat(values: pd.Series, how: str) -> float | None:
    if len(values) == 0:
        return None
    return float(values.mean() if how == "mean" else values.median())


# ------------------------------------------------------------------------------------------------
# Calibration
# ------------------------------------------------------------------------------------------------
def calibration_quantities(world: World) -> dict[str, tuple[float | None, int]]:
    """Generated value and the count it rests on, per :data:`CALIBRATION_TARGETS` key (realistic worlds).

    Prevalences are victims ÷ multiplier ÷ persons ÷ years (in %); national counts scale that to
    :data:`NL_PERSONS_15PLUS`; mule accounts per year = national victims ÷ victims per mule.
    """
    cases = world.truth_table("cases")
    persons = world.truth_table("persons")[["person_id", "age"]]
    types = {r["fraud_type"]: r for r in fraud_type_table(world)}
    sc = _scale(world)

    def pct(*fts: str) -> tuple[float, int]:
        return (
            100 * sum(sc.per_person_year(types[f]["victims"], types[f]["multiplier"]) for f in fts),
            sum(types[f]["victims"] for f in fts),
        )

    def loss(ft: str, q: float | str) -> tuple[float | None, int]:
        v = cases[(cases["fraud_type"] == ft) & (cases["t_loss"] >= 0)]["loss_eur"]
        if len(v) == 0:
            return None, 0
        return (float(v.mean()) if q == "mean" else float(np.quantile(v, float(q)))), len(v)

    hd = cases[cases["fraud_type"] == "helpdesk"]
    hd_age = hd.merge(persons, left_on="victim_person_id", right_on="person_id")["age"]
    hd_lost = hd[hd["t_loss"] >= 0]
    mules = _mules(world)
    m_cases, m_accts = float(mules["cases"].sum()), float(mules["accounts"].sum())

    def nl_mules(*fts: str) -> tuple[float | None, int]:
        rows = [types[f] for f in fts if types[f]["victims_per_mule"]]
        return (
            sum(r["nl_victims_year"] / r["victims_per_mule"] for r in rows) if rows else None,
            sum(r["mule_accounts_partner_banks"] for r in rows),
        )

    all_types = tuple(FRAUD_TYPES)
    return {
        "purchase_victims_pct": pct("purchase"),
        "sale_victims_pct": pct("sale"),
        "payment_victims_pct": pct("helpdesk", "whatsapp"),
        "purchase_loss_median": loss("purchase", 0.5),
        "purchase_loss_p75": loss("purchase", 0.75),
        "helpdesk_victims_nl": (types["helpdesk"]["nl_victims_year"], types["helpdesk"]["victims"]),
        "helpdesk_eur_nl": (types["helpdesk"]["nl_eur_year"], types["helpdesk"]["victims"]),
        "helpdesk_share_70plus": ((float((hd_age >= 70).mean()) if len(hd_age) else None), len(hd_age)),
        "whatsapp_loss_mean": loss("whatsapp", "mean"),
        "whatsapp_loss_median": loss("whatsapp", 0.5),
        "victims_per_mule": ((m_cases / m_accts) if m_accts else None, int(m_accts)),
        "helpdesk_mules_nl": nl_mules("helpdesk"),
        "helpdesk_contact_to_loss_h": (
            (float(((hd_lost["t_loss"] - hd_lost["ts_contact"]) / HOUR).median()) if len(hd_lost) else None),
            len(hd_lost),
        ),
        "online_crime_pct": pct(*all_types),
        "online_fraud_pct": pct(*all_types),
        "helpdesk_loss_mean": loss("helpdesk", "mean"),
        "all_mules_nl": nl_mules(*all_types),
    }


def calibration_table(world: World) -> list[dict[str, Any]]:
    """Generated vs target for every :data:`CALIBRATION_TARGETS` row.

    Each row: key, quantity, unit, generated, n (count behind it), target (text), low, high, ok (True /
    False, None for context rows or when nothing was generated), context, source, note.
    """
    values = calibration_quantities(world)
    rows = []
    for t in CALIBRATION_TARGETS:
        value, n = values[t.key]
        ok = (
            None
            if t.context or value is None
            else ((t.low is None or value >= t.low) and (t.high is None or value <= t.high))
        )
        rows.append(
            {
                "key": t.key,
                "quantity": t.quantity,
                "unit": t.unit,
                "generated": value,
                "n": n,
                "target": t.target_text,
                "low": t.low,
                "high": t.high,
                "ok": ok,
                "context": t.context,
                "ref": t.ref,
                "source": t.source,
                "note": t.note,
            }
        )
    return rows
