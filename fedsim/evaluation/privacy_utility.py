"""Privacy–utility table: runs table → ε versus the primary outcomes, with CIs (for `fedsim runs`).

One row per (regime, coalition, model, privacy point) — the privacy point being the target ε (inf =
the non-private run) or, in noise mode, σ. Values are the mean over seeds of each run's estimate;
``_lo`` / ``_hi`` bound that seed mean with a CI covering cases × training seeds
(:func:`fedsim.evaluation.seeds.interval_from_runs`: the runs' case-bootstrap spread plus a
t-distributed between-seed term); ``covers`` says which axes (e.g. "cases × 5 training seeds").

ε actually spent comes from the runs' ``dp_epsilon.<unit>`` metrics: ``epsilon_spent`` is the largest
over the run's models (the guarantee each model gives), ``epsilon_total`` their sum — basic composition
(Dwork & Roth 2014, Thm 3.16), the bound for a person whose data reached every model of the run once.
The figure to report is ``epsilon_person``, the run's ``dp_epsilon_person_max``: the largest over persons
of the composition of every model holding that person's data, with group sizes from the data
(:mod:`fedsim.person_privacy`); ``odds_factor`` is e^epsilon_person, its unit "per person, all models
composed". Stores logged before per-person accounting fall back to ``epsilon_total`` (basic composition,
group size 1) for the odds, never to one model's ε.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fedsim.evaluation.seeds import covers_text, interval_from_runs

PERSON_UNIT = "per person, all models composed"
PRIMARY = ("ed_h0", "prevented_eur_d0_r1.0")
"""ED(0)@k (share of cases caught before the money left) and prevented € (Δ = 0, ρ = 1)."""
_DP_EPS = re.compile(r"^(?:metrics\.)?dp_epsilon\.(.+)$")
_DP_DELTA = re.compile(r"^(?:metrics\.)?dp_delta\.(.+)$")


def _param(runs: pd.DataFrame, name: str) -> pd.Series:
    for col in (f"params.{name}", name):
        if col in runs:
            return runs[col]
    return pd.Series(np.nan, index=runs.index, dtype=object)


def _metric(runs: pd.DataFrame, name: str) -> pd.Series:
    for col in (f"metrics.{name}", name):
        if col in runs:
            return pd.to_numeric(runs[col], errors="coerce")
    return pd.Series(np.nan, index=runs.index, dtype=float)


def _per_run(runs: pd.DataFrame, pattern: re.Pattern[str], how: str) -> pd.Series:
    cols = [c for c in runs.columns if pattern.match(c)]
    if not cols:
        return pd.Series(np.nan, index=runs.index, dtype=float)
    values = runs[cols].apply(pd.to_numeric, errors="coerce")
    return values.max(axis=1) if how == "max" else values.sum(axis=1, min_count=1)


def _as_float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def privacy_utility_table(
    runs: pd.DataFrame,
    *,
    capacity: float | None = None,
    scale: float = 1.0,
    metrics: Sequence[str] = PRIMARY,
    best_silo: bool = True,
) -> pd.DataFrame:
    """ε (target, spent) against each metric at ``scale`` × the calibrated alert capacity, one row per privacy point.

    Args:
        runs: one row per finished run, as ``Tracker.runs_table`` returns it (params ``regime``,
            ``coalition``, ``model``, ``seed``, ``epsilon`` and optionally ``privacy.noise_multiplier``;
            metrics ``<metric>_cal<scale>`` (or ``_k<capacity>``) with ``_lo`` / ``_hi``, ``dp_epsilon.<unit>``,
            ``dp_delta.<unit>``); ``params.`` / ``metrics.`` column prefixes are accepted.
        scale: the multiple of the calibrated capacity profile whose metrics are shown (what runs log).
        capacity: instead, a uniform fraction of entities per day (metric names of stores written before
            the calibrated capacity).
        metrics: metric names without the ``_k`` suffix.
        best_silo: keep only the siloed partner with the highest first metric at ε = inf (the "best
            silo" curve of evaluation.md §6, E4), with its name in ``coalition``.
    Columns: ``regime, coalition, model, epsilon, sigma, epsilon_person, epsilon_person_p90, delta_person,
    epsilon_spent, epsilon_total, delta, n_seeds``, then ``<metric>, <metric>_lo, <metric>_hi`` per metric
    (seed mean and its cases × seeds CI), ``covers`` (the axes of that CI), ``odds_factor`` (e^epsilon_person,
    the worst seed's; e^epsilon_total for runs without per-person accounting) and ``privacy_unit``.
    """
    if runs.empty:
        return pd.DataFrame()
    suffix = f"_k{capacity:g}" if capacity is not None else f"_cal{scale:g}"
    frame = pd.DataFrame(
        {
            "regime": _param(runs, "regime").astype(str),
            "coalition": _param(runs, "coalition").astype(str),
            "model": _param(runs, "model").astype(str),
            "seed": _param(runs, "seed"),
            "epsilon": _param(runs, "epsilon").map(_as_float),
            "sigma": _param(runs, "privacy.noise_multiplier").map(_as_float),
            "epsilon_spent": _per_run(runs, _DP_EPS, "max"),
            "epsilon_total": _per_run(runs, _DP_EPS, "sum"),
            "delta": _per_run(runs, _DP_DELTA, "max"),
            "epsilon_person": _metric(runs, "dp_epsilon_person_max").to_numpy(),
            "epsilon_person_p90": _metric(runs, "dp_epsilon_person_p90").to_numpy(),
            "delta_person": _metric(runs, "dp_delta_person_max").to_numpy(),
        }
    )
    names = []
    for m in metrics:
        for bound in ("", "_lo", "_hi"):
            frame[f"{m}{bound}"] = _metric(runs, f"{m}{suffix}{bound}").to_numpy()
        names.append(m)
    # a non-private run spends ε = inf
    private = frame["epsilon_spent"].notna()
    frame.loc[~private, ["epsilon_spent", "epsilon_total", "epsilon_person", "epsilon_person_p90"]] = math.inf
    keys = ["regime", "coalition", "model", "epsilon", "sigma"]
    bounds = [f"{m}{s}" for m in names for s in ("_lo", "_hi")]
    values = [c for c in frame.columns if c not in (*keys, "seed", *bounds)]
    grouped = frame.groupby(keys, dropna=False)
    table = grouped[values].mean().join(grouped["seed"].nunique().rename("n_seeds"))
    # a guarantee holds for every run: the per-person ε of a privacy point is its worst seed's, not the mean
    table["epsilon_person"] = grouped["epsilon_person"].max()
    table["epsilon_person_p90"] = grouped["epsilon_person_p90"].max()
    for m in names:
        ci = grouped.apply(lambda g, m=m: interval_from_runs(g[m], g[f"{m}_lo"], g[f"{m}_hi"])[1:])
        table[f"{m}_lo"] = [c[0] for c in ci]
        table[f"{m}_hi"] = [c[1] for c in ci]
    table = table.reset_index()
    table["covers"] = [covers_text(n_seeds=int(n)) for n in table["n_seeds"]]
    if best_silo:
        table = _keep_best_silo(table, names[0] if names else None)
    headline = table["epsilon_person"].astype(float).fillna(table["epsilon_total"].astype(float))
    with np.errstate(over="ignore"):  # e^ε beyond floating point is inf, as fedsim.privacy.odds_factor says
        table["odds_factor"] = np.exp(headline)
    table["privacy_unit"] = np.where(
        table["epsilon_person"].notna(), PERSON_UNIT, "per person, basic composition, group size 1 (older run)"
    )
    order = [
        *keys,
        "epsilon_person",
        "epsilon_person_p90",
        "delta_person",
        "epsilon_spent",
        "epsilon_total",
        "delta",
        "n_seeds",
        *[f"{m}{s}" for m in names for s in ("", "_lo", "_hi")],
        "covers",
        "odds_factor",
        "privacy_unit",
    ]
    return (
        table[order]
        .sort_values(["regime", "coalition", "model", "epsilon", "sigma"], ascending=[True, True, True, False, False])
        .reset_index(drop=True)
    )


def _keep_best_silo(table: pd.DataFrame, metric: str | None) -> pd.DataFrame:
    silos = table[table["regime"] == "siloed"]
    if silos.empty or metric is None:
        return table
    reference = silos[np.isinf(silos["epsilon"].astype(float)) & silos["sigma"].isna()]
    pool = reference if not reference.empty else silos
    best = pool.sort_values(metric, ascending=False, na_position="last")["coalition"].iloc[0]
    return table[(table["regime"] != "siloed") | (table["coalition"] == best)].reset_index(drop=True)
