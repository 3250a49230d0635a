"""The report's per-fraud-type tables (:class:`fedsim.report.model.FraudTypeSection`), all at the headline
(model, ε) and the primary's multiple of the calibrated capacity.

Where each comes from (nothing is recomputed by other means):

* partner values, best and smallest near-best coalition, waterfall, heatmap: :func:`fedsim.value.partner_value`
  (the coalition game on the common test set, CIs over cases × seeds), only for a coalition lattice;
* sharing forms: each sharing regime − status quo on the full chain, `fedsim compare`'s paired contrast;
* steps (rules → own models → best sharing), the ED(h) curve and the phase shares: the runs' logged metrics, seed
  mean with the cases × seeds CI of `fedsim runs` (:func:`fedsim.evaluation.seeds.interval_from_runs`; the
  phases without a CI);
* lead times: the runs' ``case_alerts`` artifacts (one row per case alerted before the end of the test window);
* privacy–utility: :func:`fedsim.evaluation.privacy_utility.privacy_utility_table`, ε = per person.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from fedsim.evaluation.outcomes import PHASE_LABELS
from fedsim.report.gather_store import SHARING, Store, full_chain, headline_runs, metric_column, seed_mean
from fedsim.report.model import FraudTypeSection

COLUMNS = {
    "partner_values": [
        "partner", "shapley", "shapley_lo", "shapley_hi", "banzhaf", "banzhaf_lo", "banzhaf_hi", "loo", "loo_lo",
        "loo_hi",
    ],
    "sharing_forms": ["regime", "estimate", "lo", "hi"],
    "steps": ["step", "regime", "estimate", "lo", "hi"],
    "ed_curve": ["regime", "horizon_h", "estimate", "lo", "hi"],
    "lead_times": ["regime", "lead_time_h", "seed"],
    "phases": ["regime", "phase", "share"],
    "waterfall": ["step", "coalition", "value", "lo", "hi", "gain"],
    "heatmap": ["coalition", "regime", "value"],
    "privacy_utility": ["regime", "coalition", "epsilon", "estimate", "lo", "hi", "target_epsilon"],
}  # fmt: skip
"""Columns of each table (model.py's, plus ``seed`` of a lead time and the ``target_epsilon`` per model)."""
CONCEPTS = {
    "shapley": "shapley",
    "shapley (permutation sampling)": "shapley",
    "banzhaf": "banzhaf",
    "leave-one-out": "loo",
}


def empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=COLUMNS[name])


def chain_regimes(runs: pd.DataFrame) -> list[str]:
    """Regimes with full-chain runs, in the report's order: rules, status quo, then the sharing forms."""
    have = set(runs["regime"])
    return [r for r in ("rules", "status_quo", *SHARING) if r in have]


def sharing_forms(contrasts: dict[str, pd.DataFrame], metric: str, fraud_type: str) -> pd.DataFrame:
    """Each sharing regime − status quo (``contrasts``: regime → its contrast rows at the headline cell)."""
    rows = []
    for regime, table in contrasts.items():
        sel = table[(table["metric"] == metric) & (table["fraud_type"] == fraud_type)]
        if not sel.empty:
            r = sel.iloc[0]
            rows.append({"regime": regime, "estimate": r["diff"], "lo": r["lo"], "hi": r["hi"]})
    return pd.DataFrame(rows, columns=COLUMNS["sharing_forms"])


def steps(runs: pd.DataFrame, column: str) -> pd.DataFrame:
    """rules → own models (status quo) → the best sharing regime (highest seed mean), each the seed mean of the
    logged ``column`` with its cases × seeds CI."""
    values = {r: seed_mean(runs[runs["regime"] == r], column) for r in chain_regimes(runs)}
    rows = [("rules", "rules"), ("own_models", "status_quo")]
    shared = [r for r in SHARING if r in values and not math.isnan(values[r][0])]
    if shared:
        rows.append(("sharing", max(shared, key=lambda r: values[r][0])))
    out = [
        {"step": step, "regime": r, "estimate": values[r][0], "lo": values[r][1], "hi": values[r][2]}
        for step, r in rows
        if r in values
    ]
    return pd.DataFrame(out, columns=COLUMNS["steps"])


def ed_curve(runs: pd.DataFrame, horizons: Sequence[float], fraud_type: str, scale: float) -> pd.DataFrame:
    """ED(h) per regime and horizon h: seed mean of ``ed_h<h>`` with the cases × seeds CI."""
    rows = []
    for regime in chain_regimes(runs):
        mine = runs[runs["regime"] == regime]
        for h in horizons:
            est, lo, hi = seed_mean(mine, metric_column(f"ed_h{h:g}", fraud_type, scale))
            if not math.isnan(est):
                rows.append({"regime": regime, "horizon_h": float(h), "estimate": est, "lo": lo, "hi": hi})
    return pd.DataFrame(rows, columns=COLUMNS["ed_curve"])


def phases(runs: pd.DataFrame, fraud_type: str, scale: float) -> pd.DataFrame:
    """Share of the cases in each criminal-journey phase at their first alert (``undetected``: never alerted), the
    seed mean of the logged ``phase_<label>``; per regime the shares sum to 1 (:data:`PHASE_LABELS`)."""
    rows = []
    for regime in chain_regimes(runs):
        mine = runs[runs["regime"] == regime]
        for label in PHASE_LABELS:
            column = metric_column(f"phase_{label}", fraud_type, scale)
            if column in mine:
                share = pd.to_numeric(mine[column], errors="coerce").mean()
                if not math.isnan(share):
                    rows.append({"regime": regime, "phase": label, "share": float(share)})
    return pd.DataFrame(rows, columns=COLUMNS["phases"])


def lead_times(store: Store, runs: pd.DataFrame, fraud_type: str) -> pd.DataFrame:
    """Lead time (hours from the first alert to the first money-out; negative = alerted after it) of every alerted
    case, every seed, from each run's ``case_alerts/case_alerts.parquet`` at the primary's capacity multiple."""
    frames = []
    for _, run in runs[runs["regime"].isin(chain_regimes(runs))].iterrows():
        alerts = pd.read_parquet(store.artifact(str(run["run_id"]), "case_alerts/case_alerts.parquet"))
        alerts = alerts[(alerts["k"] == store.scale) & alerts["lead_time_h"].notna()]
        if fraud_type != "all":
            alerts = alerts[alerts["fraud_type"] == fraud_type]
        frames.append(
            pd.DataFrame({"regime": run["regime"], "lead_time_h": alerts["lead_time_h"], "seed": run["seed"]})
        )
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True)[COLUMNS["lead_times"]] if frames else empty("lead_times")


def privacy_utility(runs: pd.DataFrame, metric: str, fraud_type: str, scale: float) -> pd.DataFrame:
    """The metric against ε per person (worst seed) for every regime, coalition and privacy point; the best silo
    only (:func:`fedsim.evaluation.privacy_utility.privacy_utility_table`). Empty without a DP run."""
    from fedsim.evaluation.privacy_utility import privacy_utility_table

    if (pd.to_numeric(runs["epsilon"], errors="coerce") == math.inf).all():
        return empty("privacy_utility")
    name = metric_column(metric, fraud_type, scale).removesuffix(f"_cal{scale:g}")
    table = privacy_utility_table(runs, scale=scale, metrics=(name,))
    out = pd.DataFrame(
        {
            "regime": table["regime"],
            "coalition": table["coalition"],
            "epsilon": table["epsilon_person"].astype(float),
            "estimate": table[name],
            "lo": table[f"{name}_lo"],
            "hi": table[f"{name}_hi"],
            "target_epsilon": table["epsilon"].astype(float),
        }
    )
    return out[COLUMNS["privacy_utility"]]


def value_tables(entries: list[dict[str, Any]], regime: str | None) -> dict[str, Any]:
    """Partner values, best / smallest near-best, waterfall and flags of one game (``entries`` of one fraud type
    at the headline cell) and the heatmap of every game regime."""
    heat = [
        {"coalition": c, "regime": e["regime"], "value": v}
        for e in entries
        for c, v in zip(e["coalitions"]["coalition"], e["coalitions"]["value"], strict=True)
    ]
    out: dict[str, Any] = {
        "heatmap": pd.DataFrame(heat, columns=COLUMNS["heatmap"]),
        "partner_values": empty("partner_values"),
        "waterfall": empty("waterfall"),
        "best_coalition": None,
        "smallest_near_best": None,
        "every_partner_gains": None,
        "returns_diminish": None,
    }
    game = next((e for e in entries if e["regime"] == regime), entries[0] if entries else None)
    if game is None:
        return out
    out["partner_values"] = _partner_values(game["values"])
    out["waterfall"] = _waterfall(game["waterfall"], game["coalitions"])
    best = game["best"]
    out["best_coalition"] = tuple(str(best["best"]).split("+"))
    out["smallest_near_best"] = tuple(str(best["smallest_near_best"]).split("+"))
    out["every_partner_gains"] = game["flags"].get("every_partner_gains")
    out["returns_diminish"] = game["flags"].get("diminishing_returns")
    return out


def _partner_values(values: pd.DataFrame) -> pd.DataFrame:
    if values.empty:
        return empty("partner_values")
    rows: dict[str, dict[str, float]] = {}
    for _, r in values.iterrows():
        name = CONCEPTS.get(str(r["concept"]))
        if name is not None:
            rows.setdefault(str(r["player"]), {})
            rows[str(r["player"])].update({name: r["value"], f"{name}_lo": r["lo"], f"{name}_hi": r["hi"]})
    frame = pd.DataFrame([{"partner": p, **v} for p, v in rows.items()])
    return frame.reindex(columns=COLUMNS["partner_values"])


def _waterfall(steps_: pd.DataFrame, coalitions: pd.DataFrame) -> pd.DataFrame:
    """Waterfall steps: ``value`` = v(S) of the step's coalition, ``gain`` = the step's gain over the previous
    step (the first: the best silo over nobody) and ``lo, hi`` = the paired 95% CI of that gain."""
    if steps_.empty:
        return empty("waterfall")
    v = dict(zip(coalitions["coalition"], coalitions["value"], strict=True))
    return pd.DataFrame(
        {
            "step": steps_["step"],
            "coalition": steps_["coalition"],
            "value": [v.get(c, math.nan) for c in steps_["coalition"]],
            "lo": steps_["lo"],
            "hi": steps_["hi"],
            "gain": steps_["value"],
        }
    )[COLUMNS["waterfall"]]


def section(
    store: Store,
    fraud_type: str,
    metric: str,
    cell: tuple[str, str],
    contrasts: dict[str, pd.DataFrame],
    values: list[dict[str, Any]],
    game_regime: str | None,
) -> FraudTypeSection:
    """One fraud type's tables (``values``: :func:`fedsim.value.partner_value` entries of this type and cell)."""
    runs = headline_runs(full_chain(store.runs), *cell)
    column = metric_column(metric, fraud_type, store.scale)
    v = value_tables(values, game_regime)
    return FraudTypeSection(
        fraud_type=fraud_type,
        metric=metric,
        best_coalition=v["best_coalition"],
        smallest_near_best=v["smallest_near_best"],
        partner_values=v["partner_values"],
        sharing_forms=sharing_forms(contrasts, metric, fraud_type),
        steps=steps(runs, column),
        ed_curve=ed_curve(runs, store.spec.metrics.horizons_h, fraud_type, store.scale),
        lead_times=lead_times(store, runs, fraud_type),
        phases=phases(runs, fraud_type, store.scale),
        waterfall=v["waterfall"],
        heatmap=v["heatmap"],
        privacy_utility=privacy_utility(store.runs, metric, fraud_type, store.scale),
        every_partner_gains=v["every_partner_gains"],
        returns_diminish=v["returns_diminish"],
    )
