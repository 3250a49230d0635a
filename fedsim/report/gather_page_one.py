"""Page one's numbers from the primary contrast (A − B on the full chain, `fedsim compare`'s machinery).

* extra share: the ED(0) difference A − B (share of the test window's cases caught before the first money-out),
  seed mean with the cases × seeds CI;
* extra cases: that share (and its CI ends) × the number of cases in the test window (the runs' ``n_cases``: every
  case whose first money-out falls in the test window, the common test set of every run);
* euros in the world: the ``prevented_eur_d0_r1.0`` difference (Δ = 0 h, ρ = 1) over the test window;
* euros in the Netherlands per year (:func:`nl_extrapolation`);
* the privacy cost: the odds multiplier e^ε of the per-person ε (``dp_epsilon_person_max``: every DP model holding
  a person's data composed, :mod:`fedsim.person_privacy`) of regime A's full-chain DP runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from fedsim.privacy import odds_factor
from fedsim.report.gather_store import Store, full_chain, headline_runs
from fedsim.report.model import PageOne, Range, RunProblem, Traced

NL_VICTIMS_PER_YEAR = 2.2e6
"""Dutch victims of online crime per year: CBS, as quoted in the programme's annual report
(Jaarbericht 2023 Integrale Aanpak Online Fraude: "jaarlijks 2,2 miljoen Nederlanders"; world.md §6)."""
EUR = "prevented_eur_d0_r1.0"


def _range(row: pd.Series, factor: float = 1.0) -> Range:
    lo, hi = sorted((float(row["lo"]) * factor, float(row["hi"]) * factor))
    return Range(float(row["diff"]) * factor, lo, hi)


def _row(table: pd.DataFrame, metric: str, fraud_type: str = "all") -> pd.Series:
    sel = table[(table["metric"] == metric) & (table["fraud_type"] == fraud_type)]
    return sel.iloc[0]


def cases_in_window(store: Store, run_ids: tuple[str, ...]) -> dict[str, float]:
    """Fraud type → evaluated cases of the test window (``[<type>.]n_cases``) as the first named run logged it
    (every run of one world has the same test set), with ``all``."""
    run = store.runs[store.runs["run_id"] == run_ids[0]].iloc[0]
    out = {}
    for column, value in run.items():
        name = str(column)
        if (name == "n_cases" or name.endswith(".n_cases")) and not pd.isna(value):
            out["all" if name == "n_cases" else name.removesuffix(".n_cases")] = float(value)
    return out


def nl_extrapolation(
    table: pd.DataFrame, cases: Mapping[str, float], multipliers: Mapping[str, float]
) -> tuple[Range, dict[str, float]]:
    """Prevented euros per year in the Netherlands, and the assumptions behind it.

    The world raises each fraud type's prevalence by a multiplier m_t (world.md §5), so its c_t cases of type t
    stand for c_t / m_t cases at real prevalence, and the euros e_t prevented on them for e_t / m_t euros. The
    euros prevented per case at real prevalence, Σ_t e_t/m_t ÷ Σ_t c_t/m_t, times the Dutch victims per year V
    (:data:`NL_VICTIMS_PER_YEAR`) gives euros per year; the window's length cancels (both sums cover the same
    days). Assumes each Dutch victim is one case like the world's, with the world's mix of fraud types at real
    prevalence. The interval sums the types' CI ends with the same weights, as if their errors moved together
    (conservative: never narrower than the exact interval of the weighted sum).
    """
    per_type = table[(table["metric"] == EUR) & (table["fraud_type"] != "all")]
    real_cases = sum(c / multipliers.get(t, 1.0) for t, c in cases.items() if t != "all")
    weight = {t: NL_VICTIMS_PER_YEAR / (multipliers.get(t, 1.0) * real_cases) for t in per_type["fraud_type"]}
    est = sum(weight[r["fraud_type"]] * r["diff"] for _, r in per_type.iterrows())
    lo = sum(weight[r["fraud_type"]] * r["lo"] for _, r in per_type.iterrows())
    hi = sum(weight[r["fraud_type"]] * r["hi"] for _, r in per_type.iterrows())
    assumptions = {
        "victims_per_year": NL_VICTIMS_PER_YEAR,
        "world_cases_test_window": float(cases.get("all", sum(v for k, v in cases.items() if k != "all"))),
        "world_cases_at_real_prevalence": float(real_cases),
        **{f"multiplier.{t}": float(multipliers.get(t, 1.0)) for t in sorted(cases) if t != "all"},
        **{f"cases.{t}": float(c) for t, c in sorted(cases.items()) if t != "all"},
    }
    return Range(float(est), float(lo), float(hi)), assumptions


def privacy_cost(store: Store, regime: str, model: str) -> tuple[Traced, Traced] | None:
    """(odds, ε) per person of ``regime``'s full-chain DP runs of ``model`` at the smallest target ε run (the most
    private point measured): estimate = the worst seed (a guarantee holds for every run), range over seeds."""
    runs = full_chain(store.runs)
    mine = runs[(runs["regime"] == regime) & (runs["model"] == model)]
    dp = mine[pd.to_numeric(mine["epsilon"], errors="coerce") < math.inf]
    if dp.empty or "dp_epsilon_person_max" not in dp:
        return None
    target = min(float(e) for e in dp["epsilon"])
    dp = dp[pd.to_numeric(dp["epsilon"], errors="coerce") == target]
    eps = pd.to_numeric(dp["dp_epsilon_person_max"], errors="coerce").dropna()
    if eps.empty:
        return None
    ids = tuple(str(i) for i in dp.loc[eps.index].sort_values("seed")["run_id"])
    how = (
        f"dp_epsilon_person_max of {regime} ({model}, target ε = {target:g} per model) on the full chain: the largest "
        f"over persons of every DP model holding the person's data, composed; worst of {len(eps)} seed(s), range "
        "over seeds; odds = e^ε"
    )
    e = Range(float(eps.max()), float(eps.min()), float(eps.max()))
    odds = Range(odds_factor(e.estimate), odds_factor(e.lo), odds_factor(e.hi))  # e^ε, cited there
    return Traced(odds, "odds", ids, how), Traced(e, "epsilon", ids, how)


def page_one(
    store: Store,
    contrast: pd.DataFrame,
    model: str,
    epsilon: str,
    problems: list[RunProblem],
) -> PageOne:
    """Page one from the primary contrast's rows at the headline (model, ε)."""
    a, b = store.spec.primary.contrast if store.spec.primary else ("pooled", "status_quo")
    rows = headline_runs(contrast, model, epsilon)
    ed, eur = _row(rows, "ed_h0"), _row(rows, EUR)
    ids = tuple(ed["run_ids"])
    cases = cases_in_window(store, ids)
    n = cases["all"]
    cover = f"{model}, ε = {epsilon}, seeds {ed['seeds']}; 95% CI covers {ed['covers']} (fedsim compare)"
    share = Traced(_range(ed), "share", ids, f"ED(0) at the calibrated capacity, {a} − {b} on the full chain, {cover}")
    extra = Traced(
        _range(ed, n),
        "cases",
        ids,
        f"the ED(0) difference {a} − {b} (and its CI ends) × {n:g} cases in the test window (n_cases); {cover}",
    )
    world_eur = Traced(
        _range(eur), "eur", ids, f"€ prevented (Δ = 0 h, ρ = 1) over the test window, {a} − {b}; {cover}"
    )
    multipliers = {t: float(c.multiplier) for t, c in store.world.ws.world.config.fraud.items()}
    nl, assumptions = nl_extrapolation(rows, cases, multipliers)
    nl_how = (
        "Σ_t (€ prevented of type t ÷ its prevalence multiplier m_t) ÷ Σ_t (cases of type t ÷ m_t) × "
        f"{NL_VICTIMS_PER_YEAR:,.0f} Dutch victims a year (CBS); CI: the types' CI ends with the same weights "
        f"(conservative); {a} − {b}, {cover}"
    )
    privacy = privacy_cost(store, a, model)
    return PageOne(
        contrast=(a, b),
        fraud_type="all",
        extra_cases=extra,
        extra_share=share,
        euros_world=world_eur,
        euros_nl=Traced(nl, "eur", ids, nl_how),
        nl_assumptions=assumptions,
        privacy_odds=privacy[0] if privacy else None,
        epsilon_person=privacy[1] if privacy else None,
        problems=problems,
    )
