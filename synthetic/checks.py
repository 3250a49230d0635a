"""Validity checks shipped with the generator (world.md §6, §8): describe, calibrate, screen for leaks.

* :func:`describe_world` — rows per table, per fraud type cases / reporting / loss / multiplier, national
  extrapolation (multiplier divided out, scaled to :data:`NL_PERSONS_15PLUS`), the calibration table and
  (optionally) the leak screen. A JSON-serialisable dict; ``fedsim world describe`` prints it with
  :func:`render_description`.
* :func:`calibration_table` — generated vs target for every row of :data:`CALIBRATION_TARGETS`.
* :func:`leak_screen` — four screens against the hidden truth:
  1. single-column ROC-AUC of every partner column (per fraud type; ≥ 0.8 and not in
     :data:`DESIGNED_SIGNALS` is a leak),
  2. a metadata-only model (ids, row order, timestamp quirks) that must score AUC in [0.45, 0.55],
  3. no partner column named like truth (case / phase / role / crew / truth),
  4. join-key presence independent of being a victim or mule (two-proportion tests).

Labels come from the truth: ``truth/provenance`` names every partner row a case injected (event tables);
``truth/case_entities`` names every partner entity that took part in a case (entity tables).

Everything here reads a finished :class:`~synthetic.world.World`; nothing is written back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from synthetic.schema import FRAUD_TYPES
from synthetic.world import World

NL_PERSONS_15PLUS = 14_500_000
"""People aged 15+ in the Netherlands (CBS StatLine, 2022–2023: ≈ 14.5 million); national figures scale to it."""

LEAK_AUC = 0.8
"""A single column whose AUC (either direction) reaches this and is not a designed signal is a leak."""
METADATA_AUC_RANGE = (0.45, 0.55)
"""The out-of-fold AUC a metadata-only model must stay within."""
KEY_PRESENCE_ALPHA = 0.01
"""Family-wise significance level of the key-presence tests (Bonferroni over the tests run)."""


# ================================================================================================
# Calibration targets (world.md §6)
# ================================================================================================
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
            return f"≈ {_fmt(self.target, self.unit)} (±25%)"
        if self.low is not None and self.high is not None:
            return f"{_fmt(self.low, self.unit)} – {_fmt(self.high, self.unit)}"
        if self.high is not None:
            return f"< {_fmt(self.high, self.unit)}"
        if self.low is not None:
            return f"≥ {_fmt(self.low, self.unit)}"
        return "—" if self.target is None else f"≈ {_fmt(self.target, self.unit)}"


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


# ================================================================================================
# Designed signals (world.md §3): columns that are *meant* to carry fraud evidence
# ================================================================================================
DESIGNED_SIGNALS: dict[str, str] = {
    # bank
    "bank.transactions.amount_eur": "helpdesk transfers near the limit; large invoice payments",
    "bank.transactions.new_payee": "fraud pays a first-time payee (mule)",
    "bank.transactions.name_check": "IBAN-name check mismatch on the mule transfer",
    "bank.transactions.is_instant": "instant transfers to the mule; fast cash-out",
    "bank.transactions.kind": "cash-out to crypto / ATM; helpdesk savings → current move",
    "bank.transactions.direction": "mule accounts receive (fan-in) and forward",
    "bank.transactions.channel": "cash-out at ATMs; invoice payments from business banking (web)",
    "bank.transactions.counterparty_bank": "cash-out to crypto exchanges / ATMs has no counterparty bank",
    "bank.transactions.counterparty_iban_hash": "cash-out without a counterparty (ATM)",
    "bank.accounts.product": "helpdesk moves savings → current; invoice fraud pays from business accounts",
    "bank.accounts.opened_ts": "mules use freshly opened accounts",
    "bank.accounts.daily_limit_eur": "fresh mule accounts",
    "bank.sessions.new_device": "login from a crew / phishing device",
    "bank.sessions.remote_access_tool": "remote-access tool during the helpdesk call",
    "bank.customers.age_band": "victim age skew per type (helpdesk victims are old)",
    "bank.customers.is_business": "invoice-fraud victims are businesses",
    "bank.customers.customer_since": "follows age (old victims are long-standing customers)",
    # telco
    "telco.calls.caller_id_mismatch": "spoofed bank caller-ID on an international trunk",
    "telco.calls.origin": "spoofed calls enter on an international trunk",
    "telco.calls.duration_s": "long helpdesk call",
    "telco.calls.kind": "WhatsApp / sale fraud texts; helpdesk calls",
    "telco.calls.direction": "burners spray outgoing messages",
    "telco.calls.presented_caller_id_hash": "the bank's own number presented by spoofers",
    "telco.sim_events.event": "crew activates prepaid SIMs",
    "telco.sim_events.handset_hash": "several burner SIMs on one crew handset",
    "telco.subscribers.prepaid": "burners are prepaid",
    "telco.subscribers.activated_ts": "burners are new numbers",
    "telco.subscribers.age_band": "burners are anonymous prepaid (null); victim age skew",
    # marketplace
    "marketplace.users.created_ts": "fake accounts created just before use",
    "marketplace.users.phone_hash": "crew accounts may lack a verified phone (presence designed)",
    "marketplace.users.payout_iban_hash": "fake sellers always set a payout IBAN, fake buyers never (designed)",
    "marketplace.users.device_hash": "crew accounts share devices",
    "marketplace.listings.price_ratio": "cheap listing",
    "marketplace.listings.price_eur": "cheap listing",
    "marketplace.listings.photos_reused": "reused photos",
    "marketplace.listings.user_id": "one fake seller lists for several victims",
    "marketplace.messages.contains_phone": "chat asks for / gives a phone number",
    "marketplace.messages.contains_iban": "chat gives the mule's IBAN",
    "marketplace.messages.contains_url": "fake payment link",
    "marketplace.messages.asks_off_platform": "asks to pay or talk outside the platform",
    "marketplace.orders.payment_method": "purchase fraud is paid by bank transfer",
    "marketplace.orders.shipping_label_ts": "goods never shipped",
    "marketplace.orders.delivered_ts": "goods never delivered",
    "marketplace.orders.amount_eur": "purchase-fraud loss distribution",
}
"""``kind.table.column`` → why the column is meant to separate fraud. Joined features count as the joined
table's column (e.g. ``bank.accounts.product`` for transactions joined with accounts)."""

DESIGNED_KEY_GAPS: dict[str, str] = {
    "marketplace.users.phone_hash:fraudster": "crew-made accounts often have no verified phone (70% burner)",
    "marketplace.users.payout_iban_hash:fraudster": "fake sellers need a payout IBAN, fake buyers have none",
}
"""Join-key presence that depends on the role by design (``kind.table.key:role``)."""

TRUTH_WORDS = ("case", "phase", "role", "crew", "truth")
"""No partner column may be named like these (hidden truth)."""

EVENT_TABLES: dict[str, tuple[str, ...]] = {
    "bank": ("transactions", "sessions"),
    "telco": ("sim_events", "calls"),
    "marketplace": ("listings", "messages", "orders"),
}
ENTITY_TABLES: dict[str, dict[str, str]] = {
    "bank": {"customers": "customer_id", "accounts": "customer_id"},
    "telco": {"subscribers": "subscriber_id"},
    "marketplace": {"users": "user_id"},
}
"""Entity tables and the column naming the entity (an account row belongs to its customer)."""

JOINS: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("bank", "transactions"): ("accounts", "account_id", ("product", "opened_ts", "daily_limit_eur")),
    ("marketplace", "listings"): ("users", "user_id", ("created_ts",)),
}
"""Event table → (entity table, key, columns): joined columns screened too (a leak can hide in a join)."""

KEY_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "bank": {"customers": ("phone_hash", "email_hash")},
    "marketplace": {"users": ("phone_hash", "email_hash", "payout_iban_hash")},
}


# ================================================================================================
# Small statistics, each cited
# ================================================================================================
def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC-AUC as the Mann–Whitney statistic: P(score⁺ > score⁻) + ½ P(tie).

    AUC = (R⁺ − n⁺(n⁺+1)/2) / (n⁺ n⁻), R⁺ the sum of the positives' mid-ranks (Hanley & McNeil 1982,
    Radiology 143:29, eq. 1; Mason & Graham 2002). Args: scores (n,), labels (n,) bool. NaN if a class is empty.
    """
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_standard_error(auc: float, *, n_pos: int, n_neg: int) -> float:
    """Standard error of an AUC (Hanley & McNeil 1982, eq. 2) with Q1 = A/(2−A), Q2 = 2A²/(1+A).

    Assumes independent rows; rows of one case are correlated, so read it as a lower bound.
    """
    if n_pos == 0 or n_neg == 0 or math.isnan(auc):
        return float("nan")
    q1, q2 = auc / (2.0 - auc), 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def cluster_jackknife_auc_se(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Standard error of an AUC whose positives come in clusters (rows of one crew), by the jackknife.

    The Mann–Whitney count splits over positives, U = Σ_p c_p with c_p = #{negatives below s_p} + ½ #{ties},
    so leaving cluster g out gives AUC₋g = (U − Σ_{p∈g} c_p) / ((n⁺ − n_g) n⁻) without re-ranking. The
    delete-one-group jackknife variance is (G−1)/G · Σ_g (AUC₋g − mean)² (Efron & Tibshirani 1993, §11.2;
    for clustered ROC data, Obuchowski 1997, Biometrics 53:567). NaN with fewer than two clusters.
    """
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups)[y]
    neg = np.sort(s[~y])
    lo, hi = np.searchsorted(neg, s[y], side="left"), np.searchsorted(neg, s[y], side="right")
    c = lo + 0.5 * (hi - lo)
    uniq, inv = np.unique(g, return_inverse=True)
    if len(uniq) < 2 or len(neg) == 0:
        return float("nan")
    per_group_c = np.bincount(inv, weights=c)
    per_group_n = np.bincount(inv)
    jack = (c.sum() - per_group_c) / ((len(c) - per_group_n) * len(neg))
    n_groups = len(uniq)
    return float(math.sqrt((n_groups - 1) / n_groups * np.sum((jack - jack.mean()) ** 2)))


def two_proportion_p_value(*, hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value of H0: p_a = p_b, pooled two-proportion z-test.

    z = (p̂_a − p̂_b) / √(p̂(1−p̂)(1/n_a + 1/n_b)), p̂ the pooled share; z² is Pearson's χ² of the 2×2 table
    without continuity correction (Agresti, Categorical Data Analysis, 3rd ed. 2013, §3.1). Returns 1.0 when
    both groups are all-present or all-absent (no evidence of a difference).
    """
    if n_a <= 0 or n_b <= 0:
        return float("nan")
    pooled = (hits_a + hits_b) / (n_a + n_b)
    var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if var <= 0:
        return 1.0
    z = (hits_a / n_a - hits_b / n_b) / math.sqrt(var)
    return math.erfc(abs(z) / math.sqrt(2.0))


# ================================================================================================
# describe_world
# ================================================================================================
def describe_world(world: World, screen: bool = True) -> dict[str, Any]:
    """Everything a researcher wants to see first about a world, as a JSON-serialisable dict.

    Keys: ``summary``, ``rows`` (partner → table → rows; ``truth`` → table → rows), and for realistic worlds
    ``fraud_types`` (one row per type), ``calibration`` (see :func:`calibration_table`) and, if ``screen``,
    ``leak_screen`` (see :func:`leak_screen`); for known-answer worlds ``known_answer`` (closed-form AUCs).
    """
    desc: dict[str, Any] = {"summary": _summary(world), "rows": _rows(world)}
    if world.config.mode == "known_answer":
        desc["known_answer"] = _known_answer(world)
        return _jsonable(desc)
    desc["fraud_types"] = fraud_type_table(world)
    desc["calibration"] = calibration_table(world)
    desc["calibration_ok"] = all(r["ok"] for r in desc["calibration"] if r["ok"] is not None)
    if screen:
        desc["leak_screen"] = leak_screen(world)
    return _jsonable(desc)


def _summary(world: World) -> dict[str, Any]:
    cfg = world.config
    out: dict[str, Any] = {
        "mode": cfg.mode,
        "seed": world.seed,
        "content_hash": world.content_hash,
        "partners": {n: p.kind for n, p in world.partners.items()},
    }
    if cfg.mode == "known_answer":
        out.update(persons=cfg.known_answer.entities, days=cfg.known_answer.days)
    else:
        out.update(
            persons=cfg.population.persons,
            days=cfg.population.days,
            start_date=cfg.population.start_date,
            multipliers={ft: c.multiplier for ft, c in cfg.fraud.items()},
            barriers=[b.model_dump(mode="json") for b in cfg.barriers],
        )
    return out


def _rows(world: World) -> dict[str, dict[str, int]]:
    rows = {p: {t: tbl.num_rows for t, tbl in pv.tables.items()} for p, pv in world.partners.items()}
    rows["truth"] = {t: tbl.num_rows for t, tbl in world.truth.items()}
    return rows


def _known_answer(world: World) -> dict[str, Any]:
    from synthetic.known_answer import coalition_optimal_auc, partner_shifts

    shifts = partner_shifts(world.config)
    per_partner = [
        {"partner": p, "shift": d, "optimal_auc": coalition_optimal_auc(world.config, [p])} for p, d in shifts.items()
    ]
    return {
        "cases": world.truth["cases"].num_rows,
        "prevalence": world.config.known_answer.prevalence,
        "partners": per_partner,
        "all_partners_optimal_auc": coalition_optimal_auc(world.config, list(shifts)),
        "formula": "Φ(√(Σ d_p²)/√2) per person group; grouped over banks (synthetic.known_answer)",
    }


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
            (float(((hd_lost["t_loss"] - hd_lost["ts_contact"]) / 3600.0).median()) if len(hd_lost) else None),
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


# ================================================================================================
# Leak screen
# ================================================================================================
def leak_screen(
    world: World,
    *,
    max_negatives: int = 20_000,
    max_positives: int = 5_000,
    seed: int = 0,
    only: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The four screens of world.md §8 on samples of every partner table (realistic worlds).

    Args:
        only: restrict the screens to these ``partner/table`` names (default: every table).
        max_negatives: legitimate rows sampled per table (count).
        max_positives: fraud rows sampled per table and type (count).
        seed: sampling seed (the screen is deterministic for a given world and seed).
    Returns a dict with ``single_column`` (rows sorted by separation), ``leaks`` (undesigned, ≥ LEAK_AUC),
    ``designed_signals`` (designed, ≥ LEAK_AUC), ``metadata_model``, ``truth_named_columns``,
    ``key_presence`` and one verdict per screen plus ``ok`` (all pass).
    """
    truth = _Truth.of(world)
    rng = np.random.default_rng(seed)
    chosen = None if only is None else set(only)
    samples = list(_samples(world, truth, rng, max_negatives=max_negatives, max_positives=max_positives, only=chosen))
    single = single_column_screen(samples)
    meta = metadata_model_screen(samples, truth, seed=seed)
    named = [c for c in truth_named_columns(world) if chosen is None or c.split(".")[0] in chosen]
    keys = key_presence_screen(world, truth, only=chosen)
    leaks = [r for r in single if r["leak"]]
    designed = [r for r in single if r["designed"] and r["separation"] >= LEAK_AUC]
    out: dict[str, Any] = {
        "single_column": single,
        "leaks": leaks,
        "designed_signals": designed,
        "metadata_model": meta,
        "truth_named_columns": named,
        "key_presence": keys,
        "verdicts": {
            "single_column": not leaks,
            "metadata_model": all(r["ok"] is not False for r in meta),
            "truth_named_columns": not named,
            "key_presence": all(r["ok"] is not False for r in keys),
        },
        "thresholds": {
            "leak_auc": LEAK_AUC,
            "metadata_auc_range": list(METADATA_AUC_RANGE),
            "key_presence_alpha": KEY_PRESENCE_ALPHA,
        },
    }
    out["ok"] = all(out["verdicts"].values())
    return _jsonable(out)


@dataclass
class _Truth:
    """Truth lookups the screens share: case → type / crew; partner → entity → (types, role)."""

    case_type: dict[int, str]
    case_crew: dict[int, int]
    provenance: pd.DataFrame
    entity_types: dict[str, dict[int, set[str]]]
    entity_cases: dict[str, dict[int, int]]
    entity_role: dict[str, dict[int, str]]
    case_roles: dict[str, dict[int, set[str]]]

    @classmethod
    def of(cls, world: World) -> _Truth:
        cases = world.truth_table("cases")
        case_type = dict(zip(cases["case_id"].tolist(), cases["fraud_type"].tolist(), strict=True))
        case_crew = dict(zip(cases["case_id"].tolist(), cases["crew_id"].tolist(), strict=True))
        ce = world.truth_table("case_entities")
        ent = world.truth_table("entities")
        types: dict[str, dict[int, set[str]]] = {}
        first_case: dict[str, dict[int, int]] = {}
        roles: dict[str, dict[int, set[str]]] = {}
        for p, e, c, r in zip(ce["partner"], ce["entity_id"].tolist(), ce["case_id"].tolist(), ce["role"], strict=True):
            types.setdefault(p, {}).setdefault(e, set()).add(case_type[c])
            first_case.setdefault(p, {}).setdefault(e, c)
            roles.setdefault(p, {}).setdefault(e, set()).add(r)
        role = {
            p: dict(zip(g["entity_id"].tolist(), g["role"].tolist(), strict=True)) for p, g in ent.groupby("partner")
        }
        return cls(
            case_type=case_type,
            case_crew=case_crew,
            provenance=world.truth_table("provenance"),
            entity_types=types,
            entity_cases=first_case,
            entity_role=role,
            case_roles=roles,
        )


@dataclass
class _Sample:
    """Sampled rows of one partner table with their labels (fraud type per row, "" = legitimate)."""

    partner: str
    kind: str
    table: str
    table_rows: int
    rows: np.ndarray  # row numbers in the full table
    label: np.ndarray  # object: fraud type or ""
    group: np.ndarray  # int64: crew of the case (positives) or a unique id (negatives) — for CV folds
    data: pa.Table  # the sampled rows (+ joined columns, named "<table>.<column>")
    full: pa.Table  # the whole table (for counting look-alikes)
    full_label: np.ndarray


def _row_labels(truth: _Truth, partner: str, table: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Event table: fraud type and case of every row from provenance ("" / -1 for legitimate rows)."""
    prov = truth.provenance
    p = prov[(prov["partner"] == partner) & (prov["table"] == table)]
    label = np.full(n, "", dtype=object)
    case = np.full(n, -1, dtype=np.int64)
    rows = p["row"].to_numpy(dtype=np.int64)
    label[rows] = [truth.case_type[c] for c in p["case_id"].tolist()]
    case[rows] = p["case_id"].to_numpy(dtype=np.int64)
    return label, case


def _entity_labels(truth: _Truth, partner: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entity table: "+"-joined fraud types of the entity's cases; "" for ordinary people in no case; None for
    entities left out of the comparison (e.g. a crew member's own account that took part in no case)."""
    types = truth.entity_types.get(partner, {})
    first = truth.entity_cases.get(partner, {})
    role = truth.entity_role.get(partner, {})
    label = np.empty(len(ids), dtype=object)
    case = np.full(len(ids), -1, dtype=np.int64)
    for i, e in enumerate(ids.tolist()):
        if e in types:
            label[i] = "+".join(sorted(types[e]))
            case[i] = first[e]
        else:
            label[i] = "" if role.get(e, "ordinary") == "ordinary" else None
    return label, case


def _samples(
    world: World,
    truth: _Truth,
    rng: np.random.Generator,
    *,
    max_negatives: int,
    max_positives: int,
    only: set[str] | None = None,
) -> Iterable[_Sample]:
    for partner, view in world.partners.items():
        kind = view.kind
        tables = [(t, None) for t in EVENT_TABLES.get(kind, ())] + list(ENTITY_TABLES.get(kind, {}).items())
        for table, id_col in tables:
            if table not in view.tables or (only is not None and f"{partner}/{table}" not in only):
                continue
            full = view.tables[table]
            n = full.num_rows
            if id_col is None:
                label, case = _row_labels(truth, partner, table, n)
            else:
                label, case = _entity_labels(truth, partner, full.column(id_col).to_numpy())
            pick = _pick_rows(rng, label, max_negatives=max_negatives, max_positives=max_positives)
            group = np.where(case[pick] >= 0, [truth.case_crew.get(int(c), -2) for c in case[pick]], -10 - pick).astype(
                np.int64
            )
            data = _with_joins(view.tables, kind, table, full.take(pa.array(pick)))
            yield _Sample(
                partner=partner,
                kind=kind,
                table=table,
                table_rows=n,
                rows=pick,
                label=label[pick],
                group=group,
                data=data,
                full=full,
                full_label=label,
            )


def _pick_rows(rng: np.random.Generator, label: np.ndarray, *, max_negatives: int, max_positives: int) -> np.ndarray:
    """All legit rows up to max_negatives, and up to max_positives rows of each fraud label; sorted."""
    picked = []
    for value in sorted({v for v in label.tolist() if v is not None}):
        rows = np.flatnonzero(label == value)
        cap = max_negatives if value == "" else max_positives
        picked.append(rng.choice(rows, size=cap, replace=False) if len(rows) > cap else rows)
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _with_joins(tables: dict[str, pa.Table], kind: str, table: str, data: pa.Table) -> pa.Table:
    """Add the columns of the entity table an event row points at (named ``<entity table>.<column>``)."""
    if (kind, table) not in JOINS:
        return data
    other, key, cols = JOINS[(kind, table)]
    ref = tables[other]
    ref_keys = ref.column(key).to_numpy()
    order = np.argsort(ref_keys, kind="stable")
    keys = data.column(key).to_numpy()
    pos = np.clip(np.searchsorted(ref_keys[order], keys), 0, max(len(order) - 1, 0))
    idx = order[pos] if len(order) else pos
    found = (ref_keys[idx] == keys) if len(order) else np.zeros(len(keys), bool)
    for col in cols:
        values = ref.column(col).take(pa.array(idx))
        data = data.append_column(
            f"{other}.{col}", pc.if_else(pa.array(found), values, pa.nulls(len(keys), values.type))
        )
    return data


# ------------------------------------------------------------------------------------------------
# 1. Single-column screen
# ------------------------------------------------------------------------------------------------
def _features(name: str, col: pa.ChunkedArray, *, max_levels: int = 40) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """One column → (feature name, values (float), defined mask).

    Numbers and booleans as they are (null rows left out); a null indicator when the column has nulls;
    strings one-hot per level (target-free, the sample's most frequent ``max_levels`` levels).
    """
    n = len(col)
    out: list[tuple[str, np.ndarray, np.ndarray]] = []
    nulls = col.is_null().to_numpy(zero_copy_only=False)
    everywhere = np.ones(n, dtype=bool)
    if nulls.any():
        out.append((f"{name} is null", nulls.astype(np.float64), everywhere))
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        values = np.asarray(col.to_pylist(), dtype=object)
        counts = pd.Series(values[~nulls]).value_counts()
        for level in counts.index[:max_levels]:
            out.append((f"{name}={level}", (values == level).astype(np.float64), everywhere))
    elif pa.types.is_boolean(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        filled = pc.fill_null(col, False if pa.types.is_boolean(col.type) else 0)
        values = np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)
        out.append((name, values, ~nulls))
    return out


def _designed(kind: str, table: str, feature: str) -> str | None:
    column = re.split(r"=| is null", feature, maxsplit=1)[0]
    key = f"{kind}.{column}" if "." in column else f"{kind}.{table}.{column}"
    return DESIGNED_SIGNALS.get(key)


def single_column_screen(samples: list[_Sample], *, min_positives: int = 20) -> list[dict[str, Any]]:
    """ROC-AUC of every feature of every sampled table, per fraud type vs legitimate rows.

    Reports per (kind, table, feature) the strongest (partner, type): ``auc`` (raw), ``separation`` =
    max(auc, 1 − auc), positives/negatives behind it, whether it is designed, whether it is a leak
    (separation ≥ LEAK_AUC and not designed) and, for 0/1 features at or above the threshold, how many
    legitimate rows of the whole table share the fraud value (``lookalike_rows``; 0 = separable by
    construction). Types with fewer than ``min_positives`` rows are skipped.
    """
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for s in samples:
        features = [f for c in s.data.column_names for f in _features(c, s.data.column(c))]
        legit = s.label == ""
        types = sorted({t for v in s.label.tolist() if v for t in v.split("+")})
        for ft in types:
            pos = np.array([bool(v) and ft in v.split("+") for v in s.label.tolist()])
            if pos.sum() < min_positives:
                continue
            use = pos | legit
            for fname, values, defined in features:
                keep = use & defined
                y = pos[keep]
                if y.all() or not y.any():
                    continue
                auc = roc_auc(values[keep], y)
                sep = max(auc, 1.0 - auc)
                key = (s.kind, s.table, fname)
                if key not in best or sep > best[key]["separation"]:
                    best[key] = {
                        "kind": s.kind,
                        "table": s.table,
                        "feature": fname,
                        "partner": s.partner,
                        "fraud_type": ft,
                        "auc": auc,
                        "separation": sep,
                        "positives": int(y.sum()),
                        "negatives": int((~y).sum()),
                        "_values": (values, keep, pos),
                        "_sample": s,
                    }
    rows = []
    for (kind, table, fname), r in best.items():
        why = _designed(kind, table, fname)
        r["designed"] = why is not None
        r["why"] = why
        r["leak"] = r["separation"] >= LEAK_AUC and why is None
        r["lookalike_rows"] = _lookalikes(r) if r["separation"] >= LEAK_AUC else None
        r.pop("_values")
        r.pop("_sample")
        rows.append(r)
    return sorted(rows, key=lambda r: (-r["separation"], r["kind"], r["table"], r["feature"]))


def _lookalikes(r: dict[str, Any]) -> int | None:
    """Legitimate rows in the whole table with the value fraud rows have, for 0/1 features; else None.

    0/1 features are booleans, one-hot levels and null indicators; the value fraud rows have is 1 if the
    AUC is ≥ 0.5, else 0. Joined columns are estimated from the sample, scaled to the table's legit rows.
    """
    values, keep, _ = r["_values"]
    s: _Sample = r["_sample"]
    fname = r["feature"]
    column = re.split(r"=| is null", fname, maxsplit=1)[0]
    is_level, is_null = "=" in fname, fname.endswith(" is null")
    col_type = s.data.column(column).type
    if not (is_level or is_null or pa.types.is_boolean(col_type)):
        return None
    fraud_value = 1.0 if r["auc"] >= 0.5 else 0.0
    legit_full = s.full_label == ""
    if "." in column:  # joined column
        legit = s.label == ""
        share = float((values[legit] == fraud_value).mean()) if legit.any() else 0.0
        return int(round(share * int(legit_full.sum())))
    col = s.full.column(column)
    if is_null:
        hit = col.is_null().to_numpy(zero_copy_only=False)
    elif is_level:
        hit = np.asarray(pc.fill_null(pc.equal(col, fname.split("=", 1)[1]), False).to_numpy(zero_copy_only=False))
    else:
        hit = np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False)).astype(bool)
    if fraud_value == 0.0:
        hit = ~hit
    return int((hit & legit_full).sum())


# ------------------------------------------------------------------------------------------------
# 2. Metadata-only model
# ------------------------------------------------------------------------------------------------
def _is_time(name: str) -> bool:
    return name == "ts" or name.endswith("_ts") or name == "customer_since"


def _order_offset(full: pa.Table, rows: np.ndarray) -> tuple[np.ndarray, str]:
    """How far each sampled row sits from where its sort key puts it (ties on the key share one place).

    Event tables are sorted by ``ts`` and entity tables by their id, so the offset is the row's rank among
    rows with the same key (usually 0), and large where rows are out of order — e.g. fraud rows appended
    after the legitimate ones. Unlike the raw row position it does not repeat what the timestamp says.
    """
    key = "ts" if "ts" in full.column_names else full.column_names[0]
    values = full.column(key).to_numpy()
    first = np.searchsorted(np.sort(values), values[rows], side="left")
    return (rows - first).astype(np.float64), f"row offset from {key} order"


def metadata_features(s: _Sample) -> tuple[np.ndarray, list[str]]:
    """Features that must carry no information: row order, id / key values, timestamp and cent quirks.

    Per sampled row: its offset from sorted order (:func:`_order_offset`); for every non-null integer id /
    key column that is not a designed signal a coarse value bin (16 bins over the int64 range) and the value
    mod 16 — coarse on purpose, so a model cannot memorise one burner or mule (a real signal) but does see
    order or range effects; for every non-null time column seconds-of-minute, minute-of-hour, exactly-midnight
    and exactly-zero flags; for money columns the cents. Joined columns are left out. Shape (rows, features).
    """
    offset, offset_name = _order_offset(s.full, s.rows)
    cols: list[np.ndarray] = [offset]
    names = [offset_name]
    for name in s.data.column_names:
        col = s.data.column(name)
        if "." in name or col.null_count or not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
            continue
        designed = f"{s.kind}.{s.table}.{name}" in DESIGNED_SIGNALS
        if pa.types.is_integer(col.type) and (name.endswith("_id") or name.endswith("_hash")) and not designed:
            v = col.to_numpy().astype(np.int64)
            cols += [np.floor(v / 2.0**63 * 16), (v % 16).astype(np.float64)]
            names += [f"{name} range bin", f"{name} mod 16"]
        elif pa.types.is_integer(col.type) and _is_time(name):
            v = col.to_numpy().astype(np.int64)
            cols += [v % 60, (v // 60) % 60, (v % 86_400 == 0), (v == 0)]
            names += [f"{name} second", f"{name} minute", f"{name} at midnight", f"{name} == 0"]
        elif pa.types.is_floating(col.type) and name in ("amount_eur", "price_eur"):
            cols.append(np.round(col.to_numpy() * 100) % 100)
            names.append(f"{name} cents")
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols]), names


def metadata_model_screen(
    samples: list[_Sample], truth: _Truth, *, seed: int = 0, folds: int = 3, min_positives: int = 50, min_crews: int = 5
) -> list[dict[str, Any]]:
    """Out-of-fold AUC of a small gradient-boosted model on :func:`metadata_features`, per partner table.

    Positives are all fraud rows (any type). Folds are grouped by crew (rows of one crew never straddle
    train and test, so a crew's shared burner or device cannot be memorised); legitimate rows are spread
    over the folds. ``in_range``: the AUC lies in METADATA_AUC_RANGE. ``ok``: it does, or misses it by
    less than 1.96 standard errors — a table with ~150 fraud rows has an SE of ≈ 0.025, so a model with no
    information lands outside [0.45, 0.55] one time in twenty; only a miss beyond the noise is a leak. The SE
    is the larger of Hanley–McNeil (:func:`auc_standard_error`) and the crew jackknife
    (:func:`cluster_jackknife_auc_se`), because a crew's rows are not independent. Tables with fewer than
    ``min_positives`` fraud rows or ``min_crews`` crews are reported but not judged (``ok`` None). The
    strongest single metadata feature is reported to show what to fix.
    """
    import sklearn.ensemble  # noqa: F401 - load the OpenMP runtime first, so the limit below applies to it
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: the models are tiny, and on a shared machine spinning threads made them 100× slower.
    with threadpool_limits(limits=1, user_api="openmp"):
        return [
            _metadata_model(s, seed=seed, folds=folds, min_positives=min_positives, min_crews=min_crews)
            for s in samples
        ]


def _metadata_model(s: _Sample, *, seed: int, folds: int, min_positives: int, min_crews: int) -> dict[str, Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    defined = np.array([v is not None for v in s.label.tolist()])
    y = np.array([bool(v) for v in s.label.tolist()])[defined]
    row = {
        "partner": s.partner,
        "kind": s.kind,
        "table": s.table,
        "positives": int(y.sum()),
        "negatives": int((~y).sum()),
        "auc": None,
        "se": None,
        "crews": None,
        "in_range": None,
        "ok": None,
        "top_feature": None,
        "top_feature_auc": None,
    }
    if y.sum() < min_positives or (~y).sum() < min_positives:
        return row
    x, names = metadata_features(s)
    x, groups = x[defined], s.group[defined]
    model = HistGradientBoostingClassifier(
        max_iter=60, max_depth=3, learning_rate=0.1, early_stopping=False, random_state=seed
    )
    pred = np.zeros(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        if y[train].all() or not y[train].any():
            pred[test] = 0.5
            continue
        pred[test] = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    auc = roc_auc(pred, y)
    single = [(max(a, 1 - a), n) for n, a in ((n, roc_auc(x[:, j], y)) for j, n in enumerate(names))]
    top = max(single)
    crews = len(np.unique(groups[y]))
    se = max(
        auc_standard_error(auc, n_pos=int(y.sum()), n_neg=int((~y).sum())), cluster_jackknife_auc_se(pred, y, groups)
    )
    lo, hi = METADATA_AUC_RANGE
    ok = None if crews < min_crews else bool((auc - 1.96 * se <= hi) and (auc + 1.96 * se >= lo))
    row.update(auc=auc, se=se, crews=crews, in_range=lo <= auc <= hi, ok=ok, top_feature=top[1], top_feature_auc=top[0])
    return row


# ------------------------------------------------------------------------------------------------
# 3. Truth-named columns
# ------------------------------------------------------------------------------------------------
def truth_named_columns(world: World) -> list[str]:
    """``partner/table.column`` of every partner column whose name contains a :data:`TRUTH_WORDS` word."""
    pattern = re.compile("|".join(TRUTH_WORDS))
    return [
        f"{p}/{t}.{c}"
        for p, view in world.partners.items()
        for t, tbl in view.tables.items()
        for c in tbl.column_names
        if pattern.search(c.lower())
    ]


# ------------------------------------------------------------------------------------------------
# 4. Join-key presence
# ------------------------------------------------------------------------------------------------
def key_presence_screen(
    world: World, truth: _Truth | None = None, *, min_group: int = 20, only: set[str] | None = None
) -> list[dict[str, Any]]:
    """Is a join key's presence independent of taking part in fraud? Per partner, key and role.

    Compares the share of entities holding the key among victims / mules / fraudsters (from
    ``truth/case_entities``) with the share among ordinary entities in no case, by
    :func:`two_proportion_p_value`. A test passes if p ≥ KEY_PRESENCE_ALPHA ÷ (number of tests judged)
    (Bonferroni). :data:`DESIGNED_KEY_GAPS` are reported with ``designed`` and not judged; groups smaller
    than ``min_group`` are not judged either (``ok`` None). ``only`` restricts the test to these
    ``partner/table`` names.
    """
    truth = truth or _Truth.of(world)
    rows: list[dict[str, Any]] = []
    for partner, view in world.partners.items():
        for table, keys in KEY_COLUMNS.get(view.kind, {}).items():
            if table not in view.tables or (only is not None and f"{partner}/{table}" not in only):
                continue
            tbl = view.tables[table]
            ids = tbl.column(ENTITY_TABLES[view.kind][table]).to_numpy()
            roles = truth.case_roles.get(partner, {})
            ent_role = truth.entity_role.get(partner, {})
            ordinary = np.array([e not in roles and ent_role.get(e, "ordinary") == "ordinary" for e in ids.tolist()])
            for key in keys:
                present = ~tbl.column(key).is_null().to_numpy(zero_copy_only=False)
                for role in ("victim", "mule", "fraudster"):
                    grp = np.array([role in roles.get(e, ()) for e in ids.tolist()])
                    if not grp.any():
                        continue
                    gap = f"{view.kind}.{table}.{key}:{role}"
                    rows.append(
                        {
                            "partner": partner,
                            "table": table,
                            "key": key,
                            "role": role,
                            "n_role": int(grp.sum()),
                            "present_role": float(present[grp].mean()),
                            "n_ordinary": int(ordinary.sum()),
                            "present_ordinary": float(present[ordinary].mean()) if ordinary.any() else None,
                            "p_value": two_proportion_p_value(
                                hits_a=int(present[grp].sum()),
                                n_a=int(grp.sum()),
                                hits_b=int(present[ordinary].sum()),
                                n_b=int(ordinary.sum()),
                            ),
                            "designed": gap in DESIGNED_KEY_GAPS,
                            "why": DESIGNED_KEY_GAPS.get(gap),
                        }
                    )
    judged = [not r["designed"] and r["n_role"] >= min_group for r in rows]
    threshold = KEY_PRESENCE_ALPHA / max(sum(judged), 1)
    for r, judge in zip(rows, judged, strict=True):
        r["ok"] = bool(r["p_value"] >= threshold) if judge else None
        r["threshold"] = threshold if judge else None
    return rows


# ================================================================================================
# Rendering
# ================================================================================================
def _fmt(value: Any, unit: str = "") -> str:
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


def render_description(desc: dict[str, Any], console: Any = None) -> None:
    """Print a description (from :func:`describe_world`) as rich tables: the first things to look at."""
    from rich.console import Console

    console = console or Console()
    s = desc["summary"]
    console.rule(
        f"[bold]{s['mode']} world[/] · seed {s['seed']} · {s.get('persons', 0):,} persons × "
        f"{s.get('days', 0)} days · hash {str(s['content_hash'])[:16]}"
    )
    _render_rows(console, desc["rows"], s["partners"])
    if "known_answer" in desc:
        _render_known_answer(console, desc["known_answer"])
        return
    _render_fraud_types(console, desc["fraud_types"])
    _render_calibration(console, desc["calibration"])
    if "leak_screen" in desc:
        _render_leak_screen(console, desc["leak_screen"])


def _table(title: str, *columns: str) -> Any:
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def _render_rows(console: Any, rows: dict[str, dict[str, int]], partners: dict[str, str]) -> None:
    t = _table("Rows per table", "partner", "kind", "tables (rows)")
    for p, tables in rows.items():
        t.add_row(p, partners.get(p, "hidden"), " · ".join(f"{k} {v:,}" for k, v in tables.items()))
    console.print(t)


def _render_known_answer(console: Any, ka: dict[str, Any]) -> None:
    t = _table(
        f"Known-answer world: {ka['cases']:,} cases — best achievable AUC (closed form)",
        "partner",
        "shift d_p",
        "optimal AUC",
    )
    for r in ka["partners"]:
        t.add_row(r["partner"], f"{r['shift']:.2f}", f"{r['optimal_auc']:.3f}")
    t.add_row("[bold]all partners[/]", "", f"[bold]{ka['all_partners_optimal_auc']:.3f}[/]")
    console.print(t)


def _render_fraud_types(console: Any, types: list[dict[str, Any]]) -> None:
    t = _table(
        f"Fraud types — national figures divide the multiplier out and scale to "
        f"{NL_PERSONS_15PLUS / 1e6:.1f}M people aged 15+",
        "type",
        "cases",
        "reported",
        "median loss",
        "×mult",
        "per 100k/yr",
        "NL victims/yr",
        "NL €/yr",
        "victims/mule",
    )
    for r in types:
        t.add_row(
            r["fraud_type"],
            f"{r['cases']:,}",
            _fmt(r["reported_share"], "share"),
            _fmt(r["loss_median_eur"], "EUR"),
            f"{r['multiplier']:g}",
            _fmt(r["per_100k_year"]),
            _fmt(r["nl_victims_year"]),
            _fmt(r["nl_eur_year"], "EUR"),
            _fmt(r["victims_per_mule"]),
        )
    console.print(t)


def _mark(ok: bool | None) -> str:
    return "[dim]context[/]" if ok is None else ("[green]✓[/]" if ok else "[bold red]✗[/]")


def _render_calibration(console: Any, rows: list[dict[str, Any]]) -> None:
    t = _table(
        "Calibration against Dutch figures (world.md §6; ±25% unless a range or bound is given)",
        "quantity",
        "generated",
        "n",
        "target",
        "ok",
        "ref",
    )
    notes: list[str] = []
    for r in rows:
        mark = "[dim]—[/]" if r["ok"] is None and not r["context"] else _mark(r["ok"])
        quantity = r["quantity"]
        if r["note"]:
            notes.append(f"[{len(notes) + 1}] {r['quantity']}: {r['note']}")
            quantity += f" [{len(notes)}]"
        t.add_row(quantity, _fmt(r["generated"], r["unit"]), f"{r['n']:,}", r["target"], mark, r["ref"])
    console.print(t)
    for n in notes:
        console.print(n, style="dim", highlight=False, markup=False)
    console.print("Full sources: `fedsim world describe --json` (calibration[].source)", style="dim")


def _render_leak_screen(console: Any, ls: dict[str, Any]) -> None:
    v = ls["verdicts"]
    console.print(
        "[bold]Leak screen[/] (world.md §8): " + " · ".join(f"{k.replace('_', ' ')} {_mark(ok)}" for k, ok in v.items())
    )
    undesigned = [r for r in ls["single_column"] if not r["designed"]][:8]
    t = _table(
        f"Strongest undesigned columns (a leak if separation ≥ {ls['thresholds']['leak_auc']})",
        "partner/table",
        "feature",
        "type",
        "AUC",
        "leak",
    )
    for r in ls["leaks"] + [r for r in undesigned if not r["leak"]]:
        t.add_row(
            f"{r['partner']}/{r['table']}",
            r["feature"],
            r["fraud_type"],
            f"{r['auc']:.3f}",
            _mark(not r["leak"]) if r["leak"] else "no",
        )
    console.print(t)
    t = _table(
        "Designed signals at or above the threshold", "partner/table", "feature", "type", "AUC", "legit look-alike rows"
    )
    for r in ls["designed_signals"]:
        look = (
            "—"
            if r["lookalike_rows"] is None
            else (f"{r['lookalike_rows']:,}" if r["lookalike_rows"] else "[bold red]0 (separable)[/]")
        )
        t.add_row(f"{r['partner']}/{r['table']}", r["feature"], r["fraud_type"], f"{r['auc']:.3f}", look)
    console.print(t)
    lo, hi = ls["thresholds"]["metadata_auc_range"]
    t = _table(
        f"Metadata-only model (out-of-fold AUC must lie in [{lo}, {hi}], up to 1.96 SE)",
        "partner/table",
        "fraud rows (crews)",
        "AUC ± SE",
        "ok",
        "strongest metadata feature",
    )
    for r in ls["metadata_model"]:
        auc = "—" if r["auc"] is None else f"{r['auc']:.3f} ± {r['se']:.3f}"
        top = "" if r["top_feature"] is None else f"{r['top_feature']} ({r['top_feature_auc']:.3f})"
        rows = f"{r['positives']:,}" + ("" if r["crews"] is None else f" ({r['crews']})")
        t.add_row(
            f"{r['partner']}/{r['table']}", rows, auc, "[dim]too few[/]" if r["ok"] is None else _mark(r["ok"]), top
        )
    console.print(t)
    t = _table(
        "Join-key presence vs role (two-proportion test)",
        "partner/table",
        "key",
        "role",
        "present (role)",
        "present (ordinary)",
        "p",
        "ok",
    )
    for r in ls["key_presence"]:
        ok = "[dim]designed[/]" if r["designed"] else ("[dim]too few[/]" if r["ok"] is None else _mark(r["ok"]))
        t.add_row(
            f"{r['partner']}/{r['table']}",
            r["key"],
            f"{r['role']} (n={r['n_role']:,})",
            _fmt(r["present_role"], "share"),
            _fmt(r["present_ordinary"], "share"),
            f"{r['p_value']:.3g}",
            ok,
        )
    console.print(t)
    named = ls["truth_named_columns"]
    console.print("Truth-named partner columns: " + (", ".join(named) if named else "none ✓"))


# ================================================================================================
# JSON
# ================================================================================================
def _jsonable(obj: Any) -> Any:
    """numpy scalars → Python, NaN → None, tuples → lists, recursively."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


__all__ = [
    "CALIBRATION_TARGETS",
    "DESIGNED_KEY_GAPS",
    "DESIGNED_SIGNALS",
    "NL_PERSONS_15PLUS",
    "CalibrationTarget",
    "auc_standard_error",
    "calibration_quantities",
    "calibration_table",
    "cluster_jackknife_auc_se",
    "describe_world",
    "fraud_type_table",
    "key_presence_screen",
    "leak_screen",
    "metadata_features",
    "metadata_model_screen",
    "render_description",
    "roc_auc",
    "single_column_screen",
    "truth_named_columns",
    "two_proportion_p_value",
]
